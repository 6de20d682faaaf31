"""What every format's parser shares: the blocks they make, their errors, the character budget,
text decoding, and the guards on ZIP packages and on the XML inside uploads."""

from __future__ import annotations

import codecs
import re
import unicodedata
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

SNIFF_BYTES = 64 * 1024
_UTF16_BOMS = ((b"\xff\xfe", "utf-16-le"), (b"\xfe\xff", "utf-16-be"))
# Control characters, lone surrogates, private-use and unassigned code points: what random bytes
# after a byte order mark decode to, and no text document holds.
_NOT_TEXT = {"Cc", "Cs", "Co", "Cn"}
_HTML_CHARSET = re.compile(rb"<meta[^>]{0,200}?charset\s*=\s*[\"']?\s*([A-Za-z0-9_.:-]{1,40})", re.IGNORECASE)
# An Office package (DOCX, PPTX, XLSX) or an EPUB is a ZIP; past these it is refused unopened (a zip bomb).
OFFICE_MAX_UNCOMPRESSED = 200 * 1024 * 1024
OFFICE_MAX_RATIO = 150


class UnsupportedType(ValueError):
    """The file's content is not a supported type, or does not match its extension (HTTP 415)."""


class ParseError(ValueError):
    """The file could not be turned into text; the message is shown to the user."""


class TooMuchText(ParseError):
    """The document holds more text than its budget: the whole document's limit, never a part's."""


@dataclass
class Block:
    text: str
    page: int | None = None
    headings: list[str] = field(default_factory=list)


class Headings:
    """The headings above the text a parser is at, as the document's outline levels set them (under
    `outer`, the headings of the file around a part). A heading under which no text comes (a file that
    is only an outline, an empty section) becomes a block of its own, so that its words stay
    searchable; a heading followed by text or by a deeper heading is kept in the blocks' paths.
    `title` names the text until a first-level heading replaces it (a page's front matter)."""

    def __init__(self, blocks: list[Block], outer: Sequence[str] = (), title: str = ""):
        self.blocks, self.outer = blocks, list(outer)
        self.path: list[str] = list(outer) + ([title] if title else [])
        self._level = 0
        self._mark: int | None = None  # len(blocks) when the last heading came

    def set(self, level: int, title: str) -> None:
        if level <= self._level:
            self._keep_bare()
        depth = len(self.outer) + level - 1
        self.path = self.path[:depth] + [title]
        self._level, self._mark = level, len(self.blocks)

    def finish(self) -> None:
        self._keep_bare()

    def _keep_bare(self) -> None:
        if self._mark is not None and len(self.blocks) == self._mark:
            self.blocks.append(Block(self.path[-1], headings=self.path[:-1]))


def _open_package(path: Path, label: str) -> None:
    """Refuses a ZIP package (an Office file or an EPUB) that would expand past what any real
    document does, before a library inflates it."""
    try:
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
    except zipfile.BadZipFile as exc:
        raise ParseError(f"the {label} file is a damaged ZIP archive") from exc
    total = sum(i.file_size for i in infos)
    packed = max(1, sum(i.compress_size for i in infos))
    if total > OFFICE_MAX_UNCOMPRESSED or total / packed > OFFICE_MAX_RATIO:
        raise ParseError(f"the {label} file expands to an implausible size (a zip bomb?); it was not opened")


class _Budget:
    """What one parse may spend and use: characters of text, and OCR for scanned pages (with a
    callback told of each page read, as OCR is slow)."""

    def __init__(self, max_chars: int, *, ocr=None, progress: Callable[[int, int], None] | None = None):
        self.left = max_chars
        self.max_chars = max_chars
        self.ocr = ocr
        self.progress = progress

    def take(self, text: str) -> str:
        self.left -= len(text)
        if self.left < 0:
            raise TooMuchText(f"the document holds more than {self.max_chars:,} characters of text")
        return text


# Typographic ligatures, as PDFs typeset by TeX and others hand them out ("ﬁle"): spelled out, so
# that keyword search, the embedder and quotes read "file". Soft hyphens (invisible break hints
# inside words, "infor\u00admation") go: keyword search would read "infor\u00adm" as the stem.
_LIGATURES = str.maketrans(
    {
        "\u00ad": None,
        "\ufb00": "ff",
        "\ufb01": "fi",
        "\ufb02": "fl",
        "\ufb03": "ffi",
        "\ufb04": "ffl",
        "\ufb05": "st",
        "\ufb06": "st",
    }
)


def spelled_out(text: str) -> str:
    """The text with its ligatures as letters and without soft hyphens (every parser's output)."""
    return text.translate(_LIGATURES)


def _clean(text: str) -> str:
    return text.replace("\x00", "").strip()


def _decode(data: bytes, *, html: bool = False) -> str:
    """UTF-8 (with or without its byte order mark); UTF-16 with its byte order mark; for HTML, the
    charset its <meta> declares (Word's "Save as Web Page" writes windows-1252). Anything else that is
    not UTF-8 fails, with the offset of the first bad byte: guessing an encoding would index garbage."""
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    for bom, codec in _UTF16_BOMS:
        if data.startswith(bom):
            try:
                text = data[len(bom) :].decode(codec)
            except UnicodeDecodeError as exc:
                raise ParseError(
                    f"the file begins as UTF-16 text (byte order mark) but is not valid UTF-16"
                    f" (bad bytes at offset {exc.start + len(bom):,})"
                ) from exc
            if any(unicodedata.category(c) in _NOT_TEXT and c not in "\t\n\r\f" for c in text):
                raise ParseError(
                    "the file begins as UTF-16 text (byte order mark) but holds no readable text"
                )
            return text
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        declared = _HTML_CHARSET.search(data[:SNIFF_BYTES]) if html else None
        if declared:
            try:
                codec = codecs.lookup(declared.group(1).decode("ascii"))
                if codec.name != "utf-8":
                    return data.decode(codec.name)
            except (LookupError, UnicodeDecodeError):
                pass
        # Saying how to mend it: most such files are in a legacy encoding (Windows-1252, Latin-1).
        raise ParseError(
            f"the file is not valid UTF-8 text (bad byte at offset {exc.start:,}); "
            "save it as UTF-8 and upload it again"
        ) from exc


def _read_bytes(path: Path, budget: _Budget) -> bytes:
    """A file read whole, refused unread when it is bigger than the budget could ever take."""
    if path.stat().st_size > budget.max_chars * 4:
        raise TooMuchText(f"the document holds more than {budget.max_chars:,} characters of text")
    return path.read_bytes()


def _read_text(path: Path, budget: _Budget, *, html: bool = False) -> str:
    text = _decode(_read_bytes(path, budget), html=html)
    if "\x00" in text:
        raise ParseError("the file contains NUL bytes, so it is not a text document")
    return budget.take(text)


def _text_blocks(text: str, headings: Sequence[str] = ()) -> list[Block]:
    return [Block(p.strip(), headings=list(headings)) for p in re.split(r"\n\s*\n", text) if p.strip()]


def _xml(data: bytes):
    """An XML part of an upload, parsed as untrusted: no entities, no network, no huge trees."""
    from lxml import etree

    return etree.fromstring(data, etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False))
