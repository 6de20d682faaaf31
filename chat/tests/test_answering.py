from chat.answering import CitationFilter
from chat.prompts import REFUSAL, Passage, Prompt
from chat.providers import Delta, Finish
from chat.providers.extractive import ExtractiveAnswerer, continues, split_sentences


def feed_all(pieces, valid):
    f = CitationFilter(valid)
    out = "".join(f.feed(p) for p in pieces) + f.flush()
    return out, f


def test_citation_filter_keeps_valid_and_drops_invented_numbers():
    out, f = feed_all(["Leave is 25 days [", "1", "][", "7] and [2, 9]."], {1, 2, 3})
    assert out == "Leave is 25 days [1] and [2]."
    assert f.cited == [1, 2] and f.dropped == [7, 9]


def test_citation_filter_reads_markers_right_after_chinese_text():
    """Chinese writes no space before a marker: "审批单[1]" cites, an invented "[7]" goes."""
    out, f = feed_all(["报销需要提交发票和审批单[", "1]。三十天内报销[7]。"], {1})
    assert out == "报销需要提交发票和审批单[1]。三十天内报销。"
    assert f.cited == [1] and f.dropped == [7]


def test_citation_filter_leaves_other_brackets_alone():
    out, _ = feed_all(["see [the docs] and arr[1] or [", "x]"], {1})
    assert out == "see [the docs] and arr[1] or [x]"


def test_citation_filter_flushes_an_unclosed_marker_as_text():
    out, _ = feed_all(["Costs [1"], {1})
    assert out == "Costs [1"


P = [
    Passage(
        n=1,
        chunk_id=1,
        document_id=1,
        collection_id=1,
        title="HR",
        similarity=0.6,
        text="Employees get 25 days of paid leave. Leave requests go to your manager.",
    ),
    Passage(
        n=2,
        chunk_id=2,
        document_id=2,
        collection_id=1,
        title="IT",
        similarity=0.4,
        text="Laptops must be encrypted. Passwords expire every 90 days.",
    ),
]


def test_extractive_quotes_the_answering_sentence_with_its_citation():
    answerer = ExtractiveAnswerer()
    text = answerer.answer_text(Prompt([], P, "How many days of paid leave do employees get?"))
    assert "Employees get 25 days of paid leave. [1]" in text
    assert "Laptops" not in text


def _one(text: str, n: int = 1, **fields) -> Passage:
    fields = {"title": "Doc", "similarity": 0.6, **fields}
    return Passage(n=n, chunk_id=n, document_id=n, collection_id=1, text=text, **fields)


def test_extractive_joins_a_sentence_wrapped_over_lines():
    """A hard-wrapped sentence (Markdown sources often are) is quoted on one line: a newline inside a
    quoted bullet would end the bullet and split the quote in two."""
    wrapped = _one("Employees get 25 days\nof paid leave\n  per year. Requests go to your manager.")
    text = ExtractiveAnswerer().answer_text(Prompt([], [wrapped, P[1]], "How many days of paid leave?"))
    assert "Employees get 25 days of paid leave per year. [1]" in text
    listed = _one(
        "Health checks:\n- GET /readyz: 200 when the database\n  and Redis answer.\n- 2) GET /healthz: 200."
    )
    text = ExtractiveAnswerer().answer_text(Prompt([], [listed], "What does GET /readyz answer?"))
    # The source's own list marker is not quoted (it would start a list inside the answer's line).
    assert text == "From your documents: GET /readyz: 200 when the database and Redis answer. [1]"


def test_extractive_matches_other_forms_of_the_questions_words():
    """'dies' finds 'died' (the stemmer is Snowball's English, as PostgreSQL's search uses)."""
    passage = _one("Workers are started by make run. A sweep re-queues documents whose worker died.")
    text = ExtractiveAnswerer().answer_text(Prompt([], [passage], "What happens when a worker dies?"))
    assert text == "From your documents: A sweep re-queues documents whose worker died. [1]"


def test_extractive_reads_a_sentence_under_its_heading():
    """A section's heading says what its sentences are about, though they may not repeat it."""
    handled = Passage(
        n=1, chunk_id=1, document_id=1, collection_id=1, title="Guide", similarity=0.5,
        heading_path="Guide > Failure handling", text="Tasks are retried with backoff, then given up.",
    )  # fmt: skip
    text = ExtractiveAnswerer().answer_text(Prompt([], [handled, P[1]], "How is failure handled?"))
    assert text == "From your documents: Tasks are retried with backoff, then given up. [1]"


def test_extractive_reads_a_follow_up_as_the_search_did():
    """'How often does it run?' is about what the conversation was about: the answerer scores sentences
    against the standalone query the passages were searched with."""
    passage = _one("The library page runs in the browser. Beat runs the ingestion sweep every minute.")
    follow_up = Prompt(
        [], [passage], "How often does it run?", query="How often does it run? ingestion sweep"
    )
    text = ExtractiveAnswerer().answer_text(follow_up)
    assert text == "From your documents: Beat runs the ingestion sweep every minute. [1]"


def test_extractive_weighs_a_follow_ups_own_words_above_those_it_borrowed():
    """'And what should I carry?' after a question about maps asks about carrying: the words carried
    over from the question before only say where to look."""
    from retrieval.embeddings import get_embedder

    maps = _one("North is up on every map we print.\n\nThe scale is 1:25000 unless a map says otherwise.")
    tools = _one("Carry a knife and a compass.", n=2)
    query = "And what should I carry? scale maps use"
    follow_up = Prompt([], [maps, tools], "And what should I carry?", query=query)
    expected = "From your documents: Carry a knife and a compass. [2]"
    assert ExtractiveAnswerer().answer_text(follow_up) == expected
    assert ExtractiveAnswerer(embed=get_embedder().embed).answer_text(follow_up) == expected  # as in the app


def test_extractive_reads_a_follow_up_as_searched_when_its_own_words_meet_nothing():
    """'What happens if it is larger?' after a question about upload sizes: its own words say too
    little for any sentence to pass, so it is read as searched, with the subject it leans on, rather
    than refused."""
    from retrieval.embeddings import get_embedder

    guide = _one("A file may be up to 50 MB unless your operator set another limit.")
    limits = _one(
        "Uploads above `DOCENT_MAX_UPLOAD_BYTES` are refused with 413 before the application reads"
        " their body.",
        n=2,
        similarity=0.5,
    )
    follow_up = Prompt(
        [],
        [guide, limits],
        "What happens if it is larger?",
        query="What happens if it is larger? large upload",
    )
    text = ExtractiveAnswerer(embed=get_embedder().embed).answer_text(follow_up)
    assert text != REFUSAL and "refused with 413" in text


def test_extractive_quotes_a_table_row_with_its_column_names():
    table = _one(
        "Limits per user:\n\n| what | variable | default |\n|---|:---:|---|\n"
        "| questions | `DOCENT_RATE_ASK` | `30/m` |\n| searches | `DOCENT_RATE_SEARCH` | `120/m` |"
    )
    assert split_sentences(table.text) == [
        "Limits per user:",
        "what: questions; variable: `DOCENT_RATE_ASK`; default: `30/m`",
        "what: searches; variable: `DOCENT_RATE_SEARCH`; default: `120/m`",
    ]
    text = ExtractiveAnswerer().answer_text(Prompt([], [table], "What is the default rate of searches?"))
    assert (
        text == "From your documents: what: searches; variable: `DOCENT_RATE_SEARCH`; default: `120/m`. [1]"
    )
    # A separator row is never a sentence, nor a row whose header is not in the passage (a fragment
    # of a row too long for one chunk, say).
    assert split_sentences("| a | b |\n|---|---|") == []
    assert split_sentences("| city | cap |\n|---|---|\n| Berlin \\| Mitte | 160 |") == [
        "city: Berlin | Mitte; cap: 160"
    ]
    assert split_sentences("Cut.\n| cats | purr |\n| dogs | bark |") == ["Cut."]
    assert split_sentences("| and rows whose header was cut off | 156 / 0 | 6 |\nThen prose.") == [
        "Then prose."
    ]


def test_extractive_reads_a_passage_in_its_collections_language(db):
    """A German collection's passage is read with German stems and without German stop words, as its
    keyword search reads it: "Gärten" answers "Garten" and "Häuser" answers "Haus" (English stemming
    keeps them apart), and "welches", "hat", "einen" are not words to find."""
    from retrieval.selectors import keyword_terms

    text = "Die Straße ist laut. Die Häuser am See haben große Gärten."
    question = "Welches Haus hat einen Garten?"
    read = keyword_terms(text=question, languages=["german"])["german"]
    assert read == {"haus", "gart"}
    german = Passage(
        n=1, chunk_id=1, document_id=1, collection_id=1, title="Doc", text=text, language="german"
    )
    prompt = Prompt([], [german], question, keywords={"german": (read, read)})
    assert (
        ExtractiveAnswerer().answer_text(prompt)
        == "From your documents: Die Häuser am See haben große Gärten. [1]"
    )
    as_english = Passage(n=1, chunk_id=1, document_id=1, collection_id=1, title="Doc", text=text)
    assert ExtractiveAnswerer().answer_text(Prompt([], [as_english], question)) == REFUSAL


def test_extractive_quotes_a_wrapped_chinese_sentence_without_spaces():
    text = "报销差旅费用时，需要在出差结束后\n三十天内提交发票和审批单。"
    assert ExtractiveAnswerer().answer_text(Prompt([], [_one(text)], "报销需要提交什么？")) == (
        "From your documents: 报销差旅费用时，需要在出差结束后三十天内提交发票和审批单。 [1]"
    )


def test_extractive_quotes_a_chinese_sentence():
    """Chinese has no spaces: sentences end at a full-width stop, and words are read as the pairs of
    characters keyword search keys them by, so the one sentence on invoices answers."""
    text = "员工每年享有十五天带薪年假。报销差旅费用时，需要在出差结束后三十天内提交发票和审批单。办公室位于上海。"
    assert ExtractiveAnswerer().answer_text(Prompt([], [_one(text)], "报销差旅费用需要提交什么？")) == (
        "From your documents: 报销差旅费用时，需要在出差结束后三十天内提交发票和审批单。 [1]"
    )


def test_extractive_marks_the_tail_of_a_sentence_a_passage_begins_with():
    """A passage cut with overlap may begin inside a sentence: quoted, that tail says so."""
    text = "with ingestion bound by the embedder, parsing adds under a tenth. Inserting is last."
    answer = ExtractiveAnswerer().answer_text(Prompt([], [_one(text)], "What is ingestion bound by?"))
    assert (
        answer
        == "From your documents: …with ingestion bound by the embedder, parsing adds under a tenth. [1]"
    )
    # Or inside brackets: a long sentence's overlap begins at a word, whatever precedes it.
    text = "[team ids or names]} (the whole list) or every team, in the library with its Sharing button."
    answer = ExtractiveAnswerer().answer_text(Prompt([], [_one(text)], "Can every team share the library?"))
    assert answer == f"From your documents: …{text} [1]"


def test_extractive_quotes_no_fenced_code():
    """A code block's lines, joined into one, are no sentence to quote; the sentence before it is
    one, and ends where the block begins."""
    text = (
        'Any client works with a Docent API key:\n```python\nclient = OpenAI(api_key="dk_...")\n'
        'client.chat.completions.create(model="docent")\n```\nKeys are made on the API keys page.'
    )
    assert split_sentences(text) == [
        "Any client works with a Docent API key:",
        "Keys are made on the API keys page.",
    ]
    answer = ExtractiveAnswerer().answer_text(Prompt([], [_one(text)], "How does a client use an API key?"))
    assert "```" not in answer and "client.chat" not in answer


def test_extractive_ends_a_passage_cut_at_a_semicolon_with_a_full_stop():
    """A passage may end at a clause (the chunker cuts a long sentence at a semicolon): quoted, it
    ends with a full stop, not ";."."""
    text = "Broken attachments are named with the reason they were not read, and the email still reads;"
    answer = ExtractiveAnswerer().answer_text(Prompt([], [_one(text)], "What happens to broken attachments?"))
    assert answer == f"From your documents: {text[:-1]}. [1]"


def test_extractive_answers_a_question_for_an_amount_with_a_figure():
    """ "How large" asks for an amount, and so does a maximum or a limit: of two sentences as close to
    the question, the one stating a figure answers it; a question for no amount keeps their order."""
    passage = _one("Uploads are checked for their type before they are read. An upload may be up to 50 MB.")
    answer = ExtractiveAnswerer(max_sentences=1).answer_text
    assert answer(Prompt([], [passage], "How large may an upload be?")).endswith("up to 50 MB. [1]")
    assert answer(Prompt([], [passage], "What is the maximum upload?")).endswith("up to 50 MB. [1]")
    assert answer(Prompt([], [passage], "Is there an upload limit?")).endswith("up to 50 MB. [1]")
    assert answer(Prompt([], [passage], "What may an upload be?")).endswith("they are read. [1]")


def test_extractive_refuses_when_nothing_answers():
    assert ExtractiveAnswerer().answer_text(Prompt([], P, "Which dinosaur was the largest?")) == REFUSAL


async def test_extractive_streams_small_pieces_then_finishes():
    answerer = ExtractiveAnswerer(piece_words=2)
    prompt = Prompt([], P, "How often do passwords expire?", prompt_tokens=42)
    events = [e async for e in answerer.stream(prompt, max_tokens=500)]
    deltas = [e for e in events if isinstance(e, Delta)]
    assert len(deltas) > 3 and isinstance(events[-1], Finish)
    assert events[-1].finish_reason == "stop" and events[-1].prompt_tokens == 42
    assert "".join(d.text for d in deltas).endswith("[2]")


def test_relevance_gate_takes_the_best_passage():
    from chat.prompts import relevant

    assert relevant(P, 0.6) and not relevant(P, 0.61)  # the best of 0.6 and 0.4
    keyword_only = Passage(n=1, chunk_id=1, document_id=1, collection_id=1, title="Doc", text="x")
    assert not relevant([keyword_only], 0.25) and not relevant([], 0.25)  # no vector, no passages


def test_relevance_gate_reads_the_rerankers_best_score_when_asked():
    from dataclasses import replace

    from chat.prompts import relevant

    scored = [replace(P[0], rerank_score=0.02), replace(P[1], rerank_score=0.3)]
    assert relevant(scored, 0.25) and relevant(scored, 0.25, 0.3)  # the best of 0.02 and 0.3
    assert not relevant(scored, 0.25, 0.31)
    assert not relevant(scored, 0.61, 0.01)  # the cosine still has its say
    assert relevant(P, 0.25, 0.9)  # no scores (no reranker, or it failed): the cosine alone


def test_relevance_gate_lowers_its_bar_for_a_passage_both_retrievers_rank_high():
    """A short question of rare words ("Can I use GPT-4o?") finds its passage first by BM25 and by
    the embedder at a low cosine: both agreeing, on a passage holding the question's words, is the
    evidence the cosine lacks."""
    from dataclasses import replace

    from chat.prompts import AGREED_RANK, relevant

    asked = "How much paid leave?"  # "paid" and "leave" both in the passage: a share of 1
    low = replace(P[0], similarity=0.14)
    assert not relevant([low], 0.25, 0.0, 0.10, asked)  # found by one retriever only (or neither)
    agreed = replace(low, dense_rank=1, keyword_rank=AGREED_RANK)
    assert relevant([agreed], 0.25, 0.0, 0.10, asked)
    assert not relevant([agreed], 0.25, question=asked)  # no lower bar set: the cosine alone
    assert not relevant([agreed], 0.25, 0.0, 0.15, asked)  # the lower bar is still a bar
    assert not relevant([replace(agreed, keyword_rank=AGREED_RANK + 1)], 0.25, 0.0, 0.10, asked)
    assert not relevant([replace(agreed, dense_rank=None)], 0.25, 0.0, 0.10, asked)
    # Half the question's words in the passage is enough; fewer is not (an unrelated question
    # meeting a common word or two).
    assert relevant([agreed], 0.25, 0.0, 0.10, "Paid parking?")
    assert not relevant([agreed], 0.25, 0.0, 0.10, "Paid parking for visitors?")
    # A reranker's verdict still applies on top.
    assert not relevant([replace(agreed, rerank_score=0.01)], 0.25, 0.3, 0.10, asked)


def test_extractive_reads_a_sentence_after_its_paragraphs_first():
    """A list item's or paragraph's first sentence says what the next ones are about."""
    passage = _one(
        "- `make test` runs the whole suite against real services. About seven minutes on two cores.\n"
        "- `make lint` checks the style of the code."
    )
    from retrieval.embeddings import get_embedder

    answerer = ExtractiveAnswerer(embed=get_embedder().embed)  # as the app has it
    text = answerer.answer_text(Prompt([], [passage], "How long does the test suite take?"))
    assert "About seven minutes on two cores. [1]" in text


def test_extractive_quotes_what_a_leaning_sentence_leans_on():
    """ "It runs every minute." alone does not say what runs: its paragraph's first sentence comes first."""
    passage = _one(
        "- The sweep re-queues documents whose worker died. It runs every minute.\n"
        "- Uploads are hashed. They are stored under generated names."
    )
    text = ExtractiveAnswerer().answer_text(Prompt([], [passage], "How often does it run?"))
    assert text == (
        "From your documents:\n\n- The sweep re-queues documents whose worker died. [1]\n- It runs every minute. [1]"
    )


def test_extractive_quotes_a_list_item_after_the_sentence_that_announces_its_list():
    """ "A team's admins can also:" answers nothing alone, and its items say who does them only
    through it: an item is read under it and quoted after it; it is never quoted alone."""
    passage = _one(
        "A team's admins can also, from the collection's header:\n"
        "- rename it, or delete it with all its documents;\n"
        "- open Sharing to let other teams read it.\n\n"
        "Members upload documents by dropping them on the page."
    )
    text = ExtractiveAnswerer().answer_text(Prompt([], [passage], "Who can rename a collection?"))
    assert text == (
        "From your documents:\n\n- A team's admins can also, from the collection's header: [1]\n"
        "- rename it, or delete it with all its documents. [1]"
    )
    text = ExtractiveAnswerer().answer_text(
        Prompt([], [passage], "What can a team admin do from the header?")
    )
    assert text != "From your documents: A team's admins can also, from the collection's header: [1]"
    assert "rename it" in text or "open Sharing" in text


def test_extractive_reads_a_list_item_led_by_a_command_in_bold_under_its_announcing_sentence():
    """ "- **Rename** it, or ..." names who renames only through the sentence above it, like "- rename
    it"; "- **Export**: ..." stands alone."""
    passage = _one(
        "A team's admins can also, from the collection's header:\n"
        "- **Rename** it, or delete it with all its documents;\n"
        "- **Share** it to let other teams read it.\n\n"
        "Members upload documents by dropping them on the page."
    )
    text = ExtractiveAnswerer().answer_text(Prompt([], [passage], "Who can rename a collection?"))
    assert text == (
        "From your documents:\n\n- A team's admins can also, from the collection's header: [1]\n"
        "- **Rename** it, or delete it with all its documents. [1]"
    )
    assert continues("- **Rename** it") and continues("2. *share* it")
    assert not continues("- **Export**: a Markdown file") and not continues("- GET /readyz: 200 when ready")


def test_extractive_takes_a_snake_case_name_whole():
    """`asn1_read_value` names one function: the sentence about it comes before one about
    `asn1_read_value_type`, which repeats its parts."""
    longer = _one("asn1_read_value_type reads the value and the type of a value: read value, read type.", 1)
    exact = _one("asn1_read_value returns the value of one element.", 2)
    text = ExtractiveAnswerer(max_sentences=1).answer_text(
        Prompt([], [longer, exact], "What does asn1_read_value do?")
    )
    assert text == "From your documents: asn1_read_value returns the value of one element. [2]"


def test_extractive_reads_words_inside_code_as_names_when_the_question_is_prose():
    """A command's synopsis repeats option values (`--mode hybrid|dense|keyword`): a question in prose
    is answered by the sentence that explains, though the synopsis holds more of its words; a
    question that quotes code still finds its words there."""
    synopsis = _one(
        "`manage.py evaluate [--mode hybrid|dense|keyword]` prints the results of each search.", 1
    )
    prose = _one("Hybrid search fuses the dense and the keyword rankings by reciprocal rank.", 2)
    answer = ExtractiveAnswerer(max_sentences=1).answer_text
    question = "How does hybrid search combine the dense and keyword results?"
    assert answer(Prompt([], [synopsis, prose], question)) == f"From your documents: {prose.text} [2]"
    coded = "What does `--mode hybrid|dense|keyword` change in the results of a search?"
    assert answer(Prompt([], [synopsis, prose], coded)).endswith("[1]")


def test_extractive_reads_code_as_words_under_a_heading_that_says_them():
    """An endpoint is named in code (`POST /api/v1/search`); under a heading "API > Search" those words
    are what the section is about, and the sentence naming it answers how to search through the API."""
    endpoint = _one(
        '`POST /api/v1/search` with `{"query", "documents"}` answers passages.',
        1,
        heading_path="API > Search",
    )
    aside = _one(
        "A collection's language decides how its documents are searched.",
        2,
        heading_path="Guide > Collections",
    )
    text = ExtractiveAnswerer(max_sentences=1).answer_text(
        Prompt([], [aside, endpoint], "How do I search my documents through the API?")
    )
    assert text == f"From your documents: {endpoint.text} [1]"


def test_extractive_reads_code_as_words_only_under_its_own_sections_heading():
    """The document's title heads every section: metric names under "Docent API > Health" are no
    more about Docent than any other section, and "What is Docent?" is answered in prose."""
    metrics = _one(
        "`docent_search_seconds{mode}` (query embedding and the SQL statement) and `docent_rerank_seconds`.",
        1,
        heading_path="Docent API > Health",
    )
    about = _one(
        "Docent is a Django project with Celery workers and PostgreSQL.",
        2,
        heading_path="Docent architecture",
    )
    text = ExtractiveAnswerer(max_sentences=1).answer_text(Prompt([], [metrics, about], "What is Docent?"))
    assert text == f"From your documents: {about.text} [2]"


def test_extractive_pairs_the_backtick_of_a_passage_cut_inside_code():
    """A passage that begins or ends inside `code` holds an unpaired backtick; quoted as it stands,
    the rest of the sentence would show as code."""
    answer = ExtractiveAnswerer(max_sentences=1).answer_text
    starts = _one('shared", "id"}` tells the teams that gain the collection. Other things.')
    assert answer(Prompt([], [starts], "Which teams does it tell?")) == (
        'From your documents: …`shared", "id"}` tells the teams that gain the collection. [1]'
    )
    ends = _one('Unrelated words here. The teams that gain the collection hear `{"type": "shared"')
    assert answer(Prompt([], [ends], "Which teams hear of the collection?")) == (
        'From your documents: The teams that gain the collection hear `{"type": "shared"`. [1]'
    )
    # A lone backtick inside a passage is a character: quoted as it stands.
    lone = _one("The `gain of function' property is measured by growth. Other things.")
    assert answer(Prompt([], [lone], "How is the gain of function property measured?")) == (
        "From your documents: The `gain of function' property is measured by growth. [1]"
    )


def test_extractive_quotes_a_sentence_two_overlapping_passages_share_once_and_whole():
    """Consecutive passages overlap: the later one repeats the earlier one's last sentence, whole or
    from inside it. Both found, the sentence is quoted once, whole, citing a passage that holds it all."""
    whole = "The sweep re-queues documents whose worker died, once a minute."
    first = _one(f"Ingestion runs in Celery. {whole}", n=1)
    tail = _one("documents whose worker died, once a minute. Failed ones say why.", n=2)
    again = _one(f"{whole} Failed ones say why.", n=3)
    for passages, cited in (([tail, first], 1), ([first, again], 1), ([tail, again], 3)):
        answer = ExtractiveAnswerer().answer_text(
            Prompt([], passages, "What does the sweep do to documents?")
        )
        assert answer.count("worker died") == 1, answer
        assert f"{whole} [{cited}]" in answer, answer


def test_extractive_quotes_a_sentence_cut_between_two_passages_once():
    """A passage may end inside a long sentence and the next begin inside it, each holding part of
    the other's: one sentence, quoted once (the part that answers better), not twice in halves."""
    head = _one(
        "Search runs in one statement. The library lists collections, uploads of files or folders with "
        "live progress over the socket (polling backs it up;",
        1,
    )
    tail = _one(
        "uploads of files or folders with live progress over the socket (polling backs it up; deletions "
        "arrive there too), and passage search with the matched words marked. Keys are made elsewhere.",
        2,
    )
    answer = ExtractiveAnswerer().answer_text(
        Prompt([], [head, tail], "What else arrives over the socket beside the progress of uploads?")
    )
    assert answer.count("live progress over the socket") == 1, answer
    assert "deletions arrive there too" in answer
    answer = ExtractiveAnswerer().answer_text(
        Prompt([], [head, tail], "Which collections does the library list with the progress of uploads?")
    )
    assert answer.count("live progress over the socket") == 1, answer
    assert "The library lists collections" in answer


def test_extractive_reads_a_shared_sentence_where_its_paragraph_says_what_it_is_about():
    """Of two copies of a sentence, the one read after its paragraph's first sentence is kept: "About
    eight minutes." answers how long the tests take only beside the sentence that names them."""
    alone = _one("About eight minutes on two cores. Pass pytest options through a variable.", n=1)
    led = _one(
        "Run make test for the whole test suite in headless Chromium. About eight minutes on two cores.", n=2
    )
    from retrieval.embeddings import get_embedder

    answerer = ExtractiveAnswerer(embed=get_embedder().embed)  # as the app has it
    answer = answerer.answer_text(Prompt([], [alone, led], "How long does the test suite take?"))
    assert "About eight minutes on two cores. [2]" in answer, answer
