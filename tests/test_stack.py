"""The README's first command: `make run` serves the app on embedded services, stops cleanly, and a
second run reuses the data without duplicating anything."""

import os
import signal
import subprocess
import time
from pathlib import Path

import httpx
import psutil
import pytest

from tests.support.processes import ROOT, free_port

pytestmark = pytest.mark.slow
PASSWORD = "demo-pass-12345"


def start(data_dir: Path, port: int, log: Path) -> subprocess.Popen:
    env = {
        k: v
        for k, v in os.environ.items()
        if k
        not in (
            "DATABASE_URL",
            "REDIS_URL",
            "DJANGO_SETTINGS_MODULE",
            "DOCENT_DATA_DIR",
            "DJANGO_ALLOW_ASYNC_UNSAFE",
        )
    }
    env.update(DOCENT_DATA_DIR=str(data_dir), PORT=str(port), DOCENT_ADMIN_PASSWORD=PASSWORD)
    return subprocess.Popen(
        ["make", "run"], cwd=ROOT, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT
    )


def signed_in(base: str, proc: subprocess.Popen, log: Path) -> httpx.Client:
    client = httpx.Client(base_url=base, timeout=10)
    deadline = time.monotonic() + 180
    while True:
        assert proc.poll() is None, log.read_text()[-3000:]
        try:
            if client.get("/readyz").status_code == 200:
                break
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, log.read_text()[-3000:]
        time.sleep(0.5)
    client.get("/accounts/login/")
    response = client.post(
        "/accounts/login/",
        data={"username": "admin", "password": PASSWORD, "csrfmiddlewaretoken": client.cookies["csrftoken"]},
    )
    assert response.status_code == 302, response.text[:500]
    return client


def demo_documents(client: httpx.Client) -> list[dict]:
    collections = client.get("/api/v1/collections").json()
    demo = [c for c in collections if c["name"] == "demo" and c["team"] == "Demo"]
    assert len(demo) == 1, collections
    return client.get(f"/api/v1/collections/{demo[0]['id']}/documents").json()


def family(proc: subprocess.Popen, data_dir: Path) -> list[psutil.Process]:
    members = psutil.Process(proc.pid).children(recursive=True)
    pg = (data_dir / "postgres" / "postmaster.pid").read_text().split()[0]
    members.append(psutil.Process(int(pg)))
    members.append(psutil.Process(int((data_dir / "redis" / "redis.pid").read_text())))
    return members


def stop_and_check(proc: subprocess.Popen, sig: int, members: list[psutil.Process]) -> None:
    proc.send_signal(sig)  # to the make process alone
    proc.wait(60)
    gone, alive = psutil.wait_procs(members, timeout=30)
    assert not alive, [p.cmdline()[:3] for p in alive]


def test_make_run_serves_demo_and_stops_everything(tmp_path):
    expected = sorted(p.name for p in (ROOT / "docs").glob("*.md"))
    assert expected, "docs/ holds the demo documents"
    data_dir, log = tmp_path / "data", tmp_path / "run.log"

    port = free_port()
    proc = start(data_dir, port, log)
    try:
        client = signed_in(f"http://127.0.0.1:{port}", proc, log)
        assert client.get("/").status_code == 200
        deadline = time.monotonic() + 240
        while True:
            documents = demo_documents(client)
            if documents and all(d["status"] == "ready" for d in documents):
                break
            assert not any(d["status"] == "failed" for d in documents), documents
            assert time.monotonic() < deadline, documents
            time.sleep(1)
        assert sorted(d["original_name"] for d in documents) == expected
        members = family(proc, data_dir)
    except BaseException:
        proc.kill()
        raise
    stop_and_check(proc, signal.SIGINT, members)

    port = free_port()
    proc = start(data_dir, port, log)
    try:
        client = signed_in(f"http://127.0.0.1:{port}", proc, log)
        again = demo_documents(client)
        assert sorted(d["id"] for d in again) == sorted(d["id"] for d in documents)  # nothing duplicated
        members = family(proc, data_dir)
    except BaseException:
        proc.kill()
        raise
    stop_and_check(proc, signal.SIGTERM, members)
