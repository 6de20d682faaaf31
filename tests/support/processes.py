"""Start real app processes (Celery workers, the ASGI server) against the test database."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

ROOT = Path(__file__).resolve().parent.parent.parent


def database_url(settings_dict: dict) -> str:
    """A URL to the database Django is using now (the test database during tests)."""
    user = quote(settings_dict.get("USER") or "")
    password = quote(settings_dict.get("PASSWORD") or "")
    auth = f"{user}:{password}@" if user else ""
    host = settings_dict.get("HOST") or ""
    port = f":{settings_dict['PORT']}" if settings_dict.get("PORT") else ""
    url = f"postgresql://{auth}{host}{port}/{settings_dict['NAME']}"
    socket_dir = (settings_dict.get("OPTIONS") or {}).get("host")
    return f"{url}?host={socket_dir}" if socket_dir and not host else url


def app_env(**extra) -> dict:
    from django.conf import settings
    from django.db import connection

    env = dict(os.environ)
    # Set by the browser fixture for the test's own thread: the app must keep Django's guard against
    # sync database calls on its event loop.
    env.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
    env.update(
        DJANGO_SETTINGS_MODULE="assistant.settings.test",
        DATABASE_URL=database_url(connection.settings_dict),
        REDIS_URL=settings.REDIS_URL,
        DOCENT_DATA_DIR=str(settings.DATA_DIR),
        PYTHONUNBUFFERED="1",
    )
    env.update({k: str(v) for k, v in extra.items()})
    return env


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stop(proc: subprocess.Popen, sig: int = signal.SIGTERM, timeout: float = 20) -> None:
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def start_worker(queue: str, log_path: Path, **env) -> subprocess.Popen:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "assistant",
            "worker",
            "-Q",
            queue,
            "--pool",
            "prefork",
            "--concurrency",
            "1",
            "--without-mingle",
            "--without-gossip",
            "--loglevel",
            "INFO",
            "--hostname",
            f"{queue}@%h",
        ],
        cwd=ROOT,
        env=app_env(**env),
        stdout=log_path.open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


@contextmanager
def web_server(log_path: Path, **env):
    """Serve assistant.asgi as `make run` does, on a free loopback port; yields the base URL."""
    from assistant.stack import web_command

    port = free_port()
    proc = subprocess.Popen(
        web_command("127.0.0.1", port),
        cwd=ROOT,
        env=app_env(**env),
        stdout=log_path.open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the web server did not start: {log_path.read_text()[-2000:]}") from None
            time.sleep(0.2)
    try:
        yield base
    finally:
        stop(proc)
