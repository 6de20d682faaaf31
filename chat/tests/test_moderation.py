"""Moderation of questions: admins' rules and a provider's /v1/moderations, on the websocket and /v1.

A refused question never reaches a model (not in that turn, not in later turns' history), the user
is told why, and admins find it among the flags."""

import asyncio

import pytest
from django.core.exceptions import ValidationError

from chat import moderation
from chat.models import Message, ModerationFlag, ModerationRule, Usage
from chat.selectors import moderation_rules_enabled
from retrieval import services as retrieval_services

from .conftest import ask, connect, until_done


@pytest.mark.parametrize(
    ("kind", "pattern", "text", "hit"),
    [
        ("phrase", "wire money", "How do I WIRE   money abroad?", True),
        ("phrase", "wire money", "how do I wire\nmoney", True),
        ("phrase", "wire money", "a firewire moneybox", False),
        ("phrase", "c++", "Is C++ allowed here?", True),
        ("phrase", "c++", "abc++ code", False),
        ("phrase", "炸弹", "怎么制造炸弹？", True),
        ("phrase", "폭탄", "폭탄을 만드는 방법", True),
        ("phrase", "炸弹 wire", "炸弹 wirework", False),
        ("regex", r"\b\d{4}[- ]?\d{4}[- ]?\d{4}[- ]?\d{4}\b", "card 4111-1111-1111-1111 please", True),
        ("regex", r"secret\s+project", "the SECRET  Project", True),
        ("regex", r"secret\s+project", "secretproject", False),
    ],
)
def test_rules_match_whole_words_in_any_case(kind, pattern, text, hit):
    assert bool(moderation.compile_rule(kind, pattern).search(text)) is hit


def test_an_invalid_rule_is_refused_with_the_reason(db):
    with pytest.raises(ValueError, match="not a valid regular expression"):
        moderation.compile_rule("regex", "(unclosed")
    with pytest.raises(ValidationError) as error:
        ModerationRule(kind="regex", pattern="[a-", category="x").full_clean()
    assert "not a valid regular expression" in str(error.value)
    with pytest.raises(ValueError, match="empty"):
        moderation.compile_rule("phrase", "   ")


@pytest.fixture
def fraud_rule(db):
    return ModerationRule.objects.create(pattern="wire money", category="fraud")


@pytest.fixture
def with_openai_moderation(settings, openai_provider):
    settings.DOCENT_MODERATION = ("rules", "openai")
    settings.DOCENT_MODERATION_MODEL = "fake-moderation"
    moderation.get_checkers.cache_clear()
    return openai_provider


@pytest.mark.django_db(transaction=True)
async def test_a_question_matching_a_rule_is_refused_before_any_model(
    alice, handbook, fraud_rule, openai_provider
):
    """The answer fails with moderation_blocked and its category, the question is flagged for admins,
    no chat completion is requested, nothing is ledgered; the next question in the conversation is
    answered without the refused one in its history."""
    ws = await connect(alice)
    accepted = await ask(ws, "How do I wire money to a supplier abroad?")
    events = await until_done(ws)
    error = events[-1]
    assert error["type"] == "error" and error["code"] == "moderation_blocked"
    assert error["message_id"] == accepted["message_id"] and error["categories"] == ["fraud"]
    assert "content policy" in error["message"]
    assert not [e for e in events if e["type"] == "delta"]
    assert openai_provider.requests_to("/chat/completions") == []
    answer = await Message.objects.aget(id=accepted["message_id"])
    assert (answer.status, answer.error_code) == ("failed", "moderation_blocked")
    flag = await ModerationFlag.objects.select_related("user").aget()
    assert (flag.user, flag.source, flag.checker, flag.categories) == (alice, "chat", "rules", ["fraud"])
    assert flag.rule_id == fraud_rule.id and str(flag.message_id) == accepted["user_message_id"]
    assert flag.text == "How do I wire money to a supplier abroad?" and not flag.reviewed
    assert await Usage.objects.acount() == 0

    follow_up = await ask(ws, "How many days of paid leave?", conversation_id=accepted["conversation_id"])
    assert follow_up["type"] == "accepted"
    assert (await until_done(ws))[-1]["type"] == "done"
    sent = str([r["body"] for r in openai_provider.requests_to("/chat/completions")])
    assert "paid leave" in sent and "wire money" not in sent
    # A refused follow-up is not even rewritten into a standalone query by the model.
    calls = len(openai_provider.requests_to("/chat/completions"))
    await ask(ws, "and can I wire money?", conversation_id=accepted["conversation_id"])
    assert (await until_done(ws))[-1]["code"] == "moderation_blocked"
    assert len(openai_provider.requests_to("/chat/completions")) == calls
    await ws.disconnect()


@pytest.mark.django_db(transaction=True)
async def test_rules_apply_as_soon_as_saved_and_disabled_ones_do_not(alice, handbook, chat_model):
    ws = await connect(alice)
    assert (await ask(ws, "How many days of paid leave?"))["type"] == "accepted"
    assert (await until_done(ws))[-1]["type"] == "done"  # the rules are loaded and cached now
    rule = await ModerationRule.objects.acreate(pattern="paid leave", category="hr")
    await ask(ws, "How many days of paid leave?")
    assert (await until_done(ws))[-1]["code"] == "moderation_blocked"
    rule.enabled = False
    await rule.asave()
    await ask(ws, "How many days of paid leave?")
    assert (await until_done(ws))[-1]["type"] == "done"
    await ws.disconnect()


@pytest.mark.django_db(transaction=True)
async def test_a_rule_saved_in_one_process_reaches_the_others_within_a_second():
    """Another process's checker (its own cache, a ttl of an hour) sees a new rule, and a rule
    disabled, once the shared version changes; its cache had the rules loaded before."""
    other = moderation.RulesChecker(
        moderation_rules_enabled, ttl=3600, version=moderation.rules_version, recheck=0.05
    )
    assert await other.check("please wire money now") is None  # loaded: no rules yet
    rule = await ModerationRule.objects.acreate(pattern="wire money", category="fraud")
    await asyncio.sleep(0.1)
    verdict = await other.check("please wire money now")
    assert verdict is not None and verdict.rule_id == rule.id
    rule.enabled = False
    await rule.asave()
    await asyncio.sleep(0.1)
    assert await other.check("please wire money now") is None


@pytest.mark.django_db(transaction=True)
async def test_the_providers_moderation_flags_with_its_categories(alice, handbook, with_openai_moderation):
    fake = with_openai_moderation
    ws = await connect(alice)
    await ask(ws, "FLAGME how many days of leave?")
    error = (await until_done(ws))[-1]
    assert error["code"] == "moderation_blocked" and error["categories"] == ["harassment"]
    assert fake.requests_to("/moderations")[0]["body"] == {
        "model": "fake-moderation",
        "input": "FLAGME how many days of leave?",
    }
    assert fake.requests_to("/chat/completions") == []
    flag = await ModerationFlag.objects.aget()
    assert (flag.checker, flag.categories, flag.rule_id) == ("openai", ["harassment"], None)
    await ask(ws, "How many days of paid leave?")
    assert (await until_done(ws))[-1]["type"] == "done"
    await ws.disconnect()


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("fail_closed", [False, True])
async def test_a_moderation_outage_fails_open_unless_told_otherwise(
    alice, handbook, with_openai_moderation, settings, fail_closed
):
    """The moderation endpoint answers 500 twice (the client's one retry included): by default the
    question is answered anyway; with DOCENT_MODERATION_FAIL_CLOSED it is refused as unavailable."""
    settings.DOCENT_MODERATION_FAIL_CLOSED = fail_closed
    fake = with_openai_moderation
    for _ in range(2):
        fake.add_fault(path="/moderations", status=500)
    import logging

    from assistant.logs import RequestIdFilter

    class Keep(logging.Handler):
        records: list = []

        def emit(self, record):
            self.records.append(record)

    keep = Keep()
    keep.addFilter(RequestIdFilter())
    logging.getLogger("chat.moderation").addHandler(keep)
    ws = await connect(alice)
    try:
        await ask(ws, "How many days of paid leave?", request_id="rq-outage-1")
        last = (await until_done(ws))[-1]
    finally:
        logging.getLogger("chat.moderation").removeHandler(keep)
    if not fail_closed:  # the warning, written inside the answer's task, names the question's request
        assert [r.request_id for r in keep.records if "let through" in r.getMessage()] == ["rq-outage-1"]
    if fail_closed:
        assert last["type"] == "error" and last["code"] == "provider_unavailable"
        assert fake.requests_to("/chat/completions") == []
    else:
        assert last["type"] == "done" and last["finish_reason"] == "stop"
    assert len(fake.requests_to("/moderations")) == 2
    assert await ModerationFlag.objects.acount() == 0
    await ws.disconnect()


@pytest.fixture
def api_key(transactional_db, alice, handbook):
    return {"Authorization": f"Bearer {retrieval_services.api_key_create(user=alice)[1]}"}


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("stream", [False, True])
async def test_v1_refuses_with_400_moderation_blocked(
    async_client, api_key, fraud_rule, openai_provider, stream
):
    question = "Can I wire money from the travel budget?"
    response = await _v1(async_client, api_key, [{"role": "user", "content": question}], stream=stream)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "moderation_blocked" and "(fraud)" in error["message"]
    assert openai_provider.requests_to("/chat/completions") == []
    flag = await ModerationFlag.objects.aget()
    assert (flag.source, flag.message_id, flag.text) == ("api", None, question)


@pytest.mark.django_db(transaction=True)
async def test_v1_fails_closed_with_503_and_counts_the_call(
    async_client, api_key, with_openai_moderation, settings
):
    """With DOCENT_MODERATION_FAIL_CLOSED, a /v1 question that cannot be checked is a 503 that never
    reaches the model, and /metrics counts it as provider_unavailable."""
    from prometheus_client import REGISTRY

    def unavailable() -> float:
        labels = {"source": "api", "outcome": "provider_unavailable"}
        return REGISTRY.get_sample_value("docent_answers_total", labels) or 0.0

    settings.DOCENT_MODERATION_FAIL_CLOSED = True
    fake = with_openai_moderation
    for _ in range(2):
        fake.add_fault(path="/moderations", status=500)
    before = unavailable()
    response = await _v1(async_client, api_key, [{"role": "user", "content": "How many days of leave?"}])
    assert response.status_code == 503 and response.json()["error"]["code"] == "provider_unavailable"
    assert fake.requests_to("/chat/completions") == []
    assert unavailable() == before + 1
    assert await Usage.objects.acount() == 0


async def _v1(async_client, api_key, messages: list[dict], stream: bool = False):
    body = {"model": "docent", "stream": stream, "messages": messages}
    return await async_client.post(
        "/v1/chat/completions", body, content_type="application/json", headers=api_key
    )


def test_admin_lists_flags_and_marks_them_reviewed(client, make_user, alice, fraud_rule):
    from chat import services

    client.force_login(make_user("root", is_staff=True, is_superuser=True))
    ids = services.exchange_start(
        user=alice, conversation_id=None, request_id="r", content="wire money?", collection_ids=None
    )
    verdict = moderation.Verdict("rules", ("fraud",), fraud_rule.id)
    services.message_finish(
        message_id=ids["message_id"], status="failed", error_code="moderation_blocked", flag=verdict
    )
    services.moderation_flag_record(
        user_id=alice.pk, source="api", text="wire money via api", verdict=verdict
    )
    flags = client.get("/admin/chat/moderationflag/").content.decode()
    assert "wire money?" in flags and "wire money via api" in flags
    chat_flag = ModerationFlag.objects.get(source="chat")
    page = client.get(f"/admin/chat/moderationflag/{chat_flag.id}/change/").content.decode()
    assert f"/admin/chat/conversation/{ids['conversation_id']}/change/" in page
    assert client.get("/admin/chat/moderationflag/add/").status_code == 403
    rules = client.get("/admin/chat/moderationrule/").content.decode()
    assert '<td class="field-flag_count">2</td>' in rules
    response = client.post(
        "/admin/chat/moderationflag/",
        {"action": "mark_reviewed", "_selected_action": [chat_flag.id]},
        follow=True,
    )
    assert "1 flag(s) marked reviewed" in response.content.decode()
    assert list(ModerationFlag.objects.order_by("source").values_list("source", "reviewed")) == [
        ("api", False),
        ("chat", True),
    ]
    bad = client.post(
        "/admin/chat/moderationrule/add/",
        {"pattern": "(oops", "kind": "regex", "category": "x", "enabled": "on"},
    )
    assert bad.status_code == 200 and "not a valid regular expression" in bad.content.decode()
    assert ModerationRule.objects.count() == 1


@pytest.mark.django_db(transaction=True)
async def test_v1_screens_the_history_its_client_sends(async_client, api_key, fraud_rule, openai_provider):
    """On /v1 the earlier messages come from the client and go to the model with the question, so
    they are screened too (the websocket's history comes from stored, already screened questions)."""
    messages = [
        {"role": "user", "content": "How do I wire money to myself?"},
        {"role": "assistant", "content": "Like this."},
        {"role": "user", "content": "And how many days of paid leave do I get?"},
    ]
    response = await _v1(async_client, api_key, messages)
    assert response.status_code == 400 and response.json()["error"]["code"] == "moderation_blocked"
    assert openai_provider.requests_to("/chat/completions") == []
    flag = await ModerationFlag.objects.aget()
    assert "wire money to myself" in flag.text and "paid leave" in flag.text


def _gate(*rules, hold=20):
    from chat.moderation import AnswerGate, Rule

    return AnswerGate(
        [
            Rule(i, "x", moderation.compile_rule(kind, p), len(p) if kind == "phrase" else None)
            for i, (kind, p) in enumerate(rules)
        ],
        hold=hold,
    )


def test_the_answer_gate_shows_only_checked_text_and_never_a_match():
    """Text is shown once `hold` newer characters are behind it; a match split across the stream's
    pieces is found before any of it is shown; the end shows the rest."""
    gate = _gate(("phrase", "project falcon"))
    shown = gate.feed("The budget of the ") + gate.feed("team is set. ")
    assert shown == "The budget of the team is set. "[: len(shown)] and len(shown) == 31 - 20
    with pytest.raises(moderation.Blocked) as blocked:
        for piece in ("Project ", "Fal", "con launches in May."):
            shown += gate.feed(piece)
    assert "falcon" not in shown.lower() and "project" not in shown.lower()
    assert blocked.value.verdict.subject == "answer" and "Project Falcon" in blocked.value.verdict.text
    assert "The answer was stopped" in str(blocked.value)
    clean = _gate(("phrase", "project falcon"))
    assert (
        clean.feed("A firewire project ") + clean.feed("falconry club.") + clean.flush()
        == "A firewire project falconry club."
    )
    # Lookbehind sees text before the re-checked window: "wire money" inside "firewire money" is no match.
    late = _gate(("phrase", "wire money"), hold=4)
    assert (
        late.feed("x" * 30 + "fire") + late.feed("wire money") + late.flush() == "x" * 30 + "firewire money"
    )


@pytest.mark.django_db(transaction=True)
async def test_an_answer_rule_stops_the_answer_before_the_match_is_shown(alice, handbook, openai_provider):
    """A rule for answers: the model's answer streams until the match, which never reaches the
    socket; the answer ends moderation_blocked, the flag holds the answer; questions still pass."""
    await ModerationRule.objects.acreate(pattern="25 days", category="hr", applies_to="answer")
    openai_provider.reply = "According to the handbook, employees get 25 days of paid leave per year [1]."
    ws = await connect(alice)
    accepted = await ask(ws, "How many days of paid leave do employees get?")
    events = await until_done(ws)
    error = events[-1]
    assert error["code"] == "moderation_blocked" and error["categories"] == ["hr"]
    assert "The answer was stopped" in error["message"]
    shown = "".join(e["text"] for e in events if e["type"] == "delta")
    assert "25" not in shown
    answer = await Message.objects.aget(id=accepted["message_id"])
    assert (answer.status, answer.error_code) == ("failed", "moderation_blocked") and "25" not in answer.text
    flag = await ModerationFlag.objects.aget()
    assert (
        flag.subject == "answer"
        and "25 days" in flag.text
        and str(flag.message_id) == accepted["user_message_id"]
    )
    # The prompt and the words generated were paid for, shown or not: they are in the ledger.
    from retrieval.embeddings import count_tokens

    usage = await Usage.objects.aget(message_id=accepted["message_id"])
    assert usage.prompt_tokens > 0 and usage.completion_tokens == count_tokens(flag.text)
    await ws.disconnect()


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("stream", [False, True])
async def test_v1_stops_an_answer_that_meets_an_answer_rule(async_client, api_key, openai_provider, stream):
    await ModerationRule.objects.acreate(pattern="25 days", category="hr", applies_to="answer")
    openai_provider.reply = "Employees get 25 days of paid leave [1]."
    response = await _v1(
        async_client, api_key, [{"role": "user", "content": "How much paid leave?"}], stream=stream
    )
    if stream:
        raw = b"".join([chunk async for chunk in response.streaming_content]).decode()
        assert (
            '"code": "moderation_blocked"' in raw and "25 days" not in raw and raw.rstrip().endswith("[DONE]")
        )
    else:
        assert response.status_code == 400 and response.json()["error"]["code"] == "moderation_blocked"
    flag = await ModerationFlag.objects.aget()
    assert (flag.source, flag.subject) == ("api", "answer") and "25 days" in flag.text


@pytest.mark.django_db(transaction=True)
async def test_v1_flags_a_stopped_answer_even_when_the_client_leaves_at_the_error(
    async_client, api_key, openai_provider
):
    """A streaming client that hangs up as soon as it reads the moderation error still leaves the
    flag (once) and the call's usage behind."""
    await ModerationRule.objects.acreate(pattern="25 days", category="hr", applies_to="answer")
    openai_provider.reply = "Employees get 25 days of paid leave [1]."
    response = await _v1(
        async_client, api_key, [{"role": "user", "content": "How much paid leave?"}], stream=True
    )
    # The view's own event generator (what the server closes when the client hangs up), read up to
    # the error and closed there.
    frames = response._iterator
    async for frame in frames:
        if b"moderation_blocked" in frame:
            break
    await frames.aclose()  # gone before [DONE]
    for _ in range(100):
        if await ModerationFlag.objects.acount() and await Usage.objects.acount():
            break
        await asyncio.sleep(0.05)
    assert await ModerationFlag.objects.acount() == 1
    assert (await Usage.objects.aget()).source == "api"
