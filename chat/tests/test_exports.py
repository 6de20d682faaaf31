from chat.exports import conversation_markdown


def test_answers_keep_their_sources_quoted_and_say_how_they_ended():
    """Each cited passage is quoted under its answer with where it came from; an answer that did not
    end normally says so; a refused question is marked as such."""
    text = conversation_markdown(
        title="Leave",
        exported_at="2026-11-26 08:00 UTC",
        messages=[
            {"role": "user", "text": "How much leave?", "status": "complete"},
            {
                "role": "assistant",
                "text": "25 days [1].",
                "status": "complete",
                "sources": [
                    {
                        "n": 1,
                        "title": "Handbook",
                        "heading_path": "HR > Leave",
                        "page": 3,
                        "text": "25 days.\nPer year.",
                    }
                ],
            },
            {"role": "user", "text": "And more?", "status": "complete"},
            {"role": "assistant", "text": "Partly", "status": "interrupted", "sources": []},
            {"role": "user", "text": "wire money", "status": "complete"},
            {"role": "assistant", "text": "", "status": "failed", "error_code": "moderation_blocked"},
        ],
    )
    assert text.startswith("# Leave\n\n_Exported from Docent, 2026-11-26 08:00 UTC._\n")
    assert "1. **Handbook** (HR > Leave · page 3)\n\n> 25 days.\n> Per year.\n" in text
    assert "Partly\n\n_Interrupted; the text is what had arrived._" in text
    assert "_Not answered: the question goes against the content policy._" in text
    assert text.endswith("\n") and not text.endswith("\n\n")


def test_citations_to_check_are_named_under_their_answer():
    text = conversation_markdown(
        title="Leave",
        exported_at="2026-11-26 08:00 UTC",
        messages=[
            {
                "role": "assistant",
                "text": "30 days [1], 40 euros [2], 30 days again [1].",
                "status": "complete",
                "checks": [
                    {"marker": 0, "n": 1, "missing": ["30"]},
                    {"marker": 2, "n": 1, "missing": ["30"]},
                    {"marker": 1, "n": 2, "missing": ["40"]},
                ],
                "sources": [{"n": 1, "title": "Handbook", "text": "25 days."}, {"n": 2, "title": "Travel"}],
            },
        ],
    )
    assert (
        "30 days again [1].\n\n_To check: [1] does not state 30; [2] does not state 40._\n\nSources:" in text
    )


def test_the_thread_shown_is_written_with_its_answers_numbered_among_their_versions():
    """Versions not shown, and what followed them, stay out; the answer shown says which it is."""
    text = conversation_markdown(
        title="Leave",
        exported_at="2026-11-26 08:00 UTC",
        messages=[
            {"id": "q1", "role": "user", "text": "How much leave?", "status": "complete", "shown": True},
            {
                "id": "a1",
                "role": "assistant",
                "text": "25 days.",
                "status": "complete",
                "reply_to": "q1",
                "shown": False,
            },
            {
                "id": "a2",
                "role": "assistant",
                "text": "Twenty-five.",
                "status": "complete",
                "reply_to": "q1",
                "shown": True,
            },
            {
                "id": "a3",
                "role": "assistant",
                "text": "Twenty-five!",
                "status": "complete",
                "reply_to": "q1",
                "shown": False,
            },
            {
                "id": "q2",
                "role": "user",
                "text": "Travel?",
                "status": "complete",
                "parent": "a1",
                "shown": False,
            },
            {
                "id": "a4",
                "role": "assistant",
                "text": "Economy.",
                "status": "complete",
                "reply_to": "q2",
                "shown": False,
            },
            {
                "id": "q3",
                "role": "user",
                "text": "Sick leave?",
                "status": "complete",
                "parent": "a2",
                "shown": True,
            },
            {
                "id": "a5",
                "role": "assistant",
                "text": "Ten days.",
                "status": "complete",
                "reply_to": "q3",
                "shown": True,
            },
        ],
    )
    assert "### Answer (version 2 of 3)\n\nTwenty-five.\n\n## Question\n\nSick leave?" in text
    assert "### Answer\n\nTen days." in text
    for hidden in ("25 days.", "Twenty-five!", "Travel?", "Economy."):
        assert hidden not in text


def test_a_source_read_from_the_web_gives_its_address_and_nothing_else_is_linked():
    def exported(url):
        return conversation_markdown(
            title="Web",
            exported_at="now",
            messages=[
                {"role": "user", "text": "Setup?", "status": "complete"},
                {
                    "role": "assistant",
                    "text": "In spring [1].",
                    "status": "complete",
                    "sources": [
                        {"n": 1, "title": "Setup", "heading_path": "", "text": "Spring.", "url": url}
                    ],
                },
            ],
        )

    assert "1. **Setup** <https://docs.example.org/setup>\n" in exported("https://docs.example.org/setup")
    assert "1. **Setup**\n" in exported("javascript:alert(1)")
