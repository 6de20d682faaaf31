"""Streaming: a provider that sends 1,000 tokens at once, relayed by Docent (retrieval, storage,
resumable Redis streams) and by a bare Starlette websocket relay, in the same run."""

from __future__ import annotations

import asyncio
import io
import json
import os
import subprocess
import sys
import threading
import time
import uuid

import numpy as np
import psutil

from assistant.stack import web_command

from .common import ROOT, result

TOKENS = 1000
CONCURRENT = int(os.environ.get("BENCH_CONCURRENT") or 500)
QUESTION = "How many days of paid annual leave do employees get?"
DOC = b"# Handbook\n\n## Leave\n\nEmployees get 25 days of paid annual leave per year.\n"


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """A server subprocess whose memory is sampled while it runs."""

    def __init__(self, args: list[str], env: dict, port: int, log: str):
        self.port = port
        path = ROOT / "var" / "bench" / log
        path.parent.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=path.open("w"), stderr=subprocess.STDOUT)
        self.peak = 0.0
        self.sampling = True
        threading.Thread(target=self._sample, daemon=True).start()
        deadline = time.monotonic() + 60
        import socket

        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise RuntimeError("server did not start") from None
                time.sleep(0.2)

    def rss_mb(self) -> float:
        return psutil.Process(self.proc.pid).memory_info().rss / 2**20

    def _sample(self) -> None:
        while self.sampling and self.proc.poll() is None:
            try:
                self.peak = max(self.peak, self.rss_mb())
            except psutil.Error:
                return
            time.sleep(0.1)

    def reset_peak(self) -> None:
        self.peak = self.rss_mb()

    def stop(self) -> None:
        self.sampling = False
        self.proc.terminate()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()


async def _converse(url: str, headers: dict, frame: dict) -> dict:
    import websockets

    # No client pings: 500 clients in one process answer them late, which would close healthy
    # connections (the bare relay lost all 500 that way). The servers keep their own pings.
    async with websockets.connect(
        url,
        origin="http://127.0.0.1",
        additional_headers=headers,
        max_size=None,
        open_timeout=60,
        ping_interval=None,
    ) as ws:
        sent = time.perf_counter()
        await ws.send(json.dumps(frame))
        first = None
        text = ""
        message_id = None
        while True:
            event = json.loads(await asyncio.wait_for(ws.recv(), 900))
            if event["type"] == "accepted":
                message_id = event["message_id"]
            elif event["type"] == "delta":
                first = first or time.perf_counter()
                text += event["text"]
            elif event["type"] in ("done", "error"):
                done = time.perf_counter()
                return {
                    "ttft": (first or done) - sent,
                    "relay": done - (first or done),
                    "text": text,
                    "ok": event["type"] == "done",
                    "message_id": message_id,
                }


def _many(url: str, headers: dict, frames: list[dict]) -> list[dict]:
    async def run_all():
        return await asyncio.gather(*(_converse(url, headers, f) for f in frames), return_exceptions=True)

    return asyncio.run(run_all())


def run() -> list[dict]:
    from django.conf import settings
    from django.db import connection
    from django.test import Client

    from chat.models import Message
    from retrieval import services
    from retrieval.models import Collection
    from tests.support.fake_openai import FakeOpenAI
    from tests.support.processes import database_url

    # The provider runs in its own process, so it does not share a GIL with 500 benchmark clients.
    provider_port = _free_port()
    provider = Server(
        [sys.executable, "-m", "tests.support.fake_openai", str(provider_port), str(TOKENS)],
        dict(os.environ),
        provider_port,
        "fake-provider.log",
    )
    base_url = f"http://127.0.0.1:{provider_port}/v1"
    fake = FakeOpenAI()  # only for the reply text it streams
    fake.reply = " ".join(f"tok{i}" for i in range(TOKENS - 1)) + " [1]"
    expected = fake.reply

    user = services.user_provision(
        username="bench-stream", team_name="Bench stream", password="bench-stream-pw1"
    )
    team = user.teams.get(name="Bench stream")
    collection, _ = Collection.objects.get_or_create(team=team, name="handbook")
    if not collection.documents.exists():
        document, _ = services.document_create(
            collection=collection, file=io.BytesIO(DOC), filename="handbook.md", enqueue=False
        )
        services.documents_ingest(document_ids=[document.id])
    client = Client()
    client.force_login(user)
    headers = {"Cookie": f"sessionid={client.cookies['sessionid'].value}"}

    env = dict(
        os.environ,
        DJANGO_SETTINGS_MODULE="assistant.settings.local",
        DATABASE_URL=database_url(connection.settings_dict),
        REDIS_URL=settings.REDIS_URL,
        OPENAI_BASE_URL=base_url,
        OPENAI_API_KEY="bench",
        DOCENT_CHAT_MODEL="bench",
        DOCENT_LOG_LEVEL="WARNING",
        DJANGO_DEBUG="0",
        DJANGO_SECRET_KEY=settings.SECRET_KEY,  # the session cookie made here must be valid there
        # A slow shared machine under 500 streams must not turn into provider timeouts: the benchmark
        # measures the relay and the storage, not the provider.
        DOCENT_PROVIDER_TIMEOUT_S="900",
        DOCENT_PROVIDER_FIRST_TOKEN_S="600",
        DOCENT_DATA_DIR=str(settings.DATA_DIR),
        # One user asks 500 questions at once here: the per-user question rate would refuse most.
        DOCENT_RATE_ASK="0",
    )
    docent_port, bare_port = _free_port(), _free_port()
    docent = Server(
        web_command("127.0.0.1", docent_port),
        env,
        docent_port,
        "docent-server.log",
    )
    bare = Server(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "bench.bare_relay:app",
            "--host",
            "127.0.0.1",
            "--port",
            str(bare_port),
            "--log-level",
            "warning",
        ],
        env,
        bare_port,
        "bare-relay.log",
    )
    docent_url, bare_url = f"ws://127.0.0.1:{docent_port}/ws/chat/", f"ws://127.0.0.1:{bare_port}/ws"
    try:

        def ask(i):
            return {
                "type": "ask",
                "request_id": f"bench-{uuid.uuid4()}",
                "conversation_id": None,
                "content": QUESTION,
            }

        _many(docent_url, headers, [ask(0)])  # warm both paths (model load, connections)
        _many(bare_url, {}, [ask(0)])
        single_docent, single_bare = [], []
        for i in range(int(os.environ.get("BENCH_SINGLE_RUNS") or 30)):
            single_docent += _many(docent_url, headers, [ask(i)])
            single_bare += _many(bare_url, {}, [ask(i)])
        retrieval = {
            str(m.id): m.retrieval_ms or 0.0
            for m in Message.objects.filter(id__in=[r["message_id"] for r in single_docent])
        }
        bare_ttft = float(np.median([r["ttft"] for r in single_bare]))
        added = [(r["ttft"] - retrieval[r["message_id"]] / 1000 - bare_ttft) * 1000 for r in single_docent]
        rate = float(np.median([TOKENS / max(r["relay"], 1e-6) for r in single_docent]))
        bare_rate = float(np.median([TOKENS / max(r["relay"], 1e-6) for r in single_bare]))

        rss_after = []
        lost_total = 0
        peak_docent = 0.0
        seconds = []
        for _round in range(int(os.environ.get("BENCH_ROUNDS") or 3)):
            docent.reset_peak()
            frames = [ask(i) for i in range(CONCURRENT)]
            started = time.perf_counter()
            outcomes = _many(docent_url, headers, frames)
            seconds.append(time.perf_counter() - started)
            ok = [o for o in outcomes if isinstance(o, dict) and o["ok"] and o["text"] == expected]
            ids = [f["request_id"] for f in frames]
            stored = Message.objects.filter(
                reply_to__request_id__in=ids, status="complete", text=expected
            ).count()
            questions = Message.objects.filter(request_id__in=ids).count()
            lost_total += (CONCURRENT - len(ok)) + (CONCURRENT - stored) + abs(CONCURRENT - questions)
            peak_docent = max(peak_docent, docent.peak)
            time.sleep(1)
            rss_after.append(docent.rss_mb())
        bare.reset_peak()
        started = time.perf_counter()
        outcomes = _many(bare_url, {}, [ask(i) for i in range(CONCURRENT)])
        bare_seconds = time.perf_counter() - started
        bare_ok = sum(1 for o in outcomes if isinstance(o, dict) and o["ok"] and o["text"] == expected)
        peak_bare = bare.peak
    finally:
        docent.stop()
        bare.stop()
        provider.stop()
        fake.server.server_close()
    p95 = float(np.percentile(added, 95))
    growth = rss_after[-1] - rss_after[1] if len(rss_after) > 2 else rss_after[-1] - rss_after[0]
    return [
        result(
            "stream.relay_tokens_per_s",
            rate,
            "tokens/s",
            peer="bare Starlette relay",
            peer_value=round(bare_rate, 1),
            ratio=rate / bare_rate,
            target=">= 0.5",
            met=rate / bare_rate >= 0.5,
        ),
        result("stream.added_ttft_p50_ms", float(np.percentile(added, 50)), "ms"),
        result("stream.added_ttft_p95_ms", p95, "ms", target="<= 20", met=p95 <= 20),
        result("stream.bare_ttft_p50_ms", bare_ttft * 1000, "ms"),
        result(
            f"stream.concurrent_{CONCURRENT}_lost_messages",
            lost_total,
            "messages",
            target="= 0",
            met=lost_total == 0,
            peer="bare Starlette relay",
            peer_value=CONCURRENT - bare_ok,
        ),
        result(
            "stream.server_peak_rss_mb",
            peak_docent,
            "MB",
            peer="bare Starlette relay",
            peer_value=round(peak_bare, 1),
        ),
        result(
            f"stream.concurrent_{CONCURRENT}_wall_s",
            float(np.median(seconds)),
            "s",
            peer="bare Starlette relay",
            peer_value=round(bare_seconds, 1),
        ),
        result(
            "stream.server_rss_after_rounds_mb", rss_after[-1], "MB", rounds=[round(r, 1) for r in rss_after]
        ),
        result(
            "stream.server_rss_growth_between_runs_mb",
            growth,
            "MB",
            target="~ 0 (no leak per connection)",
            note="between the second and the last round (the first warms caches and pools)",
        ),
    ]
