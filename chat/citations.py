"""Checks an answer's citations against the passages they name.

A model can cite the right passage and still get its figure wrong ("30 days [1]" where passage 1
says 25). Every number an answer states before a citation must appear in a passage that citation
names; one that does not is reported, so the reader sees which claim to check. Numbers are compared
by value ("1,200" = "1200", "3.50" = "3.5", "twenty-five" in a passage = "25" in an answer); those
the question itself gave are the user's premise, not the model's claim, and are left alone.

Words an answer puts in quotation marks claim to be the passage's own: a quotation of three words or
more must be found in a cited passage (case, spacing and quote styles aside; an ellipsis may skip
text), else it is reported like a figure, in quotes.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from retrieval import cjk

# A word character other than Chinese, Japanese or Korean (which write no space before a marker or
# a figure: "审批单[1]", "在30天内").
_LETTER = rf"[^\W{cjk.CLASS}]"
# Citation markers: "[1]", "[1, 2]"; after a letter an index ("arr[1]"), not a citation.
CITATION = re.compile(rf"(?<!{_LETTER})\[(\d{{1,3}}(?:\s*,\s*\d{{1,3}})*)\]")
# A figure on its own: not part of a word or code name ("v2", "H2O", "x86"), thousands separated or not.
_NUMBER = re.compile(rf"(?<![.,])(?<!{_LETTER})(\d{{1,3}}(?:,\d{{3}})+|\d+)(?:\.(\d+))?(?![\d,]\d)")
_LIST_ITEM = re.compile(r"^\s*\d+[.)]\s", re.MULTILINE)  # "1. " opening a numbered list item
_UNITS = {
    "zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8,
    "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14, "fifteen": 15,
    "sixteen": 16, "seventeen": 17, "eighteen": 18, "nineteen": 19,
}  # fmt: skip
_TENS = {
    "twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70, "eighty": 80,
    "ninety": 90,
}  # fmt: skip
_SCALES = {"hundred": 100, "thousand": 1000, "million": 1_000_000}
_TENS_RE, _UNIT_RE = "|".join(_TENS), "|".join(k for k in _UNITS if k != "zero")
_WORD_NUMBER = re.compile(
    rf"\b(?:({_TENS_RE})(?:[-\s]({_UNIT_RE}))?|({'|'.join(_UNITS)}))(?:\s+({'|'.join(_SCALES)}))?\b",
    re.IGNORECASE,
)


_QUOTED = re.compile(r"[\"\u201c]([^\"\u201c\u201d\n]{8,400})[\"\u201d]")
_ELLIPSIS = re.compile(r"\s*(?:\.\.\.|\u2026|\[\.\.\.\])\s*")


def _plain(text: str) -> str:
    text = text.lower().translate(
        {0x2018: "'", 0x2019: "'", 0x201C: '"', 0x201D: '"', 0x2010: "-", 0x2011: "-"}
    )
    return " ".join(text.split())


def stated_quotes(text: str) -> list[str]:
    """Quotations of three words or more, in order."""
    return [m.group(1).strip() for m in _QUOTED.finditer(text) if len(m.group(1).split()) >= 3]


def _quote_held(quote: str, passage: str) -> bool:
    """Every part between ellipses appears in the passage, in order."""
    at = 0
    for part in (_plain(p).strip(" .,;:") for p in _ELLIPSIS.split(quote)):
        if not part:
            continue
        found = passage.find(part, at)
        if found < 0:
            return False
        at = found + len(part)
    return True


def _value(whole: str, fraction: str | None) -> str:
    digits = whole.replace(",", "").lstrip("0") or "0"
    fraction = (fraction or "").rstrip("0")
    return f"{digits}.{fraction}" if fraction else digits


def stated_numbers(text: str) -> list[str]:
    """The figures a text states in digits, by value, in order (list numbering left out)."""
    text = _LIST_ITEM.sub(" ", text)
    found = []
    for m in _NUMBER.finditer(text):
        value = _value(m.group(1), m.group(2))
        if value not in found:
            found.append(value)
    return found


def held_numbers(text: str) -> set[str]:
    """Every figure a passage holds, in digits or in words."""
    held = {_value(m.group(1), m.group(2)) for m in _NUMBER.finditer(text)}
    for m in _WORD_NUMBER.finditer(text):
        tens, unit, alone, scale = m.groups()
        n = (_TENS[tens.lower()] + (_UNITS[unit.lower()] if unit else 0)) if tens else _UNITS[alone.lower()]
        held.add(str(n))
        if scale:
            held.add(str(n * _SCALES[scale.lower()]))
    return held


def unsupported(text: str, passages: Mapping[int, str], question: str = "") -> list[dict]:
    """One entry per citation marker whose claim states a figure, or quotes words, none of its
    passages holds:
    `{"marker": k, "n": n, "missing": [...]}`, `k` counting the answer's markers from 0 in order
    (one per number: "[1, 2]" is two), as the page shows them.

    A claim is the text since the previous marker, within its line; markers side by side ("[1][2]")
    share one claim, which any of their passages may hold.
    """
    given = set(stated_numbers(question))
    asked = _plain(question)
    groups: list[tuple[str, list[tuple[int, int]]]] = []
    ordinal, end = 0, 0
    for m in CITATION.finditer(text):
        numbers = [int(x) for x in m.group(1).split(",")]
        markers = list(zip(range(ordinal, ordinal + len(numbers)), numbers, strict=True))
        ordinal += len(numbers)
        between = text[end : m.start()]
        if groups and end and not between.strip():
            groups[-1][1].extend(markers)
        else:
            groups.append((between.rsplit("\n", 1)[-1], markers))
        end = m.end()
    held: dict[int, set[str]] = {}
    plain: dict[int, str] = {}
    found = []
    for claim, markers in groups:
        stated = [v for v in stated_numbers(claim) if v not in given]
        quotes = [q for q in stated_quotes(claim) if _plain(q) not in asked]
        if not stated and not quotes:
            continue
        names = {n for _, n in markers}
        holding = set().union(*(held.setdefault(n, held_numbers(passages.get(n, ""))) for n in names))
        missing = [v for v in stated if v not in holding]
        texts = [plain.setdefault(n, _plain(passages.get(n, ""))) for n in sorted(names)]
        missing += [f"\u201c{q}\u201d" for q in quotes if not any(_quote_held(q, t) for t in texts)]
        if missing:
            found.extend({"marker": k, "n": n, "missing": missing} for k, n in markers)
    return found


def marker_count(text: str) -> int:
    """The answer's citation markers, one per number, as `unsupported` counts them."""
    return sum(len(m.group(1).split(",")) for m in CITATION.finditer(text))


def passages_by_number(sources: Iterable[dict]) -> dict[int, str]:
    """What the model read of each source: its title and headings too."""
    return {
        s["n"]: "\n".join(filter(None, (s.get("title"), s.get("heading_path"), s.get("text"))))
        for s in sources
    }
