import asyncio

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator

from assistant.asgi import application
from chat import selectors
from chat.models import Conversation, Message
from retrieval.models import Collection

from .conftest import ask, connect, text_of, until_done

pytestmark = pytest.mark.django_db(transaction=True)


async def test_ask_streams_a_cited_answer(alice, handbook, chat_model):
    """accepted, then deltas, then the cited sources, then done; everything stored."""
    ws = await connect(alice)
    accepted = await ask(ws, "How many days of paid leave do employees get?")
    assert accepted["type"] == "accepted" and accepted["conversation_id"]
    events = await until_done(ws)
    kinds = [e["type"] for e in events]
    assert kinds[-2:] == ["sources", "done"] and set(kinds[:-2]) == {"delta"}
    seqs = [e["seq"] for e in events]
    assert seqs == sorted(set(seqs)) and seqs[0] >= 1  # increasing; deltas read together may share a frame
    assert [e["prev_seq"] for e in events] == [0, *seqs[:-1]]  # each frame names the one it follows
    assert all(e["message_id"] == accepted["message_id"] for e in events)
    text = text_of(events)
    assert "25 days" in text and "[1]" in text
    sources = events[-2]["sources"]
    assert sources and {s["n"] for s in sources} <= {1, 2, 3, 4, 5, 6}
    assert set(sources[0]) >= {"n", "document_id", "chunk_id", "title", "text"}
    done = events[-1]
    assert done["finish_reason"] == "stop" and set(done["usage"]) == {"prompt_tokens", "completion_tokens"}
    answer = await Message.objects.aget(id=accepted["message_id"])
    assert answer.status == "complete" and answer.text == text and answer.citations == sources
    assert events[-2]["checks"] == [] == answer.checks  # a quote holds its own figures
    assert answer.ttft_ms is not None and answer.retrieval_ms is not None and answer.total_ms is not None
    # Every passage given to the model is kept (recorded while the provider started), cited or not.
    assert len(answer.sources) >= len(sources) and answer.search_query and answer.model
    assert {s["chunk_id"] for s in sources} <= {s["chunk_id"] for s in answer.sources}
    question = await Message.objects.aget(id=accepted["user_message_id"])
    assert question.text.startswith("How many days")
    await ws.disconnect()


async def test_the_chat_gives_the_model_passages_in_the_rerankers_order(
    alice, handbook, chat_model, reranker
):
    """With a reranker configured, the chat's search goes through it: the passage it favours is
    given first, and the passage that answers is still quoted."""
    reranker.rerank_favour = "laptop"
    ws = await connect(alice)
    accepted = await ask(ws, "How many days of paid leave do employees get?")
    events = await until_done(ws)
    await ws.disconnect()
    (sent,) = reranker.requests_to("/rerank")
    assert sent["body"]["query"] == "How many days of paid leave do employees get?"
    answer = await Message.objects.aget(id=accepted["message_id"])
    assert answer.sources[0]["heading_path"].endswith("Security")
    assert "25 days" in text_of(events)


async def test_chat_sockets_take_no_channel_layer_channel(alice, handbook, chat_model, monkeypatch):
    """Answers reach sockets through their Redis streams: a channel per socket would only cost a
    Redis receive waiting on it. Pins what `channel_layer_alias = None` relies on in Channels."""
    from channels_redis.core import RedisChannelLayer

    made = []
    original = RedisChannelLayer.new_channel

    async def counting(self, prefix="specific."):
        made.append(prefix)
        return await original(self, prefix)

    monkeypatch.setattr(RedisChannelLayer, "new_channel", counting)
    ws = await connect(alice)
    await ask(ws, "How many days of paid leave do employees get?")
    assert (await until_done(ws))[-1]["type"] == "done"
    await ws.disconnect()
    assert made == []


async def test_repeated_request_id_creates_nothing_new(alice, handbook, chat_model):
    ws = await connect(alice)
    first = await ask(ws, "How are travel expenses reimbursed?", request_id="req-1")
    await until_done(ws)
    count = await Message.objects.acount()
    again = await ask(ws, "How are travel expenses reimbursed?", request_id="req-1")
    assert {k: again[k] for k in ("conversation_id", "user_message_id", "message_id")} == {
        k: first[k] for k in ("conversation_id", "user_message_id", "message_id")
    }
    replay = await until_done(ws)
    assert replay[-1]["type"] == "done"
    assert await Message.objects.acount() == count
    await ws.disconnect()


async def test_follow_up_uses_the_conversation(alice, handbook, chat_model):
    ws = await connect(alice)
    first = await ask(ws, "What must laptops use?")
    await until_done(ws)
    second = await ask(ws, "What if it gets lost?", conversation_id=first["conversation_id"])
    events = await until_done(ws)
    assert second["conversation_id"] == first["conversation_id"]
    answer = await Message.objects.aget(id=second["message_id"])
    assert "laptop" in answer.search_query.lower()  # the follow-up was made standalone
    assert "security desk" in text_of(events)
    await ws.disconnect()


async def test_offline_answer_to_a_follow_up_reads_it_as_searched(alice, handbook, chat_model):
    """Offline, 'How long does it take?' alone names nothing in the handbook: the answerer reads the
    standalone query, as the search did."""
    ws = await connect(alice)
    first = await ask(ws, "How are travel expenses reimbursed?")
    await until_done(ws)
    await ask(ws, "How long does it take?", conversation_id=first["conversation_id"])
    events = await until_done(ws)
    assert events[-1]["finish_reason"] == "stop"
    assert "within 30 days" in text_of(events)
    await ws.disconnect()


async def _collection_with(team, name: str, markdown: str, language: str = "english") -> None:
    """A collection of the team holding one Markdown document, ingested."""
    from retrieval import services as retrieval_services
    from retrieval.tests.helpers import upload

    def make():
        collection = retrieval_services.collection_create(team=team, name=name, language=language)
        document, _ = upload(collection, f"{name}.md", markdown.encode(), enqueue=False)
        retrieval_services.documents_ingest(document_ids=[document.id])

    await sync_to_async(make)()


async def test_offline_answer_from_a_german_collection(alice, team_a, chat_model):
    """A German collection end to end: searched in German, the question's keyword terms read by the
    database in German for the offline answerer (test_answering shows what that changes), which
    quotes the sentence holding the question's word in another form ("Antrag" / "Anträge")."""
    text = (
        "# Urlaub\n\nJeder Mitarbeiter hat 28 Urlaubstage im Jahr. Anträge gehen an die Teamleitung.\n\n"
        "# Reisen\n\nReisekosten werden innerhalb von 30 Tagen erstattet.\n"
    )
    await _collection_with(team_a, "Handbuch", text, language="german")
    ws = await connect(alice)
    await ask(ws, "Wohin geht ein Antrag?")
    events = await until_done(ws)
    assert events[-1]["finish_reason"] == "stop", text_of(events)
    assert "Anträge gehen an die Teamleitung." in text_of(events)
    assert "Reisekosten" not in text_of(events)
    await ws.disconnect()


async def test_offline_answer_from_chinese_documents(alice, team_a, chat_model):
    """Chinese end to end, in a collection of the default language: found by its pairs of characters,
    the sentence on expenses quoted (not the paragraph), and a question the documents do not answer
    refused."""
    text = (
        "# 休假\n\n员工每年享有十五天带薪年假。未使用的假期最多可以结转五天。\n\n"
        "# 报销\n\n差旅费用在出差结束后三十天内报销。报销时需要提交发票和审批单。\n"
    )
    await _collection_with(team_a, "手册", text)
    ws = await connect(alice)
    await ask(ws, "报销时需要提交什么？")
    events = await until_done(ws)
    assert events[-1]["finish_reason"] == "stop", text_of(events)
    assert "报销时需要提交发票和审批单。" in text_of(events)
    assert "年假" not in text_of(events)
    await ask(ws, "火星上的天气怎么样？")
    events = await until_done(ws)
    assert events[-1]["finish_reason"] == "refused", text_of(events)
    await ws.disconnect()


async def test_irrelevant_question_is_refused(alice, handbook, chat_model):
    ws = await connect(alice)
    await ask(ws, "What is the boiling point of liquid nitrogen on Neptune?")
    events = await until_done(ws)
    assert events[-1]["finish_reason"] == "refused"
    assert "can't find" in text_of(events)
    assert events[-2] == {**events[-2], "type": "sources", "sources": []}
    await ws.disconnect()


async def test_a_passage_both_retrievers_rank_first_clears_the_lower_bar(
    alice, handbook, chat_model, settings
):
    """With the cosine bar out of reach, the answer comes through the agreed passages' bar alone
    (`DOCENT_AGREED_MIN_RELEVANCE`), and is refused once that bar is out of reach too."""
    settings.DOCENT_MIN_RELEVANCE = 0.99
    ws = await connect(alice)
    for agreed_bar, ending in ((0.05, "stop"), (0.99, "refused")):
        settings.DOCENT_AGREED_MIN_RELEVANCE = agreed_bar
        await ask(ws, "How many days of paid leave do employees get?")
        events = await until_done(ws)
        assert events[-1]["finish_reason"] == ending, text_of(events)
    await ws.disconnect()


async def test_a_rerankers_low_scores_refuse_without_calling_the_provider(
    alice, handbook, openai_provider, reranker, settings
):
    """With DOCENT_RERANK_MIN_SCORE set, passages similar enough by cosine but scored low by the
    reranker (the fake one: the share of the question's words a passage holds, here at most 0.67)
    are not answered from; when the reranker fails there are no scores and the cosine decides."""
    settings.DOCENT_RERANK_MIN_SCORE = 0.9
    ws = await connect(alice)
    await ask(ws, "How many days of paid leave do employees get?")
    events = await until_done(ws)
    assert events[-1]["finish_reason"] == "refused", text_of(events)
    assert reranker.requests_to("/rerank") and openai_provider.requests_to("/chat/completions") == []
    reranker.add_fault(path="/rerank", status=500)
    await ask(ws, "How many days of paid leave do employees get?")
    events = await until_done(ws)
    assert events[-1]["finish_reason"] == "stop", text_of(events)
    assert len(openai_provider.requests_to("/chat/completions")) == 1
    settings.DOCENT_RERANK_MIN_SCORE = 0.5
    await ask(ws, "How many days of paid leave do employees get?")
    events = await until_done(ws)
    assert events[-1]["finish_reason"] == "stop", text_of(events)
    await ws.disconnect()


async def test_a_new_conversation_starts_in_the_folder_its_ask_names(alice, bob, handbook, chat_model):
    """The ask frame's `folder`: the caller's folder a new conversation starts in; another's is
    not_found (nothing stored), a non-id invalid; a conversation asked in again stays where it is."""
    from chat import services

    mine = await sync_to_async(services.folder_create)(user=alice, name="HR")
    theirs = await sync_to_async(services.folder_create)(user=bob, name="HR")
    ws = await connect(alice)
    refused = await ask(ws, "Leave?", folder=theirs.id)
    assert refused["type"] == "error" and refused["code"] == "not_found"
    assert (await ask(ws, "Leave?", folder="HR"))["code"] == "invalid"
    assert await Message.objects.acount() == 0
    accepted = await ask(ws, "How many days of paid leave do employees get?", folder=mine.id)
    await until_done(ws)
    conversation = await Conversation.objects.aget(id=accepted["conversation_id"])
    assert conversation.folder_id == mine.id
    await ask(ws, "And sick leave?", conversation_id=accepted["conversation_id"], folder=None)
    await until_done(ws)
    assert (await Conversation.objects.aget(id=accepted["conversation_id"])).folder_id == mine.id
    await ws.disconnect()


async def test_a_new_conversation_in_a_folder_searches_the_folders_collections_unless_told(
    alice, team_a, handbook, chat_model
):
    """An ask naming a folder and no collections (an API client, say) searches the folder's
    collections, as the browser does by sending them; collections named in the ask still win."""
    from chat import services

    await _collection_with(
        team_a, "Berlin", "# Leave in Berlin\n\nStaff in Berlin get 30 days of paid leave.\n"
    )
    berlin = await Collection.objects.aget(name="Berlin")
    folder = await sync_to_async(services.folder_create)(user=alice, name="Berlin office")
    await sync_to_async(services.folder_update)(folder=folder, collection_ids=[berlin.id])
    ws = await connect(alice)
    accepted = await ask(ws, "How many days of paid leave do employees get?", folder=folder.id)
    events = await until_done(ws)
    conversation = await Conversation.objects.aget(id=accepted["conversation_id"])
    assert [c.id async for c in conversation.collections.all()] == [berlin.id]
    assert {s["title"] for s in events[-2]["sources"]} == {"Berlin"}, text_of(events)
    told = await ask(
        ws, "How many days of paid leave do employees get?", folder=folder.id, collections=[handbook.id]
    )
    events = await until_done(ws)
    conversation = await Conversation.objects.aget(id=told["conversation_id"])
    assert [c.id async for c in conversation.collections.all()] == [handbook.id]
    assert {s["title"] for s in events[-2]["sources"]} == {"handbook"}, text_of(events)
    await ws.disconnect()


async def test_a_conversations_chosen_model_writes_its_answers_and_its_usage(
    alice, handbook, openai_provider, settings
):
    """The ask frame's `model` (one of DOCENT_CHAT_MODELS) is the conversation's: its answers, the
    follow-ups' and a regeneration's, are asked of that model and counted under it; a model not
    offered is refused; without one, the default writes them."""
    from chat.models import Conversation, Usage

    settings.DOCENT_CHAT_MODELS = ["fake-big"]
    ws = await connect(alice)
    refused = await ask(ws, "How many days of paid leave do employees get?", model="gpt-unknown")
    assert refused["type"] == "error" and refused["code"] == "invalid" and "gpt-unknown" in refused["message"]
    accepted = await ask(ws, "How many days of paid leave do employees get?", model="fake-big")
    events = await until_done(ws)
    assert events[-1]["finish_reason"] == "stop", text_of(events)
    assert events[-1]["model"] == "fake-big"  # who wrote it, in its done frame
    conversation = accepted["conversation_id"]
    await ask(ws, "And how are travel expenses reimbursed?", conversation_id=conversation)
    await until_done(ws)
    await ws.send_json_to({"type": "regenerate", "message_id": accepted["message_id"], "request_id": "again"})
    await ws.receive_json_from(timeout=30)
    await until_done(ws)
    asked = [r["body"]["model"] for r in openai_provider.requests_to("/chat/completions")]
    assert asked and set(asked) == {"fake-big"}, asked
    assert (await Conversation.objects.aget(id=conversation)).model == "fake-big"
    models = {u.model async for u in Usage.objects.filter(user=alice)}
    assert models == {"fake-big"}
    await ask(ws, "How many days of paid leave do employees get?")
    await until_done(ws)
    assert openai_provider.requests_to("/chat/completions")[-1]["body"]["model"] == "fake-chat"
    await ws.disconnect()


async def test_the_askers_own_instructions_reach_the_model_with_every_question_and_are_screened(
    alice, bob, handbook, openai_provider
):
    from chat import services
    from chat.models import ModerationRule

    await sync_to_async(services.instructions_set)(user=alice, instructions="Answer briefly, in German.")
    ws = await connect(alice)
    accepted = await ask(ws, "How many days of paid leave do employees get?")
    await until_done(ws)
    # A regeneration reads the stored conversation (a follow-up's path) rather than the new one's.
    await ws.send_json_to({"type": "regenerate", "message_id": accepted["message_id"], "request_id": "again"})
    await ws.receive_json_from(timeout=30)
    await until_done(ws)
    systems = [r["body"]["messages"][0]["content"] for r in openai_provider.requests_to("/chat/completions")]
    assert len(systems) == 2 and all("Answer briefly, in German." in s for s in systems)
    # They reach the model: a content rule they break refuses the question, as if it were in it.
    await ModerationRule.objects.acreate(kind="phrase", pattern="in German", category="test")
    await ask(ws, "How many days of paid leave do employees get?")
    events = await until_done(ws)
    assert events[-1]["type"] == "error" and events[-1]["code"] == "moderation_blocked", events[-1]
    await ws.disconnect()


async def test_a_folders_instructions_reach_the_model_for_its_conversations_only(
    alice, handbook, openai_provider
):
    """A folder's instructions go with every question asked in its conversations (the first one's
    and a regeneration's), after the person's own; not with a conversation outside it."""
    from chat import services

    await sync_to_async(services.instructions_set)(user=alice, instructions="Answer briefly.")
    folder = await sync_to_async(services.folder_create)(user=alice, name="Berlin")
    await sync_to_async(services.folder_update)(folder=folder, instructions="I work in the Berlin office.")
    ws = await connect(alice)
    accepted = await ask(ws, "How many days of paid leave do employees get?", folder=folder.id)
    await until_done(ws)
    # A regeneration reads the stored conversation, as a follow-up does.
    await ws.send_json_to({"type": "regenerate", "message_id": accepted["message_id"], "request_id": "again"})
    await ws.receive_json_from(timeout=30)
    await until_done(ws)
    await ask(ws, "How many days of paid leave do employees get?")
    await until_done(ws)
    await ws.disconnect()
    requests = openai_provider.requests_to("/chat/completions")
    systems = [r["body"]["messages"][0]["content"] for r in requests]
    assert len(systems) == 3
    for system in systems[:2]:
        assert "Answer briefly.\n\nI work in the Berlin office." in system
    assert "Answer briefly." in systems[2] and "Berlin" not in systems[2]


async def test_a_greeting_is_answered_in_kind_without_a_search_or_a_model(alice, handbook, openai_provider):
    """A greeting ("Hi") is the first thing many users type: it gets one back, not a refusal."""
    ws = await connect(alice)
    accepted = await ask(ws, "Hi!")
    events = await until_done(ws)
    await ws.disconnect()
    assert events[-1]["finish_reason"] == "stop"
    assert text_of(events).startswith("Hello!") and events[-2]["sources"] == []
    assert openai_provider.requests_to("/chat/completions") == []
    answer = await Message.objects.aget(id=accepted["message_id"])
    assert answer.status == "complete" and answer.text == text_of(events)


async def test_refusal_never_calls_the_provider(alice, handbook, openai_provider):
    ws = await connect(alice)
    await ask(ws, "Who won the 1986 football world cup?")
    events = await until_done(ws)
    assert events[-1]["finish_reason"] == "refused"
    assert openai_provider.requests_to("/chat/completions") == []
    await ws.disconnect()


async def test_a_figure_its_passage_lacks_is_flagged_on_its_citation(alice, handbook, openai_provider):
    """The model cites the handbook for 40 days of leave (it says 25): the answer is shown as
    written, and its sources event, stored message and conversation API name the figure to check."""
    from prometheus_client import REGISTRY

    from chat import selectors

    def counted(verdict):
        return (
            REGISTRY.get_sample_value("docent_citations_total", {"source": "chat", "verdict": verdict}) or 0.0
        )

    held, to_check = counted("held"), counted("to_check")
    openai_provider.reply = "Employees get 25 days of leave [1]. Unused leave lapses after 40 days [1]."
    ws = await connect(alice)
    accepted = await ask(ws, "How many days of paid leave do employees get?")
    events = await until_done(ws)
    assert text_of(events) == openai_provider.reply
    expected = [{"marker": 1, "n": 1, "missing": ["40"]}]
    assert events[-2]["type"] == "sources" and events[-2]["checks"] == expected
    answer = await Message.objects.aget(id=accepted["message_id"])
    assert answer.checks == expected and selectors.message_out(answer)["checks"] == expected
    assert (counted("held"), counted("to_check")) == (held + 1, to_check + 1)  # in /metrics
    await ws.disconnect()


async def test_v1_names_the_figure_to_check_too(alice, handbook, openai_provider, async_client):
    from retrieval import services as retrieval_services

    openai_provider.reply = "Unused leave lapses after 40 days [1]."
    raw = (await sync_to_async(retrieval_services.api_key_create)(user=alice))[1]
    response = await async_client.post(
        "/v1/chat/completions",
        {"model": "docent", "messages": [{"role": "user", "content": "When does unused leave lapse?"}]},
        content_type="application/json",
        headers={"Authorization": f"Bearer {raw}"},
    )
    assert response.status_code == 200
    assert response.json()["docent"]["checks"] == [{"marker": 0, "n": 1, "missing": ["40"]}]


async def test_a_conversation_narrowed_to_a_document_answers_from_it_alone(alice, handbook, falcon):
    """Asked about one document, the answer and its follow-ups cite only that document; a document of
    another team is not found."""
    from retrieval import services as retrieval_services
    from retrieval.models import Document
    from retrieval.tests.helpers import upload

    contractors, _ = await sync_to_async(upload)(
        handbook,
        "contractors.md",
        b"# Contractors\n\n## Leave\nContractors get 10 days of paid annual leave per year.\n",
        enqueue=False,
    )
    await sync_to_async(retrieval_services.documents_ingest)(document_ids=[contractors.id])
    secret = await Document.objects.aget(collection=falcon)
    ws = await connect(alice)
    refused = await ask(ws, "Launch date?", documents=[secret.id])
    assert refused["type"] == "error" and refused["code"] == "not_found"
    first = await ask(ws, "How many days of paid annual leave do employees get?", documents=[contractors.id])
    events = await until_done(ws)
    assert {s["document_id"] for s in events[-2]["sources"]} == {contractors.id}
    assert "10 days" in text_of(events)
    await ask(ws, "And how many days of paid leave per year?", conversation_id=first["conversation_id"])
    events = await until_done(ws)
    assert {s["document_id"] for s in events[-2]["sources"]} == {contractors.id}
    await ws.disconnect()


async def test_v1_narrows_to_documents_too(alice, handbook, falcon, async_client):
    from retrieval import services as retrieval_services
    from retrieval.models import Document

    raw = (await sync_to_async(retrieval_services.api_key_create)(user=alice))[1]
    mine = await Document.objects.aget(collection=handbook)
    secret = await Document.objects.aget(collection=falcon)

    async def complete(documents):
        return await async_client.post(
            "/v1/chat/completions",
            {"messages": [{"role": "user", "content": "How many days of leave?"}], "documents": documents},
            content_type="application/json",
            headers={"Authorization": f"Bearer {raw}"},
        )

    answered = await complete([mine.id])
    assert answered.status_code == 200
    assert {s["document_id"] for s in answered.json()["sources"]} == {mine.id}
    assert (await complete([secret.id])).status_code == 404
    assert (await complete("all")).status_code == 400


async def test_disconnect_then_resume_on_a_new_socket(alice, handbook, openai_provider):
    """Closing the socket does not stop the answer; resume replays what was missed, then goes live."""
    openai_provider.reply = " ".join(f"word{i}" for i in range(60)) + " [1]"
    openai_provider.token_delay = 0.02
    ws = await connect(alice)
    accepted = await ask(ws, "How many days of paid leave do employees get?")
    seen = [await ws.receive_json_from(timeout=10) for _ in range(5)]
    await ws.disconnect()
    await asyncio.sleep(0.3)
    ws2 = await connect(alice)
    await ws2.send_json_to({"type": "resume", "message_id": accepted["message_id"], "after": seen[-1]["seq"]})
    rest = await until_done(ws2)
    assert rest[0]["seq"] > seen[-1]["seq"]  # the missed deltas, possibly merged into one frame
    assert rest[0]["prev_seq"] == seen[-1]["seq"]
    assert rest[-1]["finish_reason"] == "stop"
    full = text_of(seen + rest)
    assert full == openai_provider.reply
    answer = await Message.objects.aget(id=accepted["message_id"])
    assert answer.text == full and answer.status == "complete"
    await ws2.disconnect()


async def test_stop_cancels_within_a_second_and_keeps_partial_text(alice, handbook, openai_provider):
    openai_provider.reply = " ".join(f"w{i}" for i in range(400))
    openai_provider.token_delay = 0.05
    ws = await connect(alice)
    accepted = await ask(ws, "How many days of paid leave do employees get?")
    for _ in range(3):
        await ws.receive_json_from(timeout=10)
    loop = asyncio.get_running_loop()
    asked = loop.time()
    await ws.send_json_to({"type": "stop", "message_id": accepted["message_id"]})
    events = await until_done(ws, wait=5)
    assert events[-1]["finish_reason"] == "stopped"
    assert loop.time() - asked < 1.0
    answer = await Message.objects.aget(id=accepted["message_id"])
    assert answer.status == "stopped" and answer.text.startswith("w0 w1")
    assert len(answer.text.split()) < 400
    await ws.disconnect()


async def test_other_teams_passages_never_reach_the_prompt(bob, alice, handbook, falcon, openai_provider):
    """Bob (team B) asks about leave: the prompt at the provider holds none of team A's text, and vice versa."""
    openai_provider.reply = "Answer [1]."
    ws = await connect(bob)
    await ask(ws, "How many days of paid annual leave do employees get per year?")
    events = await until_done(ws)
    for request in openai_provider.requests_to("/chat/completions"):
        prompt = " ".join(m["content"] for m in request["body"]["messages"])
        assert "25 days" not in prompt and "encryption" not in prompt
    for source in events[-2]["sources"] if events[-2]["type"] == "sources" else []:
        assert "handbook" not in source["title"].lower()
    await ws.disconnect()


async def test_invalid_citation_numbers_are_stripped(alice, handbook, openai_provider):
    openai_provider.reply = "Leave is 25 days [1][9]. Also see [42] and [1, 7]."
    ws = await connect(alice)
    accepted = await ask(ws, "How many days of paid leave do employees get?")
    events = await until_done(ws)
    text = text_of(events)
    assert "[9]" not in text and "[42]" not in text and "[7]" not in text
    assert text == "Leave is 25 days [1]. Also see  and [1]."
    assert [s["n"] for s in events[-2]["sources"]] == [1]
    answer = await Message.objects.aget(id=accepted["message_id"])
    assert [c["n"] for c in answer.citations] == [1]
    await ws.disconnect()


@pytest.mark.parametrize(
    ("faults", "expect"),
    [
        ([{"status": 429, "retry_after": 1}], "stop"),
        ([{"status": 503}, {"status": 500}], "stop"),
        ([{"status": 500}] * 3, "provider_unavailable"),
        ([{"stall": 3}] * 3, "provider_unavailable"),
        ([{"cut_after": 4}], "interrupted"),
        ([{"malformed_at": 3}], "interrupted"),
        ([{"cut_after": 3, "stall": 5}], "interrupted"),
    ],
    ids=[
        "429-then-ok",
        "5xx-then-ok",
        "5xx-forever",
        "stall-before-first-token",
        "cut-mid-stream",
        "malformed-chunk",
        "stall-mid-stream",
    ],
)
async def test_provider_faults_end_in_documented_state(
    alice, handbook, openai_provider, settings, faults, expect
):
    openai_provider.reply = "Employees get 25 days of paid annual leave [1] and can carry it over [1]."
    for fault in faults:
        openai_provider.add_fault(path="/chat/completions", **fault)
    if expect == "interrupted":
        openai_provider.token_delay = 0.01
        settings.DOCENT_PROVIDER_TIMEOUT_S = 2  # a stalled stream is given up after this
    ws = await connect(alice)
    accepted = await ask(ws, "How many days of paid leave do employees get?")
    events = await until_done(ws, wait=30)
    answer = await Message.objects.aget(id=accepted["message_id"])
    if expect == "provider_unavailable":
        assert events[-1]["type"] == "error" and events[-1]["code"] == "provider_unavailable"
        assert answer.status == "failed" and answer.error_code == "provider_unavailable"
    elif expect == "interrupted":
        assert events[-1]["finish_reason"] == "interrupted"
        assert answer.status == "interrupted" and answer.text == text_of(events) and answer.text
        assert openai_provider.reply.startswith(answer.text.replace("[1]", "[1]").strip())
    else:
        assert events[-1]["finish_reason"] == "stop" and answer.status == "complete"
        assert text_of(events) == openai_provider.reply
    await ws.disconnect()


async def test_protocol_errors(alice, bob, handbook, falcon, chat_model):
    ws = await connect(alice)
    await ws.send_to(text_data="not json")
    assert (await ws.receive_json_from())["code"] == "invalid"
    await ws.send_json_to({"type": "ask", "request_id": "r1", "content": ""})
    assert (await ws.receive_json_from())["code"] == "invalid"
    await ws.send_to(text_data='{"type": "ask", "content": "' + "x" * 70_000 + '"}')
    assert (await ws.receive_json_from())["code"] == "invalid"
    await ws.send_json_to({"type": "ask", "request_id": "r1", "content": "hi", "collections": [True]})
    assert (await ws.receive_json_from())["message"] == "collections must be a list of ids"  # no id
    await ws.send_json_to({"type": "ask", "request_id": "r" * 101, "content": "hi"})
    assert "1 to 100 characters" in (await ws.receive_json_from())["message"]
    await ws.send_json_to({"type": "ask", "content": "hi"})  # an ask without one
    assert "1 to 100 characters" in (await ws.receive_json_from())["message"]
    for escaped in ("\\u0000", "\\ud800"):  # NUL, an unpaired surrogate: no database or tokenizer takes them
        await ws.send_to(text_data='{"type": "ask", "request_id": "r0", "content": "a' + escaped + 'b"}')
        error = await ws.receive_json_from()
        assert (error["code"], error["request_id"]) == ("invalid", "r0") and "NUL" in error["message"]
    await ws.send_json_to({"type": "ask", "request_id": "r2", "content": "hi", "collections": [falcon.id]})
    error = await ws.receive_json_from()
    assert error["code"] == "not_found" and error["request_id"] == "r2"
    other = await Message.objects.acount()
    await ws.send_json_to(
        {"type": "ask", "request_id": "r3", "content": "hi", "conversation_id": "not-a-uuid"}
    )
    assert (await ws.receive_json_from())["code"] == "not_found"
    await ws.send_json_to({"type": "resume", "message_id": "nope", "after": 0})
    assert (await ws.receive_json_from())["code"] == "not_found"
    await ws.send_json_to({"type": "dance"})
    assert (await ws.receive_json_from())["code"] == "invalid"
    assert await Message.objects.acount() == other == 0
    # Bob's message cannot be resumed or stopped by Alice.
    bws = await connect(bob)
    accepted = await ask(bws, "When is the Falcon launch date?")
    await until_done(bws)
    for frame in (
        {"type": "resume", "message_id": accepted["message_id"], "after": 0},
        {"type": "stop", "message_id": accepted["message_id"]},
        {"type": "regenerate", "message_id": accepted["message_id"]},
    ):
        await ws.send_json_to(frame)
        assert (await ws.receive_json_from())["code"] == "not_found"
    await ws.disconnect()
    await bws.disconnect()


async def test_anonymous_and_foreign_origin_refused(alice):
    anonymous = WebsocketCommunicator(application, "/ws/chat/", headers=[(b"origin", b"http://localhost")])
    assert not (await anonymous.connect())[0]
    from .conftest import session_cookie

    cookie = await sync_to_async(session_cookie)(alice)
    foreign = WebsocketCommunicator(
        application,
        "/ws/chat/",
        headers=[(b"origin", b"https://evil.example"), (b"cookie", f"sessionid={cookie}".encode())],
    )
    assert not (await foreign.connect())[0]


async def test_deactivated_user_is_refused_and_closed(alice, handbook, chat_model):
    ws = await connect(alice)
    alice.is_active = False
    await alice.asave()
    await ws.send_json_to({"type": "ask", "request_id": "r", "content": "leave?"})
    error = await ws.receive_json_from()
    assert error["type"] == "error"
    assert (await ws.receive_output())["type"] == "websocket.close"


async def test_removed_from_team_is_refused_and_closed(alice, handbook, chat_model):
    from retrieval.models import Membership

    ws = await connect(alice)
    first = await ask(ws, "How many days of leave?", collections=[handbook.id])
    await until_done(ws)
    await Membership.objects.filter(user=alice).adelete()
    await ws.send_json_to(
        {
            "type": "ask",
            "request_id": "r9",
            "content": "And expenses?",
            "conversation_id": first["conversation_id"],
        }
    )
    error = await ws.receive_json_from()
    assert error["type"] == "error" and error["code"] == "not_found"
    assert (await ws.receive_output())["type"] == "websocket.close"


async def test_a_conversation_scoped_to_a_deleted_collection_goes_on_over_the_rest(
    alice, handbook, make_collection, chat_model
):
    """Its scope empties with the collection, so follow-ups search what the owner may read (as the
    page then shows: "Collections: all"), instead of closing the socket as for a lost team."""
    from retrieval import services as retrieval_services
    from retrieval.tests.helpers import upload

    policies = await sync_to_async(make_collection)(handbook.team, "policies")
    document, _ = await sync_to_async(upload)(
        policies, "travel.md", b"# Travel\n\nTrain travel is booked in second class.\n", enqueue=False
    )
    await sync_to_async(retrieval_services.documents_ingest)(document_ids=[document.id])
    ws = await connect(alice)
    first = await ask(ws, "How many days of leave?", collections=[handbook.id])
    await until_done(ws)
    await sync_to_async(retrieval_services.collection_delete)(collection=handbook)
    follow_up = await ask(
        ws, "In which class is train travel booked?", conversation_id=first["conversation_id"]
    )
    assert follow_up["type"] == "accepted"
    events = await until_done(ws)
    assert "second class" in "".join(e["text"] for e in events if e["type"] == "delta")
    await ws.disconnect()


async def test_regenerate_makes_a_new_answer(alice, handbook, chat_model):
    ws = await connect(alice)
    first = await ask(ws, "How are travel expenses reimbursed?")
    await until_done(ws)
    # Its request_id is optional, but checked as an ask's when given.
    await ws.send_json_to({"type": "regenerate", "message_id": first["message_id"], "request_id": 7})
    assert "1 to 100 characters" in (await ws.receive_json_from(timeout=10))["message"]
    await ws.send_json_to({"type": "regenerate", "message_id": first["message_id"]})
    again = await ws.receive_json_from(timeout=10)
    assert again["type"] == "accepted" and again["message_id"] != first["message_id"]
    assert again["user_message_id"] == first["user_message_id"]
    events = await until_done(ws)
    assert events[-1]["type"] == "done"
    await ws.disconnect()


async def test_an_edited_question_is_a_new_version_answered_anew(alice, handbook, chat_model):
    """A mistyped question reworded: the new words are answered, after the exchanges before it; the
    old words keep their answer, out of the thread shown. Any question may be reworded."""
    ws = await connect(alice)
    first = await ask(ws, "How are travel expenses reimbursed?")
    await until_done(ws)
    mistyped = await ask(ws, "How many days of paid leaf?", conversation_id=first["conversation_id"])
    await until_done(ws)

    async def edit(message_id: str, content: str, request_id: str) -> dict:
        await ws.send_json_to(
            {"type": "edit", "message_id": message_id, "content": content, "request_id": request_id}
        )
        return await ws.receive_json_from(timeout=10)

    accepted = await edit(mistyped["user_message_id"], "How many days of paid leave do employees get?", "e1")
    assert accepted["type"] == "accepted" and accepted["request_id"] == "e1"
    assert accepted["user_message_id"] != mistyped["user_message_id"]
    events = await until_done(ws)
    answer = "".join(e["text"] for e in events if e["type"] == "delta")
    assert "25 days" in answer
    reworded = await Message.objects.aget(id=accepted["user_message_id"])
    assert reworded.text == "How many days of paid leave do employees get?"
    assert str(reworded.parent_id) == first["message_id"] == accepted["parent"] == mistyped["parent"]
    assert first["parent"] is None  # a conversation's first question follows nothing
    assert (await Message.objects.aget(id=mistyped["message_id"])).text  # kept, with its question

    def shown():
        conversation = Conversation.objects.get(id=first["conversation_id"])
        return [m.text for m in selectors.conversation_thread(conversation=conversation)]

    texts = await sync_to_async(shown)()
    assert len(texts) == 4 and texts[2] == reworded.text and "25 days" in texts[3]

    # The same edit again (its `accepted` lost with a socket): the answer it started, not a new one.
    repeated = await edit(mistyped["user_message_id"], "How many days of paid leave do employees get?", "e1")
    assert repeated["type"] == "accepted" and repeated["message_id"] == accepted["message_id"]
    assert text_of(await until_done(ws)) == answer
    assert await Message.objects.filter(reply_to_id=accepted["user_message_id"]).acount() == 1

    # The first question reworded: a new start, the rest of the conversation behind the old words.
    again = await edit(first["user_message_id"], "How are train tickets booked?", "e2")
    assert again["type"] == "accepted" and again["parent"] is None
    await until_done(ws)
    texts = await sync_to_async(shown)()
    assert len(texts) == 2 and texts[0] == "How are train tickets booked?"
    assert await Message.objects.filter(conversation_id=first["conversation_id"]).acount() == 8
    await ws.disconnect()


async def test_streaming_text_is_checkpointed_before_the_answer_ends(
    alice, handbook, openai_provider, settings
):
    """A process that dies mid-answer loses at most one checkpoint interval of text."""
    settings.DOCENT_CHECKPOINT_S = 0.2
    openai_provider.reply = " ".join(f"w{i}" for i in range(100))
    openai_provider.token_delay = 0.03
    ws = await connect(alice)
    accepted = await ask(ws, "How many days of paid leave do employees get?")
    await asyncio.sleep(1.5)
    answer = await Message.objects.aget(id=accepted["message_id"])
    assert answer.status == "streaming" and answer.text.startswith("w0 w1 w2")
    assert openai_provider.reply.startswith(answer.text) and answer.text != openai_provider.reply
    events = await until_done(ws)
    assert events[-1]["finish_reason"] == "stop"
    answer = await Message.objects.aget(id=accepted["message_id"])
    assert answer.text == openai_provider.reply and answer.status == "complete"
    await ws.disconnect()


def test_deltas_after_a_replacement_stay_part_of_it():
    """A stream that caught up after a Redis outage holds the whole text so far in one `replace`
    delta; deltas read with it join it, and the frame still replaces what the client had."""
    from chat.consumers import _merge_deltas

    events = [
        {"type": "delta", "text": "a", "seq": 3},
        {"type": "delta", "text": "whole so far", "seq": 9, "replace": True},
        {"type": "delta", "text": " and more", "seq": 10},
        {"type": "sources", "sources": [], "seq": 11},
    ]
    assert _merge_deltas(events, 2) == [
        {"type": "delta", "text": "a", "seq": 3, "prev_seq": 2},
        {"type": "delta", "text": "whole so far and more", "seq": 10, "replace": True, "prev_seq": 3},
        {"type": "sources", "sources": [], "seq": 11, "prev_seq": 10},
    ]


@pytest.mark.django_db(transaction=True)
async def test_answers_are_counted_in_metrics_by_outcome(alice, handbook, chat_model):
    """Each ended answer counts by its outcome, with its time to first text and its tokens; an open
    chat socket shows in the websocket gauge."""
    from prometheus_client import REGISTRY

    def sample(name, **labels):
        return REGISTRY.get_sample_value(name, labels) or 0.0

    answered = sample("docent_answers_total", source="chat", outcome="stop")
    refused = sample("docent_answers_total", source="chat", outcome="refused")
    ttfts = sample("docent_answer_ttft_seconds_count", source="chat")
    tokens = sample("docent_tokens_total", source="chat", kind="completion")
    sockets = sample("docent_websocket_connections", path="chat")
    ws = await connect(alice)
    assert sample("docent_websocket_connections", path="chat") == sockets + 1
    await ask(ws, "How many days of paid leave do employees get?")
    done = (await until_done(ws))[-1]
    await ask(ws, "What is the airspeed of an unladen swallow?")
    assert (await until_done(ws))[-1]["finish_reason"] == "refused"
    assert sample("docent_answers_total", source="chat", outcome="stop") == answered + 1
    assert sample("docent_answers_total", source="chat", outcome="refused") == refused + 1
    assert sample("docent_answer_ttft_seconds_count", source="chat") == ttfts + 2
    assert sample("docent_tokens_total", source="chat", kind="completion") > tokens
    assert done["usage"]["completion_tokens"] > 0
    await ws.disconnect()
    assert sample("docent_websocket_connections", path="chat") == sockets
