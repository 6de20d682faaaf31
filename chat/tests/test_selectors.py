import uuid
from datetime import UTC, datetime, timedelta

from chat import services
from chat.models import Message
from chat.selectors import conversations_with_messages, plain, snippet, thread_order


def test_a_short_message_is_its_own_snippet_on_one_line():
    assert snippet("How many\n\n  days of leave?", "DAYS") == "How many days of leave?"


def test_a_long_message_is_cut_at_words_around_its_first_match():
    words = " ".join(f"w{i}" for i in range(200))
    text = f"{words} the travel policy says {words}"
    cut = snippet(text, "Travel Policy", size=60)
    assert cut.startswith("…") and cut.endswith("…")
    inner = cut.strip("…")
    assert "the travel policy says" in inner and len(inner) <= 60
    # Whole words only: every word is one of the text's.
    assert set(inner.split()) <= set(text.split())
    # The match sits in the first half, after a little of what came before it.
    assert 0 < inner.index("travel") < 30


def test_a_match_at_either_end_keeps_that_end():
    text = "Leave policy " + "filler " * 50 + "ends here"
    assert snippet(text, "leave", size=40).startswith("Leave policy")
    assert snippet(text, "ends here", size=40).endswith("ends here") and snippet(
        text, "ends here", size=40
    ).startswith("…")


def test_no_match_gives_the_start():
    assert snippet("alpha beta gamma delta", "zeta", size=11) == "alpha beta…"


def test_an_answers_markdown_is_left_out_of_its_words():
    answer = "From your documents:\n\n- The **limit** is `50 MB` [1].\n- Larger files get 413 [2][3].\n"
    assert plain(answer) == "From your documents:\n\nThe limit is 50 MB.\nLarger files get 413.\n"
    assert snippet(plain(answer), "50 mb") == "From your documents: The limit is 50 MB. Larger files get 413."
    assert plain("-5 degrees\n1999 was warm\n1. First") == "-5 degrees\n1999 was warm\nFirst"


def test_conversations_are_read_a_batch_at_a_time_newest_first_each_with_its_own_messages(
    alice, bob, django_assert_max_num_queries
):
    made = []
    for n in range(5):
        ids = services.exchange_start(
            user=alice,
            conversation_id=None,
            request_id=f"b{n}",
            content=f"Question {n}?",
            collection_ids=None,
        )
        made.append(ids["conversation_id"])
    services.exchange_start(
        user=bob, conversation_id=None, request_id="bob", content="Bob?", collection_ids=None
    )
    # Each batch is one read of its conversations and one of their messages, after one of the ids.
    with django_assert_max_num_queries(1 + 2 * 3):
        read = [
            (str(c.id), [m.text for m in ms]) for c, ms in conversations_with_messages(user=alice, batch=2)
        ]
    assert read == [(cid, [f"Question {n}?", ""]) for n, cid in reversed(list(enumerate(made)))]


def _tree(shape: list[tuple[str, str, str | None]]) -> dict[str, Message]:
    """Unsaved messages from (name, role, the answer a question follows or the question an answer
    replies to), made a minute apart in the order given."""
    start = datetime(2026, 11, 1, tzinfo=UTC)
    made: dict[str, Message] = {}
    for i, (name, role, up) in enumerate(shape):
        m = Message(id=uuid.uuid4(), role=role, created_at=start + timedelta(minutes=i))
        if up is not None:
            setattr(m, "parent" if role == "user" else "reply_to", made[up])
        made[name] = m
    return made


def test_the_thread_shown_takes_the_chosen_or_latest_version_at_every_turn():
    m = _tree(
        [
            ("q1", "user", None),
            ("a1", "assistant", "q1"),
            ("q2", "user", "a1"),
            ("a2", "assistant", "q2"),
            ("a1b", "assistant", "q1"),  # regenerated: a branch with nothing after it yet
            ("q2b", "user", "a1"),  # q2 reworded, in a1's branch
            ("a2b", "assistant", "q2b"),
        ]
    )
    order = thread_order(list(m.values()))
    name = {v.id: k for k, v in m.items()}
    assert [name[x.id] for x in order] == ["q1", "a1", "a1b", "q2", "a2", "q2b", "a2b"]
    assert [name[x.id] for x in order if x.shown] == ["q1", "a1b"]
    m["a1"].chosen_at = m["a2b"].created_at + timedelta(minutes=1)
    assert [name[x.id] for x in thread_order(list(m.values())) if x.shown] == ["q1", "a1", "q2b", "a2b"]
    m["q2"].chosen_at = m["a1"].chosen_at + timedelta(minutes=1)
    assert [name[x.id] for x in thread_order(list(m.values())) if x.shown] == ["q1", "a1", "q2", "a2"]


def test_a_thread_deeper_than_pythons_recursion_is_ordered():
    shape, up = [], None
    for i in range(1500):
        shape += [(f"q{i}", "user", up), (f"a{i}", "assistant", f"q{i}")]
        up = f"a{i}"
    m = _tree(shape)
    order = thread_order(list(reversed(m.values())))  # any order in: the tree's order out
    assert [x.id for x in order] == [v.id for v in m.values()] and all(x.shown for x in order)
