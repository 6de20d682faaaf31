from chat import services
from chat.selectors import conversations_with_messages, plain, snippet


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
