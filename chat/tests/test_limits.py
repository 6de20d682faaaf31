"""Rates and token budgets on asking: the websocket, the OpenAI-compatible API, and the usage ledger."""

import pytest
from asgiref.sync import sync_to_async

from chat import services
from chat.models import Conversation, Message, Usage
from retrieval import services as retrieval_services

from .conftest import ask, connect, until_done


@pytest.fixture
def limits(settings, rate_limits):
    rate_limits(ask="2/d")
    return settings


def _spend(user, tokens: int) -> None:
    services.usage_record(user_id=user.pk, source="api", prompt_tokens=tokens, completion_tokens=0)


@pytest.mark.django_db(transaction=True)
async def test_asking_past_the_rate_is_rate_limited(alice, handbook, chat_model, limits):
    """The third question in a day gets `rate_limited` with retry_after and stores nothing."""
    ws = await connect(alice)
    for _ in range(2):
        assert (await ask(ws, "How many days of paid leave?"))["type"] == "accepted"
        assert (await until_done(ws))[-1]["type"] == "done"
    refused = await ask(ws, "And the expenses?", request_id="third")
    assert refused["type"] == "error" and refused["code"] == "rate_limited"
    assert refused["request_id"] == "third" and 1 <= refused["retry_after"] <= 86400
    assert await Message.objects.filter(role="user").acount() == 2
    assert await Conversation.objects.acount() == 2  # the refused question left nothing behind
    await ws.disconnect()


@pytest.mark.django_db(transaction=True)
async def test_a_repeated_request_id_is_not_counted_again(alice, handbook, chat_model, limits):
    """A client that resends its question (same request_id, after a reconnect say) gets the first
    exchange back even past the rate: only new questions count."""
    ws = await connect(alice)
    first = await ask(ws, "How many days of paid leave?", request_id="only-once")
    assert (await until_done(ws))[-1]["type"] == "done"
    assert (await ask(ws, "Expenses?"))["type"] == "accepted"
    await until_done(ws)
    again = await ask(ws, "How many days of paid leave?", request_id="only-once")
    assert again["type"] == "accepted" and again["message_id"] == first["message_id"]
    assert (await until_done(ws))[-1]["type"] == "done"  # the first answer, replayed
    assert (await ask(ws, "Security?"))["code"] == "rate_limited"
    await ws.disconnect()


@pytest.mark.django_db(transaction=True)
async def test_a_repeated_regeneration_is_the_first_one_and_not_counted_again(
    alice, handbook, chat_model, limits
):
    """A regeneration sent again with its request_id (its `accepted` lost with the socket) follows the
    answer the first one started: no third answer, and the rate counts it once."""
    ws = await connect(alice)
    first = await ask(ws, "How many days of paid leave?")
    done = (await until_done(ws))[-1]
    frame = {"type": "regenerate", "message_id": done["message_id"], "request_id": "again-1"}
    await ws.send_json_to(frame)
    regenerated = await ws.receive_json_from(timeout=10)
    assert regenerated["type"] == "accepted" and regenerated["message_id"] != first["message_id"]
    await until_done(ws)
    await ws.send_json_to(frame)
    repeated = await ws.receive_json_from(timeout=10)
    assert repeated["type"] == "accepted" and repeated["message_id"] == regenerated["message_id"]
    assert (await until_done(ws))[-1]["type"] == "done"  # the same answer, replayed
    assert await Message.objects.filter(reply_to_id=first["user_message_id"]).acount() == 2
    assert (await ask(ws, "Security?"))["code"] == "rate_limited"  # two counted: the ask, one regeneration
    await ws.disconnect()


@pytest.mark.django_db(transaction=True)
async def test_asking_over_the_quota_is_quota_exceeded(alice, handbook, chat_model, limits):
    """Once this month's tokens are spent, asking and regenerating get `quota_exceeded`."""
    limits.DOCENT_RATE_LIMITS = {}
    limits.DOCENT_MONTHLY_TOKEN_QUOTA = 1000
    ws = await connect(alice)
    assert (await ask(ws, "How many days of paid leave?"))["type"] == "accepted"
    done = (await until_done(ws))[-1]
    await sync_to_async(_spend)(alice, 1000)
    refused = await ask(ws, "And the expenses?")
    assert refused["code"] == "quota_exceeded" and refused["retry_after"] >= 1
    await ws.send_json_to({"type": "regenerate", "message_id": done["message_id"]})
    assert (await ws.receive_json_from(timeout=10))["code"] == "quota_exceeded"
    assert await Message.objects.filter(role="user").acount() == 1
    await ws.disconnect()


def test_every_finished_answer_is_in_the_ledger_once(db, alice, collection_a):
    """The ledger keeps an answer's tokens after its conversation is deleted; a second finish of the
    same answer (a sweep racing the generator) adds nothing."""
    ids = services.exchange_start(
        user=alice, conversation_id=None, request_id="r", content="q?", collection_ids=None
    )
    fields = dict(text="a", status="complete", finish_reason="stop", prompt_tokens=120, completion_tokens=30)
    assert services.message_finish(message_id=ids["message_id"], model="m", **fields)
    assert not services.message_finish(message_id=ids["message_id"], **fields)
    services.conversation_delete(conversation=Conversation.objects.get(id=ids["conversation_id"]))
    assert list(
        Usage.objects.values_list("user", "source", "prompt_tokens", "completion_tokens", "model")
    ) == [(alice.pk, "chat", 120, 30, "m")]


@pytest.fixture
def api_key(transactional_db, alice, handbook):
    return {"Authorization": f"Bearer {retrieval_services.api_key_create(user=alice)[1]}"}


QUESTION = {"model": "docent", "messages": [{"role": "user", "content": "How many days of paid leave?"}]}


@pytest.mark.django_db(transaction=True)
async def test_v1_calls_are_counted_and_limited(async_client, api_key, chat_model, limits):
    """/v1 answers go in the ledger (they store no conversation), streamed or not; past the rate 429
    rate_limited, past the quota 429 quota_exceeded, each with Retry-After."""

    async def post(body):
        return await async_client.post(
            "/v1/chat/completions", body, content_type="application/json", headers=api_key
        )

    from prometheus_client import REGISTRY

    def answered() -> float:
        return REGISTRY.get_sample_value("docent_answers_total", {"source": "api", "outcome": "stop"}) or 0.0

    before = answered()
    first = await post(QUESTION)
    assert first.status_code == 200
    spent = first.json()["usage"]
    row = ("api", spent["prompt_tokens"], spent["completion_tokens"])

    async def ledger():
        return [r async for r in Usage.objects.values_list("source", "prompt_tokens", "completion_tokens")]

    assert await ledger() == [row]
    streamed = await post({**QUESTION, "stream": True})
    assert b"[DONE]" in b"".join([chunk async for chunk in streamed.streaming_content])
    assert await ledger() == [row, row]
    assert answered() == before + 2  # in /metrics too, plain and streamed
    limited = await post(QUESTION)
    assert limited.status_code == 429 and limited.json()["error"]["code"] == "rate_limited"
    assert 1 <= int(limited["Retry-After"]) <= 86400

    limits.DOCENT_RATE_LIMITS = {}
    limits.DOCENT_MONTHLY_TOKEN_QUOTA = 2 * (spent["prompt_tokens"] + spent["completion_tokens"])
    over = await post(QUESTION)
    assert over.status_code == 429 and over.json()["error"]["code"] == "quota_exceeded"
    assert int(over["Retry-After"]) >= 1
    usage = (await async_client.get("/api/v1/usage", headers=api_key)).json()
    assert usage["remaining_tokens"] == 0


def test_a_users_own_budget_overrides_the_default(db, alice, bob, settings):
    """An admin's budget for a user replaces DOCENT_MONTHLY_TOKEN_QUOTA for that user alone; 0 lifts it."""
    from django.test import Client

    from chat.models import Budget

    settings.DOCENT_RATE_LIMITS = {}
    settings.DOCENT_MONTHLY_TOKEN_QUOTA = 1000
    for user in (alice, bob):
        _spend(user, 1500)
    with pytest.raises(services.QuotaExceeded):
        services.ask_admit(user=bob)
    budget = Budget.objects.create(user=alice, monthly_tokens=2000)
    services.ask_admit(user=alice)
    client = Client()
    client.force_login(alice)
    assert client.get("/api/v1/usage").json()["remaining_tokens"] == 500
    budget.monthly_tokens = 1200
    budget.save()
    with pytest.raises(services.QuotaExceeded):
        services.ask_admit(user=alice)
    budget.monthly_tokens = 0
    budget.save()
    services.ask_admit(user=alice)
    assert client.get("/api/v1/usage").json()["remaining_tokens"] is None
