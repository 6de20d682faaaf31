"""Calibration of the offline answerer (not part of `make bench`), through the chat's own path:
search with the user's permissions, the relevance gate, the prompt, the extractive answerer.

    python -m bench.answers [--squad N] [--reingest] [--only squad|docs]

Two sets, each loaded once into its own collection of the bench database:
- SQuAD 2.0 (the articles in ../shared/data/squad): N random questions (seed 1). An answerable one
  counts as answered when a gold answer span is inside the quoted sentences; the adversarial
  unanswerable ones and 60 SciFact claims (off topic) should be refused.
- this repo's docs/ (the demo collection of `make run`): the questions in bench/data/docs_questions.json,
  each with the phrases a right answer quotes, and questions about nothing in them.
Both also ask follow-ups after the question they lean on, as the chat's offline rewrite reads them:
SQuAD's made by replacing a name two questions of one paragraph share with "it", docs/' written.
"""

from __future__ import annotations

import argparse
import io
import json
import random
import re
import sys

from .common import ROOT, SHARED, read_jsonl, setup_django


def _collection(user, name: str, files: list[tuple[str, bytes]], *, reingest: bool = False):
    """The collection holding exactly these files (a changed file replaces its old version); with
    `reingest`, every one read and cut again (after a change to parsing or chunking)."""
    from retrieval import services
    from retrieval.models import Collection, Document

    collection, _ = Collection.objects.get_or_create(team=user.teams.get(), name=name)
    documents = [
        services.document_create(collection=collection, file=io.BytesIO(body), filename=fn, enqueue=False)[0]
        for fn, body in files
    ]
    for old in Document.objects.filter(collection=collection).exclude(id__in=[d.id for d in documents]):
        services.document_delete(document=old)
    if reingest:
        Document.objects.filter(id__in=[d.id for d in documents]).update(status=Document.Status.QUEUED)
    services.documents_ingest(document_ids=[d.id for d in documents if reingest or d.status != "ready"])
    return collection


def _answer(user, collection, question: str, answerer, history=()) -> str | None:
    """The quoted answer, or None for a refusal (by the gate or by the answerer). After `history`
    ((role, text) turns), the question is a follow-up, searched as the chat's offline rewrite has it."""
    from django.conf import settings

    from chat import prompts
    from chat.answering import relevant
    from retrieval.selectors import search

    query = prompts.standalone_query(question, history) if history else question
    hits = search(user=user, query=query, collection_ids=[collection.id], k=settings.DOCENT_PROMPT_PASSAGES)
    passages = prompts.Passage.numbered(hits)
    if not relevant(passages, query):
        return None
    text = answerer.answer_text(prompts.Prompt([], passages, question, history=list(history), query=query))
    return None if text.startswith(prompts.REFUSAL) else text


def _quotes(text: str) -> list[str]:
    """The quoted sentences of an answer (one, or a bulleted list)."""
    body = text.split(":", 1)[1].strip()
    lines = [line[2:] for line in body.splitlines() if line.startswith("- ")]
    return lines or [body]


_WORD = re.compile(r"[\w'’-]+")
# Words that may follow a name replaced by "it" ("When did it begin?"); another word after it would
# make the name an adjective ("the European Union law" -> "it law").
_AFTER_NAME = frozenset(
    [
        "is",
        "was",
        "are",
        "were",
        "did",
        "do",
        "does",
        "have",
        "has",
        "had",
        "and",
        "in",
        "of",
        "to",
        "for",
        "by",
        "with",
        "on",
        "at",
        "from",
        "that",
        "who",
        "which",
        "when",
        "after",
        "before",
        "during",
        "since",
        "under",
        "over",
        "into",
        "as",
        "or",
        "but",
    ]
)
_OPENERS = frozenset(
    [
        "what",
        "who",
        "whom",
        "whose",
        "when",
        "where",
        "which",
        "why",
        "how",
        "in",
        "is",
        "are",
        "was",
        "were",
        "did",
        "does",
        "do",
        "on",
        "by",
        "for",
        "from",
        "at",
        "to",
        "with",
        "during",
        "after",
        "before",
        "the",
        "a",
        "an",
    ]
)
_INSIDE_NAME = frozenset({"of", "on", "the", "de", "and", "for"})


def _lean_on(first: str, second: str) -> str | None:
    """`second` as a follow-up to `first`: the longest name (capitalised words) both questions hold
    replaced by "it" ("How many judges are there in the EU?" -> "... in it?"), or None."""
    before = [w.lower().removesuffix("'s") for w in _WORD.findall(first)]
    tokens = list(_WORD.finditer(second))
    words = [t.group(0) for t in tokens]
    best = None
    for i in range(1, len(tokens)):
        if words[i - 1][0].isupper() and (i > 1 or words[0].lower() not in _OPENERS):
            continue  # inside a longer name
        for j in range(i + 1, len(tokens) + 1):
            span = [w.lower().removesuffix("'s") for w in words[i:j]]
            if not any(before[k : k + len(span)] == span for k in range(len(before) - len(span) + 1)):
                break
            named = words[i][0].isupper() and words[j - 1][0].isupper()
            named = named and all(w[0].isupper() or w in _INSIDE_NAME for w in words[i:j])
            ends = j == len(tokens) or (
                words[j].lower() in _AFTER_NAME
                and not (
                    words[j].lower() in ("of", "on", "and")
                    and j + 1 < len(tokens)
                    and words[j + 1][0].isupper()
                )
            )
            if named and ends and (best is None or j - i > best[1] - best[0]):
                best = (i, j)
    if best is None:
        return None
    i, j = best
    start = tokens[i - 1].start() if words[i - 1].lower() == "the" else tokens[i].start()
    pronoun = "its" if words[j - 1].endswith(("'s", "’s")) else "it"
    return second[:start] + pronoun + second[tokens[j - 1].end() :]


def _squad_follow_ups(articles) -> list[tuple[str, str, str, list[str]]]:
    """(first question, a later one about the same paragraph made to lean on it, that one as
    written, its gold answers), from SQuAD's answerable questions."""
    out = []
    for article in articles:
        for paragraph in article["paragraphs"]:
            asked = [q for q in paragraph["qas"] if not q["is_impossible"]]
            for i, first in enumerate(asked):
                for second in asked[i + 1 :]:
                    leaning = _lean_on(first["question"], second["question"])
                    if leaning:
                        golds = [g["text"] for g in second["answers"]]
                        out.append((first["question"], leaning, second["question"], golds))
    return out


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="bench.answers")
    parser.add_argument("--squad", type=int, default=400, help="SQuAD questions to ask")
    parser.add_argument(
        "--reingest",
        action="store_true",
        help="read and cut the documents again (after a parsing or chunking change)",
    )
    parser.add_argument("--only", choices=("squad", "docs"), help="ask one set only")
    args = parser.parse_args(argv)
    setup_django()
    from chat.providers import get_chat_model
    from retrieval import services

    answerer = get_chat_model()
    user = services.user_provision(username="answers-eval", team_name="AnswersEval")
    if args.only in (None, "squad"):
        _ask_squad(user, answerer, n=args.squad, reingest=args.reingest)
    if args.only in (None, "docs"):
        _ask_docs(user, answerer, reingest=args.reingest)
    return 0


def _ask_squad(user, answerer, *, n: int, reingest: bool) -> None:
    from chat import prompts

    claims = [q["text"] for q in read_jsonl(SHARED / "scifact" / "queries.jsonl")[:60]]

    articles = json.loads((SHARED / "squad" / "dev-v2.0-part.json").read_text())["data"]
    squad = _collection(
        user,
        "squad",
        [
            (
                f"{a['title']}.md",
                (f"# {a['title']}\n\n" + "\n\n".join(p["context"] for p in a["paragraphs"])).encode(),
            )
            for a in articles
        ],
        reingest=reingest,
    )
    questions = [
        (q["question"], q["is_impossible"], [g["text"] for g in q["answers"]])
        for a in articles
        for p in a["paragraphs"]
        for q in p["qas"]
    ]
    random.Random(1).shuffle(questions)
    counts = dict.fromkeys(
        ("answerable", "quoted", "refused", "unanswerable", "unanswerable_refused", "sentences", "on_point"),
        0,
    )
    for question, impossible, golds in questions[:n]:
        text = _answer(user, squad, question, answerer)
        if impossible:
            counts["unanswerable"] += 1
            counts["unanswerable_refused"] += text is None
        else:
            counts["answerable"] += 1
            counts["refused"] += text is None
            counts["quoted"] += text is not None and any(g in text for g in golds)
            if text is not None:
                quotes = _quotes(text)
                counts["sentences"] += len(quotes)
                counts["on_point"] += sum(any(g in q for g in golds) for q in quotes)
    off = sum(_answer(user, squad, claim, answerer) is None for claim in claims)
    # Follow-ups: asked after the question they lean on, asked alone (what history adds) and asked
    # as SQuAD wrote them (what a perfect rewrite would reach).
    follow = dict.fromkeys(("after", "alone", "written"), 0)
    pairs = _squad_follow_ups(articles)
    for first, leaning, written, golds in pairs:
        before = _answer(user, squad, first, answerer) or prompts.REFUSAL
        for key, question, history in (
            ("after", leaning, [("user", first), ("assistant", before)]),
            ("alone", leaning, ()),
            ("written", written, ()),
        ):
            text = _answer(user, squad, question, answerer, history)
            follow[key] += text is not None and any(g in text for g in golds)
    print(
        f"SQuAD: {counts['quoted']} of {counts['answerable']} answerable questions quoted a gold span, "
        f"{counts['refused']} refused; {counts['unanswerable_refused']} of {counts['unanswerable']} "
        f"unanswerable refused; {off} of {len(claims)} off-topic claims refused"
    )
    print(
        f"  follow-ups: {follow['after']} of {len(pairs)} quoted a gold span after the question they lean "
        f"on ({follow['alone']} asked alone; {follow['written']} as written, naming what they ask about)"
    )
    answered = counts["answerable"] - counts["refused"]
    print(
        f"  precision: {counts['sentences']} sentences quoted in {answered} answers "
        f"({counts['sentences'] / max(answered, 1):.2f} each), {counts['on_point']} holding a gold span "
        f"({counts['on_point'] / max(counts['sentences'], 1):.1%})"
    )


def _ask_docs(user, answerer, *, reingest: bool) -> None:
    from chat import prompts

    docs = _collection(
        user,
        "docs",
        [(p.name, p.read_bytes()) for p in sorted((ROOT / "docs").glob("*.md"))],
        reingest=reingest,
    )
    spec = json.loads((ROOT / "bench" / "data" / "docs_questions.json").read_text())
    right = refused = 0
    for item in spec["answerable"]:
        text = _answer(user, docs, item["question"], answerer)
        refused += text is None
        ok = text is not None and any(e in text for e in item["expect"])
        right += ok
        if not ok:
            print(f"  {'refused' if text is None else 'missed '}  {item['question']}")
    off = sum(_answer(user, docs, q, answerer) is None for q in spec["off_topic"])
    print(
        f"docs/: {right} of {len(spec['answerable'])} questions quoted the expected passage, {refused} refused; "
        f"{off} of {len(spec['off_topic'])} off-topic questions refused"
    )
    # Follow-ups that lean on the question before ("How often does it run?"), asked after it.
    right = refused = 0
    for item in spec["follow_ups"]:
        first = _answer(user, docs, item["first"], answerer) or prompts.REFUSAL
        text = _answer(user, docs, item["then"], answerer, [("user", item["first"]), ("assistant", first)])
        refused += text is None
        ok = text is not None and any(e in text for e in item["expect"])
        right += ok
        if not ok:
            print(f"  {'refused' if text is None else 'missed '}  {item['first']} -> {item['then']}")
    print(
        f"  follow-ups: {right} of {len(spec['follow_ups'])} quoted the expected passage, {refused} refused"
    )


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
