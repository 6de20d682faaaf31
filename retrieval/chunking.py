"""Text blocks -> token-bounded, structure-aware chunks. Pure functions.

Each section (consecutive blocks under the same heading path, on the same page) is tokenized once with offsets, then cut
at the best boundary before the token bound: a paragraph break, else a sentence end, else a space.
A run of text with no space longer than the bound (a URL, a 200 MB "word") is the only thing ever cut
between tokens. Counts use the embedder's own tokenizer, so no chunk is truncated when embedded.
"""

from __future__ import annotations

import bisect
import hashlib
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from .tables import is_row, is_rule

# A tokenizer for chunking: text -> [(start, end)] character offsets of its tokens, no special tokens.
Offsets = Callable[[str], Sequence[tuple[int, int]]]

PARAGRAPH, SENTENCE, LINE, WORD = 4, 3, 2, 1
_SENTENCE_END = (".", "!", "?", "…", ":", ";", "。", "！", "？")


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
        return f"{self.heading_path}\n{self.text}" if self.heading_path else self.text


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


def _boundary(text: str, offsets: Sequence[tuple[int, int]], t: int) -> int:
    """Quality of cutting before token t (0 = inside a word)."""
    before = offsets[t - 1][1]
    gap = text[before : offsets[t][0]]
    if not gap or not gap.isspace():
        return 0
    if "\n\n" in gap or "\n\r\n" in gap:
        return PARAGRAPH
    if "\n" in gap:
        quality = LINE
    elif text[before - 1] in _SENTENCE_END:
        quality = SENTENCE
    else:
        return WORD
    # A Markdown table's row is its record: cut between rows as between sentences, and never at
    # the punctuation inside a cell (that would start a chunk halfway through a row).
    if _in_table_row(text, before):
        return SENTENCE if quality == LINE else WORD
    return SENTENCE if text[before - 1] in _SENTENCE_END else quality


def _in_table_row(text: str, position: int) -> bool:
    # Looks back a bounded way: on a megabyte-long line, an unbounded search per candidate cut
    # would make chunking quadratic. Longer rows are not treated as rows.
    floor = max(0, position - 4096)
    line_start = text.rfind("\n", floor, position) + 1
    if line_start == 0 and floor > 0:
        return False
    return is_row(text[line_start:position])


def _tables(text: str) -> list[tuple[int, int, str]]:
    """(body start, body end, header row and rule line) of each Markdown table in the text."""
    tables: list[tuple[int, int, str]] = []
    if "|" not in text:
        return tables
    lines = text.split("\n")
    offset, i = 0, 0
    while i < len(lines):
        line = lines[i]
        if is_row(line) and i + 1 < len(lines) and is_rule(lines[i + 1]):
            header = f"{line}\n{lines[i + 1]}\n"
            body = offset + len(header)
            end, i = body, i + 2
            while i < len(lines) and is_row(lines[i]):
                end += len(lines[i]) + 1
                i += 1
            tables.append((body, end, header))
            offset = end
            continue
        offset += len(line) + 1
        i += 1
    return tables


def _table_header(text: str, tables: list[tuple[int, int, str]], position: int) -> str:
    """The header to repeat for a chunk starting at `position`: that of the table whose body row
    starts there, else ""."""
    i = bisect.bisect_right(tables, position, key=lambda t: t[0]) - 1
    if i < 0 or not (tables[i][0] <= position < tables[i][1]):
        return ""
    line_start = text.rfind("\n", max(0, position - 4096), position) + 1
    return "" if text[line_start:position].strip() else tables[i][2]


def _splits_before(text: str, offsets: Sequence[tuple[int, int]], t: int) -> bool:
    """Whether a WordPiece-like tokenizer splits the text before token t: at either end, or at a gap
    of whitespace proper (a gap of control characters it dropped may join the words around it)."""
    if t == 0 or t >= len(offsets):
        return True
    gap = text[offsets[t - 1][1] : offsets[t][0]]
    return bool(gap) and all(ch in " \t\n\r" or unicodedata.category(ch) == "Zs" for ch in gap)


def _cut(text: str, offsets: Sequence[tuple[int, int]], start: int, limit: int) -> int:
    """The token index to end a chunk that begins at `start`, at most `limit` tokens long."""
    n = len(offsets)
    if n - start <= limit:
        return n
    hi = start + limit
    lo = start + max(1, limit // 2)
    best, best_q = 0, 0
    for t in range(hi, start, -1):
        q = _boundary(text, offsets, t)
        # Prefer the strongest boundary in the back half; fall back to the last space anywhere.
        if q > best_q and (t >= lo or best_q == 0):
            best, best_q = t, q
            if q == PARAGRAPH:
                break
        if t < lo and best_q:
            break
    return best or hi


def _overlap_start(text: str, offsets: Sequence[tuple[int, int]], start: int, end: int, overlap: int) -> int:
    """Where the next chunk begins: at most `overlap` tokens before `end`, on a sentence or word boundary."""
    if overlap <= 0 or end >= len(offsets):
        return end
    earliest = max(start + 1, end - overlap)
    word = None
    for t in range(earliest, end):
        q = _boundary(text, offsets, t)
        if q >= SENTENCE:
            return t
        if q and word is None and not _in_table_row(text, offsets[t - 1][1]):
            word = t
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
        tables = _tables(text)
        start = 0
        while start < len(offsets):
            a = offsets[start][0]
            # A chunk that starts inside a table repeats the table's header, so its rows keep their
            # column names (for the embedder, the reader and the model).
            header = _table_header(text, tables, a)
            header_count = len(offsets_of(header)) if header else 0
            if header_count > max_tokens // 2:
                header, header_count = "", 0
            limit = max_tokens - header_count
            end = _cut(text, offsets, start, limit)
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
            start = _overlap_start(text, offsets, start, end, overlap_tokens)
    return chunks
