"""Calibration of the figure and quotation checks on citations (not part of `make bench`; no database
needed).

    python -m bench.citations

Every answerable question of the SQuAD 2.0 dev part in ../shared/data/squad whose gold answer holds
a figure becomes the claim "The answer is <answer> [1]." A right check flags none of them cited to
their own paragraph, and most of them cited to another paragraph of the same article (seed 0).
"""

from __future__ import annotations

import json
import random

from chat.citations import stated_numbers, unsupported

from .common import SHARED


def main() -> None:
    articles = json.loads((SHARED / "squad" / "dev-v2.0-part.json").read_text())["data"]
    rng = random.Random(0)
    claims = own = other = 0
    for article in articles:
        paragraphs = [p["context"] for p in article["paragraphs"]]
        for i, paragraph in enumerate(article["paragraphs"]):
            for qa in paragraph["qas"]:
                if qa["is_impossible"] or not stated_numbers(qa["answers"][0]["text"]):
                    continue
                claim = f"The answer is {qa['answers'][0]['text']} [1]."
                elsewhere = [c for j, c in enumerate(paragraphs) if j != i]
                if not elsewhere:
                    continue
                claims += 1
                own += bool(unsupported(claim, {1: paragraph["context"]}, qa["question"]))
                other += bool(unsupported(claim, {1: rng.choice(elsewhere)}, qa["question"]))
    print(f"claims with a figure: {claims}")
    print(f"flagged, cited to their own paragraph: {own}")
    print(f"flagged, cited to another paragraph of the article: {other}")
    quotes(articles)


def quotes(articles) -> None:
    """The quotation check: the six words of each paragraph around its first answer, quoted with
    curly marks as a model would, cited to their own paragraph, then to another of the article."""
    rng = random.Random(0)
    claims = own = other = 0
    for article in articles:
        paragraphs = [p["context"] for p in article["paragraphs"]]
        for i, paragraph in enumerate(article["paragraphs"]):
            answered = [qa for qa in paragraph["qas"] if not qa["is_impossible"]]
            elsewhere = [c for j, c in enumerate(paragraphs) if j != i]
            if not answered or not elsewhere:
                continue
            start = answered[0]["answers"][0]["answer_start"]
            words = paragraph["context"][start:].split()[:6]
            if len(words) < 6:
                continue
            claim = f"The text says \u201c{' '.join(words).strip('.,;:')}\u201d [1]."
            claims += 1
            own += bool(unsupported(claim, {1: paragraph["context"]}))
            other += bool(unsupported(claim, {1: rng.choice(elsewhere)}))
    print(f"quoted claims: {claims}")
    print(f"flagged, cited to their own paragraph: {own}")
    print(f"flagged, cited to another paragraph of the article: {other}")


if __name__ == "__main__":
    main()
