"""Calibration of the offline answerer (not part of `make bench`), through the chat's own path:
search with the user's permissions, the relevance gate, the prompt, the extractive answerer.

    python -m bench.answers [--squad N]

Two sets, each loaded once into its own collection of the bench database:
- SQuAD 2.0 (the articles in ../shared/data/squad): N random questions (seed 1). An answerable one
  counts as answered when a gold answer span is inside the quoted sentences; the adversarial
  unanswerable ones and 60 SciFact claims (off topic) should be refused.
- this repo's docs/ (the demo collection of `make run`): the questions in bench/data/docs_questions.json,
  each with the phrases a right answer quotes, and questions about nothing in them.
"""

from __future__ import annotations

import argparse
import io
import json
import random
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


def _answer(user, collection, question: str, answerer) -> str | None:
    """The quoted answer, or None for a refusal (by the gate or by the answerer)."""
    from django.conf import settings

    from chat import prompts
    from retrieval.selectors import search

    hits = search(
        user=user, query=question, collection_ids=[collection.id], k=settings.DOCENT_PROMPT_PASSAGES
    )
    passages = prompts.Passage.numbered(hits)
    if not prompts.relevant(passages, settings.DOCENT_MIN_RELEVANCE):
        return None
    text = answerer.answer_text(prompts.Prompt([], passages, question))
    return None if text.startswith(prompts.REFUSAL) else text


def _quotes(text: str) -> list[str]:
    """The quoted sentences of an answer (one, or a bulleted list)."""
    body = text.split(":", 1)[1].strip()
    lines = [line[2:] for line in body.splitlines() if line.startswith("- ")]
    return lines or [body]


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="bench.answers")
    parser.add_argument("--squad", type=int, default=400, help="SQuAD questions to ask")
    parser.add_argument(
        "--reingest",
        action="store_true",
        help="read and cut the documents again (after a parsing or chunking change)",
    )
    args = parser.parse_args(argv)
    setup_django()
    from chat.providers import get_chat_model
    from retrieval import services

    answerer = get_chat_model()
    user = services.user_provision(username="answers-eval", team_name="AnswersEval")
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
        reingest=args.reingest,
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
    for question, impossible, golds in questions[: args.squad]:
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
    print(
        f"SQuAD: {counts['quoted']} of {counts['answerable']} answerable questions quoted a gold span, "
        f"{counts['refused']} refused; {counts['unanswerable_refused']} of {counts['unanswerable']} "
        f"unanswerable refused; {off} of {len(claims)} off-topic claims refused"
    )
    answered = counts["answerable"] - counts["refused"]
    print(
        f"  precision: {counts['sentences']} sentences quoted in {answered} answers "
        f"({counts['sentences'] / max(answered, 1):.2f} each), {counts['on_point']} holding a gold span "
        f"({counts['on_point'] / max(counts['sentences'], 1):.1%})"
    )

    docs = _collection(
        user,
        "docs",
        [(p.name, p.read_bytes()) for p in sorted((ROOT / "docs").glob("*.md"))],
        reingest=args.reingest,
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
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
