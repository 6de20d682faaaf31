"""Data migrations, run down and up on the real database."""

from datetime import timedelta

import pytest
from django.utils import timezone

from chat.models import Conversation
from tests.support.migrations import migrate, migrate_to_latest

BEFORE, COPY = ("chat", "0009_conversation_documents"), ("chat", "0010_conversation_shared_copy")


@pytest.mark.django_db(transaction=True)
def test_a_link_shared_before_the_copy_shows_what_it_showed(alice, collection_a, collection_b):
    shared_at = timezone.now() - timedelta(hours=1)
    try:
        apps = migrate(BEFORE)
        Old, OldMessage = apps.get_model("chat", "Conversation"), apps.get_model("chat", "Message")
        conversation = Old.objects.create(owner_id=alice.id, share_token="tok", shared_at=shared_at)
        unshared = Old.objects.create(owner_id=alice.id)
        message = lambda **kw: OldMessage.objects.create(conversation=conversation, user_id=alice.id, **kw)  # noqa: E731
        question = message(role="user", text="Leave policy?")
        message(
            role="assistant",
            text="25 days [1].",
            reply_to=question,
            citations=[{"n": 1, "collection_id": collection_a.id}],
            sources=[{"n": 1, "collection_id": collection_a.id}, {"n": 2, "collection_id": collection_b.id}],
        )
        message(role="assistant", text="half an ans", status="streaming", reply_to=question)
        later = message(role="user", text="Asked after sharing?")
        OldMessage.objects.filter(conversation=conversation).exclude(id=later.id).update(
            created_at=shared_at - timedelta(minutes=1)
        )
    finally:
        migrate(COPY)
        migrate_to_latest()
    copied = Conversation.objects.get(id=conversation.id)
    assert [(m["role"], m["text"], m["sources"]) for m in copied.shared_messages] == [
        ("user", "Leave policy?", []),
        ("assistant", "25 days [1].", [{"n": 1, "collection_id": collection_a.id}]),
    ]
    assert copied.shared_collections == sorted([collection_a.id, collection_b.id])
    assert Conversation.objects.get(id=unshared.id).shared_messages is None


@pytest.mark.django_db(transaction=True)
def test_conversations_from_before_branches_read_as_they_did(alice):
    """Each later question follows the answer shown for the one before it (the version chosen, or
    the last made), so that an old conversation shows every exchange it showed, in order."""
    start = timezone.now() - timedelta(days=1)
    try:
        apps = migrate(("chat", "0014_preferences"))
        OldMessage = apps.get_model("chat", "Message")
        conversation = apps.get_model("chat", "Conversation").objects.create(owner_id=alice.id)
        made = []

        def message(**kw):
            m = OldMessage.objects.create(conversation=conversation, user_id=alice.id, **kw)
            OldMessage.objects.filter(id=m.id).update(created_at=start + timedelta(minutes=len(made)))
            made.append(m)
            return m

        q1 = message(role="user", text="Leave?")
        a1 = message(role="assistant", text="25 days.", reply_to=q1)
        q2 = message(role="user", text="Travel?")
        a2 = message(role="assistant", text="Economy.", reply_to=q2)
        a1b = message(role="assistant", text="Twenty-five.", reply_to=q1)  # regenerated afterwards
        a2b = message(role="assistant", text="Second class.", reply_to=q2)  # made later, but...
        OldMessage.objects.filter(id=a2.id).update(chosen_at=start + timedelta(hours=1))  # ...a2 turned to
        q3 = message(role="user", text="Hotels?")
        a3 = message(role="assistant", text="Four stars.", reply_to=q3)
    finally:
        migrate_to_latest()
    from chat import selectors

    shown = selectors.conversation_thread(conversation=Conversation.objects.get(id=conversation.id))
    assert [m.id for m in shown] == [q1.id, a1b.id, q2.id, a2.id, q3.id, a3.id]
    everything = selectors.conversation_messages(conversation=Conversation.objects.get(id=conversation.id))
    assert {m.id for m in everything if not m.shown} == {a1.id, a2b.id}  # kept, as other versions
