import pytest
from django.utils import timezone

from chat import selectors, services
from chat.models import Conversation, Message

from .conftest import answered, regenerated

pytestmark = pytest.mark.django_db


def _answer(user, status, text=""):
    ids = services.exchange_start(
        user=user, conversation_id=None, request_id=f"r-{status}-{text}", content="q", collection_ids=None
    )
    old = timezone.now() - timezone.timedelta(minutes=10)
    Message.objects.filter(id=ids["message_id"]).update(status=status, text=text, heartbeat_at=old)
    return ids["message_id"]


def test_checkpoint_saves_streaming_texts_and_heartbeats_but_leaves_ended_answers_alone(alice):
    streaming = _answer(alice, "streaming", "Employees")
    waiting = _answer(alice, "pending")
    ended = _answer(alice, "complete", "Employees get 25 days.")
    services.messages_checkpoint(
        texts={streaming: "Employees get", ended: "Employees"}, alive=[streaming, waiting, ended]
    )
    fresh = timezone.now() - timezone.timedelta(seconds=30)
    by_id = {str(m.id): m for m in Message.objects.filter(id__in=[streaming, waiting, ended])}
    assert by_id[streaming].text == "Employees get" and by_id[streaming].heartbeat_at > fresh
    assert by_id[waiting].heartbeat_at > fresh  # a heartbeat without text
    assert by_id[ended].text == "Employees get 25 days." and by_id[ended].heartbeat_at < fresh


def test_sweep_ledgers_what_an_interrupted_answer_had_sent(alice):
    """An answer whose process died is marked interrupted once; its prompt (as last checkpointed) and
    the text it had sent count in the usage ledger, once, and an answer still alive is left alone."""
    from chat.models import Usage
    from retrieval.embeddings import count_tokens

    dead = _answer(alice, "streaming", "Employees")
    silent = _answer(alice, "pending")
    alive = _answer(alice, "streaming", "Expenses are")
    old = timezone.now() - timezone.timedelta(minutes=10)
    services.messages_checkpoint(
        texts={dead: "Employees get twenty-five days"}, alive=[], prompt_tokens={dead: 812}
    )
    Message.objects.filter(id=dead).update(heartbeat_at=old)  # then its process died
    services.messages_checkpoint(texts={alive: "Expenses are paid"}, alive=[alive])
    assert sorted(services.messages_sweep_interrupted(stale_after_s=60)) == sorted([dead, silent])
    assert services.messages_sweep_interrupted(stale_after_s=60) == []
    ledger = list(Usage.objects.values_list("message_id", "prompt_tokens", "completion_tokens"))
    assert [(str(m), p, c) for m, p, c in ledger] == [
        (dead, 812, count_tokens("Employees get twenty-five days"))
    ]
    assert Message.objects.get(id=alive).status == "streaming"


def test_an_edited_question_renames_a_conversation_named_after_it_but_not_a_renamed_one(alice):

    ids = services.exchange_start(
        user=alice, conversation_id=None, request_id="t1", content="Leaf policy?", collection_ids=None
    )
    with pytest.raises(services.NotEditable):  # its answer has not ended
        services.question_edit(user=alice, message_id=ids["user_message_id"], content="Leave policy?")
    Message.objects.filter(id=ids["message_id"]).update(status="complete", text="...")
    again = services.question_edit(user=alice, message_id=ids["user_message_id"], content="Leave policy?")
    # A new version of the question, beside the old one and its answer.
    assert again["message_id"] != ids["message_id"] and again["user_message_id"] != ids["user_message_id"]
    reworded = Message.objects.get(id=again["user_message_id"])
    assert reworded.text == "Leave policy?" and reworded.parent_id is None
    assert Message.objects.get(id=ids["user_message_id"]).text == "Leaf policy?"
    assert Conversation.objects.get(id=ids["conversation_id"]).title == "Leave policy?"

    Conversation.objects.filter(id=ids["conversation_id"]).update(title="HR questions")
    Message.objects.filter(id=again["message_id"]).update(status="complete")
    services.question_edit(user=alice, message_id=ids["user_message_id"], content="Parental leave policy?")
    assert Conversation.objects.get(id=ids["conversation_id"]).title == "HR questions"
    assert Message.objects.filter(conversation_id=ids["conversation_id"]).count() == 6


def test_only_the_owner_edits_a_question(alice, bob):
    ids = services.exchange_start(
        user=alice, conversation_id=None, request_id="t2", content="Mine?", collection_ids=None
    )
    Message.objects.filter(id=ids["message_id"]).update(status="complete")
    with pytest.raises(services.NotFound):
        services.question_edit(user=bob, message_id=ids["user_message_id"], content="Theirs?")


def test_a_question_reworded_in_a_branch_not_shown_is_shown_with_what_it_follows(alice):
    first = answered(alice, "b1", "Leave?", "25 days.")
    cid = first["conversation_id"]
    second = answered(alice, "b2", "Sick leaf?", "?", conversation_id=cid)
    regenerated(alice, first["message_id"], "b3", "Twenty-five.")

    def shown():
        conversation = Conversation.objects.get(id=cid)
        return [m.text for m in selectors.conversation_thread(conversation=conversation)]

    assert shown() == ["Leave?", "Twenty-five."]
    services.question_edit(user=alice, message_id=second["user_message_id"], content="Sick leave?")
    assert shown() == ["Leave?", "25 days.", "Sick leave?", ""]


def test_asking_in_a_long_conversation_takes_as_many_queries_as_in_a_short_one(alice):
    """Finding the answer a question follows reads the conversation's messages in one query (a
    deferred field read per message would be one each)."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    def queries_to_ask(exchanges: int) -> int:
        ids = services.exchange_start(
            user=alice, conversation_id=None, request_id=f"l{exchanges}-0", content="Q?", collection_ids=None
        )
        for n in range(1, exchanges + 1):
            services.message_finish(message_id=ids["message_id"], text="A.", status="complete")
            with CaptureQueriesContext(connection) as asked:
                ids = services.exchange_start(
                    user=alice,
                    conversation_id=ids["conversation_id"],
                    request_id=f"l{exchanges}-{n}",
                    content="Q?",
                    collection_ids=None,
                )
        return len(asked)

    assert queries_to_ask(2) == queries_to_ask(30)


def test_conversations_past_the_retention_are_deleted_in_batches_and_their_tokens_stay_counted(
    settings, alice, bob, client
):
    from datetime import timedelta

    from chat.models import Usage
    from retrieval.models import AuditEvent

    old = [
        answered(alice, f"r{n}", f"Q{n}?", "A.", prompt_tokens=10, completion_tokens=2)["conversation_id"]
        for n in range(3)
    ]
    recent = answered(bob, "r9", "Recent?", "A.")["conversation_id"]
    Conversation.objects.filter(id__in=old).update(updated_at=timezone.now() - timedelta(days=31))
    Conversation.objects.filter(id=old[0]).update(archived_at=timezone.now(), pinned_at=timezone.now())
    spent = selectors.usage_for_user(user=alice)

    settings.DOCENT_CONVERSATION_RETENTION_DAYS = 0  # kept for ever
    assert services.conversations_expire() == 0 and Conversation.objects.count() == 4
    settings.DOCENT_CONVERSATION_RETENTION_DAYS = 30
    assert services.conversations_expire(batch=2) == 3  # two batches
    assert [str(c) for c in Conversation.objects.values_list("id", flat=True)] == [str(recent)]
    assert selectors.usage_for_user(user=alice) == spent and Usage.objects.filter(user=alice).count() == 3
    event = AuditEvent.objects.get(action="conversations_expire")
    assert (event.actor_name, event.details) == ("", {"conversations": 3, "days": 30})
    assert services.conversations_expire() == 0 and AuditEvent.objects.count() == 1

    # The account page says so.
    client.force_login(alice)
    assert "no new question or answer for 30 days are deleted" in client.get("/account/").content.decode()
