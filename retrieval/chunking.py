"""Text blocks -> token-bounded, structure-aware chunks. Pure functions.

Each section (consecutive blocks under the same heading path, on the same page) is tokenized once with offsets, then cut
at the best boundary before the token bound: a paragraph break, else a sentence end, else a space;
outside inline code and brackets while there is room outside them.
A run of text with no space longer than the bound (a URL, a 200 MB "word") is the only thing ever cut
between tokens; Chinese and Japanese, written without spaces, are cut after a full-width stop, else
between two characters. Counts use the embedder's own tokenizer, so no chunk is truncated when embedded.
"""

from __future__ import annotations

import bisect
import hashlib
import re
import unicodedata
from array import array
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass

from . import cjk
from .tables import is_row, is_rule

# A tokenizer for chunking: text -> [(start, end)] character offsets of its tokens, no special tokens.
Offsets = Callable[[str], Sequence[tuple[int, int]]]

PARAGRAPH, SENTENCE, LINE, WORD = 4, 3, 2, 1
_SENTENCE_END = (".", "!", "?", "…", ":", ";", "。", "！", "？")
_CJK_SENTENCE_END = frozenset("。！？；")
_CJK_PAUSE = frozenset("，、：」』）》")  # full-width only: "”" closes English quotes too


@dataclass(frozen=True)
class ChunkSpec:
    text: str
    token_count: int
    heading_path: str
    page: int | None
    section: int
    # Character span within the section text, for tests and highlighting; `text` is that span,
    # after a table's repeated header when the chunk starts inside a table.
    start: int
    end: int

    @property
    def content_hash(self) -> str:
        return content_hash(self.heading_path, self.text)

    @property
    def embedding_input(self) -> str:
        return passage_input(self.heading_path, self.text)


def passage_input(heading_path: str, text: str) -> str:
    """A passage as a model reads it (the embedder, a reranker): its heading path over its text."""
    return f"{heading_path}\n{text}" if heading_path else text


def content_hash(heading_path: str, text: str) -> str:
    return hashlib.sha256(f"{heading_path}\x1f{text}".encode()).hexdigest()


@dataclass
class _Section:
    headings: tuple[str, ...]
    text: str
    pages: list[tuple[int, int | None]]  # (start offset, page) of each block


def _sections(blocks: Iterable) -> list[_Section]:
    sections: list[_Section] = []
    for block in blocks:
        headings = tuple(block.headings)
        # A new page starts a new section, so a chunk's page is exact for citations.
        if sections and sections[-1].headings == headings and sections[-1].pages[-1][1] == block.page:
            section = sections[-1]
            section.text += "\n\n"
        else:
            section = _Section(headings, "", [])
            sections.append(section)
        section.pages.append((len(section.text), block.page))
        section.text += block.text
    return sections


@dataclass(frozen=True)
class _Table:
    start: int  # the header row's first character
    body: int  # the first body row's
    end: int  # past the last row's newline
    header: str  # the header row and rule line, each ending in a newline


class _Tables:
    """The Markdown tables of a section's text, found once: where they are and their headers."""

    def __init__(self, text: str):
        self.spans: list[_Table] = []
        if "|" not in text:
            return
        lines = text.split("\n")
        offset, i = 0, 0
        while i < len(lines):
            if is_row(lines[i]) and i + 1 < len(lines) and is_rule(lines[i + 1]):
                header = f"{lines[i]}\n{lines[i + 1]}\n"
                end, i = offset + len(header), i + 2
                while i < len(lines) and is_row(lines[i]):
                    end += len(lines[i]) + 1
                    i += 1
                self.spans.append(_Table(offset, offset + len(header), end, header))
                offset = end
                continue
            offset += len(lines[i]) + 1
            i += 1

    def at(self, position: int) -> _Table | None:
        i = bisect.bisect_right(self.spans, position, key=lambda t: t.start) - 1
        return self.spans[i] if i >= 0 and position < self.spans[i].end else None

    def header_for(self, text: str, position: int) -> str:
        """The header a chunk starting at `position` repeats: its table's, when a body row starts there."""
        table = self.at(position)
        if table is None or position < table.body:
            return ""
        line_start = text.rfind("\n", table.body - 1, position) + 1
        return "" if text[line_start:position].strip() else table.header


def _boundary(text: str, offsets: Sequence[tuple[int, int]], t: int, layout: _Layout) -> int:
    """Quality of cutting before token t (0 = inside a word)."""
    tables = layout.tables
    before = offsets[t - 1][1]
    gap = text[before : offsets[t][0]]
    if not gap:
        # Chinese and Japanese put no space between words or after a stop: each character is a
        # word of its own, and a full-width stop ends a sentence.
        previous, following = text[before - 1], text[offsets[t][0]]
        if previous in _CJK_SENTENCE_END:
            return SENTENCE
        if previous in _CJK_PAUSE or cjk.UNSPACED.match(previous) or cjk.UNSPACED.match(following):
            return WORD
        return 0
    if not gap.isspace():
        return 0
    if "\n\n" in gap or "\n\r\n" in gap:
        return PARAGRAPH
    # A table's row is its record: cut between rows as between sentences, never inside the header or
    # at the punctuation inside a cell (that would start a chunk halfway through a row).
    if table := tables.at(before):
        return SENTENCE if "\n" in gap and before >= table.body - 1 else WORD
    if text[before - 1] in _SENTENCE_END:
        return SENTENCE
    if "\n" in gap:
        return LINE
    return WORD


def _splits_before(text: str, offsets: Sequence[tuple[int, int]], t: int) -> bool:
    """Whether a WordPiece-like tokenizer splits the text before token t: at either end, or at a gap
    of whitespace proper (a gap of control characters it dropped may join the words around it)."""
    if t == 0 or t >= len(offsets):
        return True
    gap = text[offsets[t - 1][1] : offsets[t][0]]
    return bool(gap) and all(ch in " \t\n\r" or unicodedata.category(ch) == "Zs" for ch in gap)


# Where inline code or brackets cannot continue: a blank line, or a list item's start.
_BLOCK_START = re.compile(r"\n[ \t]*\n|\n[ \t]*(?:[-*+•]|\d{1,3}[.)])[ \t]")
_TICK = re.compile("`")
_BRACKET = re.compile(r"[()\[\]]")
_OPENER = {")": "(", "]": "["}


def _by_block(text: str, marks: re.Pattern) -> Iterator[list[int]]:
    """The positions of `marks` in the text, a paragraph or list item at a time. Visited mark by
    mark, so a text of many short blocks costs no more than its marks (each a token already)."""
    block: list[int] = []
    for m in marks.finditer(text):
        if block and _BLOCK_START.search(text, block[-1] + 1, m.start()):
            yield block
            block = []
        block.append(m.start())
    if block:
        yield block


class _Spans:
    """Spans of a section's text a passage should not be cut in, found once: sorted and disjoint."""

    def __init__(self) -> None:
        self.opens, self.closes = array("q"), array("q")

    @classmethod
    def code(cls, text: str) -> _Spans:
        """Inline code (`...`): a passage cut inside it has an unpaired backtick, and a quote from it
        shows the rest of its sentence as code. As Markdown reads it: a block's backticks pair in
        order, and a last one left over is a character like any other ("the `gain' of function"); a
        block holding a fence is not read."""
        spans = cls()
        for ticks in _by_block(text, _TICK):
            if any(ticks[i + 2] == ticks[i] + 2 for i in range(len(ticks) - 2)):
                continue  # three in a row: a fence
            paired = len(ticks) - len(ticks) % 2
            spans.opens.extend(ticks[0:paired:2])
            spans.closes.extend(ticks[1:paired:2])
        return spans

    @classmethod
    def asides(cls, text: str) -> _Spans:
        """Text in brackets, (...) or [...], outermost pairs within a block; a bracket not closed in
        its block ("a) the first item", ":-(") opens nothing."""
        spans = cls()
        for marks in _by_block(text, _BRACKET):
            stack: list[tuple[str, int]] = []
            for at in marks:
                ch = text[at]
                if ch in "([":
                    stack.append((ch, at))
                elif stack and stack[-1][0] == _OPENER[ch]:
                    _, start = stack.pop()
                    if not stack:
                        spans.opens.append(start)
                        spans.closes.append(at)
                else:
                    stack.clear()  # mismatched: what was open stays unclosed
        return spans

    def __bool__(self) -> bool:
        return bool(self.opens)

    def at(self, position: int) -> bool:
        """Whether a cut before `position` falls inside a span (after its opening mark, up to and
        including its closing one)."""
        i = bisect.bisect_left(self.opens, position) - 1
        return i >= 0 and position <= self.closes[i]


class _Layout:
    """What a section's text holds that its cuts must respect: tables, inline code, brackets."""

    def __init__(self, text: str):
        self.tables = _Tables(text)
        self.code = _Spans.code(text) if "`" in text else _Spans()
        self.asides = _Spans.asides(text) if "(" in text or "[" in text else _Spans()

    def inside(self, offsets: Sequence[tuple[int, int]], t: int, q: int) -> bool:
        """Whether a cut of quality q before token t falls inside inline code or brackets, where a
        stop or a colon ends no sentence either: "(95% CI: 1.1 - 2.3; P = .02)" cut at its
        semicolon is quoted as a sentence ending amid its figures. A paragraph break ends any span;
        a table's rows are cut between, whatever their cells hold."""
        if q >= PARAGRAPH or not (self.code or self.asides) or self.tables.at(offsets[t - 1][1]):
            return False
        return self.code.at(offsets[t][0]) or self.asides.at(offsets[t][0])


def _cut(text: str, offsets: Sequence[tuple[int, int]], start: int, limit: int, layout: _Layout) -> int:
    """The token index to end a chunk that begins at `start`, at most `limit` tokens long."""
    n = len(offsets)
    if n - start <= limit:
        return n
    hi = start + limit
    lo = start + max(1, limit // 2)
    best, best_q, inside = 0, 0, 0
    for t in range(hi, start, -1):
        q = _boundary(text, offsets, t, layout)
        # Prefer the strongest boundary in the back half; fall back to the last space anywhere, one
        # inside inline code or brackets last of all.
        if q > best_q and (t >= lo or best_q == 0):
            if layout.inside(offsets, t, q):
                inside = inside or t
                continue
            best, best_q = t, q
            if q == PARAGRAPH:
                break
        if t < lo and best_q:
            break
    return best or inside or hi


def _overlap_start(
    text: str,
    offsets: Sequence[tuple[int, int]],
    start: int,
    end: int,
    overlap: int,
    layout: _Layout,
) -> int:
    """Where the next chunk begins: at most `overlap` tokens before `end`, on a sentence or word
    boundary; or at the start of the chunk's last sentence when no sentence starts that late and the
    last one is at most twice as long (a chunk beginning inside a sentence would be quoted from the
    middle of one: half the overlaps of SciFact abstracts did, 9% now)."""
    if overlap <= 0 or end >= len(offsets):
        return end
    earliest = max(start + 1, end - overlap)
    word = None
    for t in range(earliest, end):
        q = _boundary(text, offsets, t, layout)
        if not q or (q < SENTENCE and word is not None) or layout.inside(offsets, t, q):
            continue
        if q >= SENTENCE:
            return t
        if not layout.tables.at(offsets[t - 1][1]):
            word = t
    # At most half the chunk again, so that each chunk still moves on by half of one.
    for t in range(earliest - 1, max(start + 1, end - min(2 * overlap, (end - start) // 2)) - 1, -1):
        q = _boundary(text, offsets, t, layout)
        if q >= SENTENCE and not layout.inside(offsets, t, q):
            return t
    return word or end


def _page_at(section: _Section, char: int) -> int | None:
    page = None
    for offset, p in section.pages:
        if offset > char:
            break
        page = p
    return page


def trim_heading(headings: Sequence[str], offsets_of: Offsets, max_tokens: int) -> str:
    """The heading path as ' > '-joined text, keeping the innermost headings within max_tokens."""
    parts = [h.strip() for h in headings if h.strip()]
    while parts:
        path = " > ".join(parts)
        if len(offsets_of(path)) <= max_tokens:
            return path
        if len(parts) == 1:
            offsets = offsets_of(path)
            return path[: offsets[max_tokens - 1][1]] if max_tokens else ""
        parts = parts[1:]
    return ""


def chunk_blocks(
    blocks: Iterable,
    *,
    offsets_of: Offsets,
    max_tokens: int,
    overlap_tokens: int = 0,
    heading_tokens: int = 48,
) -> list[ChunkSpec]:
    """Cut parsed blocks into chunks of at most `max_tokens` tokens of text, with overlap."""
    if max_tokens < 8:
        raise ValueError("max_tokens must be at least 8")
    overlap_tokens = min(overlap_tokens, max_tokens // 2)
    chunks: list[ChunkSpec] = []
    for index, section in enumerate(_sections(blocks)):
        text = section.text
        offsets = list(offsets_of(text))
        if not offsets:
            continue
        heading = trim_heading(section.headings, offsets_of, heading_tokens)
        layout = _Layout(text)
        start = 0
        while start < len(offsets):
            a = offsets[start][0]
            # A chunk that starts inside a table repeats the table's header, so its rows keep their
            # column names (for the embedder, the reader and the model).
            header = layout.tables.header_for(text, a)
            header_count = len(offsets_of(header)) if header else 0
            if header_count > max_tokens // 2:
                header, header_count = "", 0
            limit = max_tokens - header_count
            end = _cut(text, offsets, start, limit, layout)
            b = offsets[end - 1][1]
            # Counts add up across whitespace, so a chunk cut at whitespace at both ends holds exactly
            # end - start tokens. A cut inside a word re-tokenizes its pieces, so count those again.
            if _splits_before(text, offsets, start) and _splits_before(text, offsets, end):
                count = end - start
            else:
                count = len(offsets_of(text[a:b]))
            while count > limit and end - start > 1:
                end -= max(1, count - limit)
                b = offsets[end - 1][1]
                count = len(offsets_of(text[a:b]))
            chunks.append(
                ChunkSpec(
                    text=header + text[a:b],
                    token_count=header_count + count,
                    heading_path=heading,
                    page=_page_at(section, a),
                    section=index,
                    start=a,
                    end=b,
                )
            )
            start = _overlap_start(text, offsets, start, end, overlap_tokens, layout)
    return chunks
