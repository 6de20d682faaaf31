import asyncio
import json

import pytest
import websockets
from asgiref.sync import sync_to_async
from django.utils import timezone

from chat import streams
from chat.models import Message
from chat.tasks import sweep_interrupted_answers
from tests.support.processes import web_server

from .conftest import ask, connect, session_cookie, text_of, until_done

pytestmark = [pytest.mark.django_db(transaction=True)]


@pytest.mark.slow
async def test_resume_on_a_second_server_process(alice, handbook, openai_provider, tmp_path):
    """Ask on this process, drop the socket, resume on another web process: the answer completes."""
    openai_provider.reply = " ".join(f"part{i}" for i in range(50)) + " [1]"
    openai_provider.token_delay = 0.03
    ws = await connect(alice)
    accepted = await ask(ws, "How many days of paid leave do employees get?")
    seen = [await ws.receive_json_from(timeout=10) for _ in range(4)]
    await ws.disconnect()
    cookie = await sync_to_async(session_cookie)(alice)
    server = web_server(tmp_path / "second.log", OPENAI_BASE_URL=openai_provider.base_url, OPENAI_API_KEY="x")
    base = await asyncio.to_thread(server.__enter__)
    try:
        url = base.replace("http://", "ws://") + "/ws/chat/"
        async with websockets.connect(
            url, origin="http://127.0.0.1", additional_headers={"Cookie": f"sessionid={cookie}"}
        ) as second:
            await second.send(
                json.dumps({"type": "resume", "message_id": accepted["message_id"], "after": seen[-1]["seq"]})
            )
            rest = []
            while not rest or rest[-1]["type"] not in ("done", "error"):
                rest.append(json.loads(await asyncio.wait_for(second.recv(), 20)))
    finally:
        await asyncio.to_thread(server.__exit__, None, None, None)
    assert rest[0]["seq"] > seen[-1]["seq"] and rest[-1]["finish_reason"] == "stop"
    assert text_of(seen + rest) == openai_provider.reply


async def test_sweep_marks_dead_answers_interrupted_and_ends_their_streams(
    alice, handbook, chat_model, settings
):
    """A process that died mid-answer leaves a stale streaming message: the sweep ends it, text kept."""
    settings.DOCENT_INTERRUPTED_AFTER_S = 5
    ws = await connect(alice)
    accepted = await ask(ws, "How many days of paid leave do employees get?")
    await until_done(ws)
    mid = accepted["message_id"]
    # Simulate the dead process: an answer stuck in "streaming" with a partial text and an open stream.
    await streams.client().delete(streams.stream_key(mid))
    await streams.append(mid, {"type": "delta", "text": "Employees get", "message_id": mid, "seq": 1})
    await Message.objects.filter(id=mid).aupdate(
        status="streaming", text="Employees get", heartbeat_at=timezone.now() - timezone.timedelta(minutes=5)
    )
    assert await sync_to_async(sweep_interrupted_answers)() == [mid]
    answer = await Message.objects.aget(id=mid)
    assert answer.status == "interrupted" and answer.text == "Employees get"
    await ws.send_json_to({"type": "resume", "message_id": mid, "after": 0})
    events = await until_done(ws)
    assert text_of(events) == "Employees get" and events[-1]["finish_reason"] == "interrupted"
    await ws.disconnect()


async def test_resume_after_the_stream_expired_replays_the_stored_answer(alice, handbook, chat_model):
    ws = await connect(alice)
    accepted = await ask(ws, "How are travel expenses reimbursed?")
    original = await until_done(ws)
    await streams.client().delete(streams.stream_key(accepted["message_id"]))
    await ws.send_json_to({"type": "resume", "message_id": accepted["message_id"], "after": 0})
    replay = await until_done(ws)
    assert replay[0]["replace"] is True and text_of(replay) == text_of(original)
    assert [e["prev_seq"] for e in replay] == [0, *(e["seq"] for e in replay[:-1])]
    assert replay[-1]["finish_reason"] == original[-1]["finish_reason"]
    await ws.disconnect()


@pytest.mark.slow
async def test_stop_reaches_the_process_that_generates(alice, handbook, openai_provider, tmp_path):
    """The answer runs on another server process; a stop sent from this one ends it within a second."""
    from chat import answering

    openai_provider.reply = " ".join(f"w{i}" for i in range(400))
    openai_provider.token_delay = 0.05
    cookie = await sync_to_async(session_cookie)(alice)
    server = web_server(
        tmp_path / "generator.log", OPENAI_BASE_URL=openai_provider.base_url, OPENAI_API_KEY="x"
    )
    base = await asyncio.to_thread(server.__enter__)
    try:
        url = base.replace("http://", "ws://") + "/ws/chat/"
        async with websockets.connect(
            url, origin="http://127.0.0.1", additional_headers={"Cookie": f"sessionid={cookie}"}
        ) as remote:
            await remote.send(
                json.dumps(
                    {
                        "type": "ask",
                        "request_id": "far",
                        "conversation_id": None,
                        "content": "How many days of paid leave do employees get?",
                    }
                )
            )
            accepted = json.loads(await asyncio.wait_for(remote.recv(), 20))
            first = json.loads(await asyncio.wait_for(remote.recv(), 20))
            assert first["type"] == "delta"
            loop = asyncio.get_running_loop()
            asked = loop.time()
            await answering.stop(accepted["message_id"])  # from this process
            while True:
                event = json.loads(await asyncio.wait_for(remote.recv(), 5))
                if event["type"] == "done":
                    break
            assert event["finish_reason"] == "stopped" and loop.time() - asked < 1.0
    finally:
        await asyncio.to_thread(server.__exit__, None, None, None)
    answer = await Message.objects.aget(id=accepted["message_id"])
    assert answer.status == "stopped" and 0 < len(answer.text.split()) < 400
