"""Bytes -> text blocks with structure (page, heading path). Knows nothing of Django.

Parsing untrusted files runs in a child process (`parse_isolated`) with memory, CPU and time limits,
so a hostile file fails its own document with a readable reason and never takes the worker down.
"""

from __future__ import annotations

import codecs
import io
import json
import os
import re
import select
import signal
import subprocess
import sys
import threading
import time
import unicodedata
import zipfile
import zlib
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from . import pdf_text
from .tables import markdown_table

EXTENSIONS = {
    ".pdf": "pdf",
    ".docx": "docx",
    ".md": "markdown",
    ".markdown": "markdown",
    ".mdx": "markdown",
    ".html": "html",
    ".htm": "html",
    ".txt": "text",
    ".text": "text",
    # Light markup read as plain text (paragraphs, no headings), so a docs folder goes up whole.
    ".rst": "text",
    ".adoc": "text",
    ".org": "text",
    ".log": "text",
    ".csv": "csv",
    ".pptx": "pptx",
    ".xlsx": "xlsx",
    ".eml": "email",
    ".epub": "epub",
    ".odt": "odt",
}
SNIFF_BYTES = 64 * 1024
_UTF16_BOMS = ((b"\xff\xfe", "utf-16-le"), (b"\xfe\xff", "utf-16-be"))
# Control characters, lone surrogates, private-use and unassigned code points: what random bytes
# after a byte order mark decode to, and no text document holds.
_NOT_TEXT = {"Cc", "Cs", "Co", "Cn"}
_HTML_CHARSET = re.compile(rb"<meta[^>]{0,200}?charset\s*=\s*[\"']?\s*([A-Za-z0-9_.:-]{1,40})", re.IGNORECASE)
# An Office package (DOCX, PPTX, XLSX) or an EPUB is a ZIP; past these it is refused unopened (a zip bomb).
OFFICE_MAX_UNCOMPRESSED = 200 * 1024 * 1024
OFFICE_MAX_RATIO = 150
_OFFICE_PARTS = {"word/document.xml": "docx", "ppt/presentation.xml": "pptx", "xl/workbook.xml": "xlsx"}
# EPUB and OpenDocument name their type in a first, stored file called `mimetype`.
_ZIP_MIMETYPES = {b"application/epub+zip": "epub", b"application/vnd.oasis.opendocument.text": "odt"}


class UnsupportedType(ValueError):
    """The file's content is not a supported type, or does not match its extension (HTTP 415)."""


class ParseError(ValueError):
    """The file could not be turned into text; the message is shown to the user."""


@dataclass
class Block:
    text: str
    page: int | None = None
    headings: list[str] = field(default_factory=list)


def _looks_like_html(text: str) -> bool:
    head = text.lstrip("\ufeff \t\r\n")[:2048].lower()
    if head.startswith(("<!doctype html", "<html")):
        return True
    return head.startswith("<") and bool(re.search(r"<(head|body|p|div|h[1-6]|title|article)[\s>]", head))


_EMAIL_HEADER = re.compile(r"(?im)^(from|to|subject|date|message-id|received|return-path|mime-version):[ \t]")


def _looks_like_email(text: str) -> bool:
    """A message's header block: field lines (or their folded continuations) up to the first blank
    line, among them fields every message has."""
    head = text.lstrip("\ufeff").replace("\r\n", "\n").split("\n\n", 1)[0]
    lines = head.split("\n")
    if lines[0].startswith("From "):  # the separator line mbox exports put first
        lines = lines[1:]
    fields = all(re.match(r"[!-9;-~]+:|[ \t]", line) for line in lines if line)
    return fields and len(_EMAIL_HEADER.findall(head)) >= 2


def _sniff_text(head: bytes) -> str | None:
    """The decoded prefix when the bytes look like text (no NUL), else None.

    Invalid UTF-8 still counts as text here, so the parser can fail the document with the offset
    of the bad byte rather than calling the file binary.
    """
    for bom, codec in _UTF16_BOMS:
        if head.startswith(bom):
            # Windows writes "Unicode" text as UTF-16 (Notepad, Excel's Unicode Text, PowerShell 5's
            # `>`): every other byte of ASCII is NUL, so the NUL test is on the decoded text.
            head = head[len(bom) : len(head) - (len(head) - len(bom)) % 2]
            text = head.decode(codec, errors="replace")
            return None if "\x00" in text else text
    if b"\x00" in head:
        return None
    return head.decode("utf-8", errors="replace")


def detect_kind(path: str | Path, filename: str) -> str:
    """The document kind from its content, checked against the extension of its name."""
    path = Path(path)
    with path.open("rb") as fh:
        head = fh.read(SNIFF_BYTES)
    ext = Path(filename).suffix.lower()
    claimed = EXTENSIONS.get(ext)
    if ext and claimed is None:
        raise UnsupportedType(
            f"'{ext}' files are not supported; upload PDF, DOCX, ODT, PPTX, XLSX, EPUB, Markdown, HTML, CSV, email (EML) or text"
        )

    if b"%PDF-" in head[:1024]:
        found = "pdf"
    elif head.startswith(b"PK\x03\x04"):
        found = _zip_kind(path)
    else:
        text = _sniff_text(head)
        if text is None:
            raise UnsupportedType("the file is binary and not a PDF or DOCX document")
        if claimed in ("markdown", "text", "csv"):
            found = claimed
        elif claimed == "email":
            found = "email" if _looks_like_email(text) else "text"
        else:
            found = "html" if _looks_like_html(text) else "text"

    if claimed and claimed != found:
        raise UnsupportedType(f"the file's content is {found.upper()}, which does not match its '{ext}' name")
    return found


def _zip_kind(path: Path) -> str:
    try:
        with zipfile.ZipFile(path) as zf:
            names = set(zf.namelist())
    except zipfile.BadZipFile as exc:
        raise UnsupportedType("the file is a damaged ZIP archive") from exc
    for marker, kind in _OFFICE_PARTS.items():
        if marker in names:
            return kind
    if "mimetype" in names and ("META-INF/container.xml" in names or "content.xml" in names):
        try:
            with zipfile.ZipFile(path) as zf:
                small = zf.getinfo("mimetype").file_size < 100
                kind = _ZIP_MIMETYPES.get(zf.read("mimetype").strip()) if small else None
                if kind:
                    return kind
        except (zipfile.BadZipFile, RuntimeError, NotImplementedError, EOFError, zlib.error) as exc:
            # A bad checksum, an encrypted or oddly compressed member: not an EPUB we can read.
            raise UnsupportedType("the file is a damaged ZIP archive") from exc
    raise UnsupportedType(
        "the file is a ZIP archive but not a Word, PowerPoint, Excel, OpenDocument text or EPUB document"
    )


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
    def __init__(self, max_chars: int):
        self.left = max_chars
        self.max_chars = max_chars

    def take(self, text: str) -> str:
        self.left -= len(text)
        if self.left < 0:
            raise ParseError(f"the document holds more than {self.max_chars:,} characters of text")
        return text


def _clean(text: str) -> str:
    return text.replace("\x00", "").strip()


def parse_pdf(path: Path, budget: _Budget) -> list[Block]:
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(str(path), strict=False)
        if reader.is_encrypted:
            raise ParseError("the PDF is encrypted; remove the password and upload it again")
        sized = [_pdf_lines(page, budget) for page in reader.pages]
    except (PdfReadError, KeyError, ValueError, TypeError, AttributeError, IndexError, RecursionError) as exc:
        if isinstance(exc, ParseError):
            raise
        raise ParseError(f"the PDF is damaged or malformed ({type(exc).__name__}: {str(exc)[:120]})") from exc
    pages = pdf_text.strip_furniture([[line for line, _ in lines] for lines in sized])
    sizes = [{line: size for line, size in lines} for lines in sized]
    outline = _pdf_outline(reader) or pdf_text.font_headings(pages, sizes)
    blocks = [Block(p.text, page=p.page, headings=p.headings) for p in pdf_text.paragraphs(pages, outline)]
    if not blocks:
        raise ParseError(
            "the PDF has no extractable text (a scanned PDF needs OCR, which Docent does not do)"
        )
    return blocks


def _pdf_lines(page, budget: _Budget) -> list[tuple[str, float]]:
    """The page's text lines, each with the type size most of its characters are set in (0 when
    unknown). pypdf hands every piece of text it extracts to the visitor, with its matrices."""
    pieces: list[tuple[str, float]] = []

    def visit(text, cm, tm, font, size) -> None:
        scale = (abs(tm[0] * tm[3] - tm[1] * tm[2]) * abs(cm[0] * cm[3] - cm[1] * cm[2])) ** 0.5
        pieces.append((text, float(size or 0) * scale))

    text = budget.take(page.extract_text(visitor_text=visit) or "")
    if "".join(t for t, _ in pieces) != text:  # not the pieces of this text: sizes unknown
        return [(line, 0.0) for line in _clean(text).splitlines()]
    lines: list[tuple[str, float]] = []
    current, weights = [], {}
    for piece, size in pieces + [("\n", 0.0)]:
        for i, part in enumerate(piece.split("\n")):
            if i:
                line = _clean("".join(current))
                lines.append((line, max(weights, key=weights.get) if weights else 0.0))
                current, weights = [], {}
            current.append(part)
            if part.strip():
                weights[size] = weights.get(size, 0) + len(part.strip())
    return [(line, size) for line, size in lines if line]


PDF_OUTLINE_MAX = 5000


def _pdf_outline(reader) -> list[pdf_text.Heading]:
    """The bookmarks, in order, with their depth and page; none when the outline is unreadable
    (it only names sections: a broken one must not fail the document)."""
    out: list[pdf_text.Heading] = []

    def walk(items, depth: int) -> None:
        for item in items:
            if len(out) >= PDF_OUTLINE_MAX:
                return
            if isinstance(item, list):
                walk(item, depth + 1)
                continue
            title = " ".join(str(item.title or "").split())
            page = reader.get_destination_page_number(item)
            if title and page is not None and page >= 0:
                out.append(pdf_text.Heading(min(depth, 8), title, page + 1))

    try:
        walk(reader.outline, 0)
    except Exception:  # pypdf raises many kinds on malformed outlines
        return []
    return out


def parse_docx(path: Path, budget: _Budget) -> list[Block]:
    _open_package(path, "DOCX")
    import docx
    from docx.oxml.ns import qn

    try:
        document = docx.Document(str(path))
    except Exception as exc:  # python-docx raises many kinds on malformed packages
        raise ParseError(f"the DOCX file is damaged or malformed ({type(exc).__name__})") from exc

    blocks: list[Block] = []
    headings: list[str] = []
    numbering = _DocxNumbering(document)
    body = document.element.body
    for child in body.iterchildren():
        if child.tag == qn("w:p"):
            paragraph = docx.text.paragraph.Paragraph(child, document)
            text = _clean(paragraph.text)
            if not text:
                continue
            level = _heading_level(paragraph)
            if level:
                headings = headings[: level - 1] + [text]
                budget.take(text)
                continue
            marker = numbering.marker(paragraph)
            text = f"{marker} {text}" if marker else text
            blocks.append(Block(budget.take(text), headings=list(headings)))
        elif child.tag == qn("w:tbl"):
            table = docx.table.Table(child, document)
            text = markdown_table([[_clean(c.text) for c in row.cells] for row in table.rows])
            if text:
                blocks.append(Block(budget.take(text), headings=list(headings)))
    if not blocks and headings:
        blocks.append(Block(" ".join(headings)))
    return blocks


class _DocxNumbering:
    """The list marker Word shows before a paragraph ("1.", "b)", a bullet as "-"), counted through
    the document as Word counts: a list's items share one counter per level, and an item resets the
    levels below it. Without it "Step 3" of a procedure reads as a bare sentence."""

    _FORMATS = {"decimal", "lowerLetter", "upperLetter", "lowerRoman", "upperRoman", "bullet"}

    def __init__(self, document):
        from docx.oxml.ns import qn

        self.qn = qn
        self.levels: dict[str, dict[int, tuple[str, str, int]]] = {}  # numId -> ilvl -> (format, text, start)
        self.counters: dict[tuple[str, int], int] = {}
        try:
            self._read(document.part.numbering_part.element)
        except (KeyError, NotImplementedError, AttributeError, ValueError, TypeError):
            self.levels = {}  # no numbering part, or one past reading: the items go without markers

    def _read(self, root) -> None:
        qn = self.qn
        abstract = {}
        for node in root.findall(qn("w:abstractNum")):
            levels = {}
            for lvl in node.findall(qn("w:lvl")):
                fmt, text, start = (lvl.find(qn(f"w:{name}")) for name in ("numFmt", "lvlText", "start"))
                levels[int(lvl.get(qn("w:ilvl")) or 0)] = (
                    fmt.get(qn("w:val")) if fmt is not None else "decimal",
                    text.get(qn("w:val")) if text is not None else "",
                    int(start.get(qn("w:val")) or 1) if start is not None else 1,
                )
            abstract[node.get(qn("w:abstractNumId"))] = levels
        for num in root.findall(qn("w:num")):
            ref = num.find(qn("w:abstractNumId"))
            if ref is not None and ref.get(qn("w:val")) in abstract:
                self.levels[num.get(qn("w:numId"))] = abstract[ref.get(qn("w:val"))]

    def _numbering_of(self, paragraph) -> tuple[str, int] | None:
        qn = self.qn
        style = paragraph.style
        for element in [paragraph._p] + [s.element for s in self._styles(style)]:
            num_pr = element.find(f"{qn('w:pPr')}/{qn('w:numPr')}")
            if num_pr is not None:
                num_id, ilvl = num_pr.find(qn("w:numId")), num_pr.find(qn("w:ilvl"))
                if num_id is None:
                    continue
                level = ilvl.get(qn("w:val")) if ilvl is not None else "0"
                return num_id.get(qn("w:val")), int(level) if level.isdigit() else 0
        return None

    @staticmethod
    def _styles(style):
        for _ in range(8):
            if style is None:
                return
            yield style
            style = style.base_style

    def marker(self, paragraph) -> str:
        found = self._numbering_of(paragraph)
        if not found or found[0] not in self.levels:
            return ""  # numId 0 (numbering switched off) or undefined
        num_id, ilvl = found
        fmt, text, start = self.levels[num_id].get(ilvl, ("decimal", f"%{ilvl + 1}.", 1))
        if fmt == "bullet" or fmt not in self._FORMATS:
            return "-"
        count = self.counters.get((num_id, ilvl), start - 1) + 1
        self.counters[(num_id, ilvl)] = count
        for deeper in [k for k in self.counters if k[0] == num_id and k[1] > ilvl]:
            del self.counters[deeper]

        def shown(match) -> str:
            lvl = int(match.group(1)) - 1
            fmt_, _, start_ = self.levels[num_id].get(lvl, ("decimal", "", 1))
            return _list_number(self.counters.get((num_id, lvl), start_), fmt_)

        return re.sub(r"%(\d)", shown, text or f"%{ilvl + 1}.").strip() or "-"


def _list_number(n: int, fmt: str) -> str:
    if fmt in ("lowerLetter", "upperLetter"):
        letters = ""
        while n > 0:
            n, rest = divmod(n - 1, 26)
            letters = chr(97 + rest) + letters
        return letters.upper() if fmt == "upperLetter" else letters
    if fmt in ("lowerRoman", "upperRoman"):
        numerals = [
            (1000, "m"),
            (900, "cm"),
            (500, "d"),
            (400, "cd"),
            (100, "c"),
            (90, "xc"),
            (50, "l"),
            (40, "xl"),
            (10, "x"),
            (9, "ix"),
            (5, "v"),
            (4, "iv"),
            (1, "i"),
        ]
        roman = ""
        for value, numeral in numerals:
            while n >= value:
                roman, n = roman + numeral, n - value
        return roman.upper() if fmt == "upperRoman" else roman
    return str(n)


def _heading_level(paragraph) -> int:
    """1-9 for a heading, else 0: a Title or Heading N style, a style built on one (company templates
    derive their own), or an outline level set on the paragraph or its style."""
    from docx.oxml.ns import qn

    def outline(element) -> int:
        found = element.find(f"{qn('w:pPr')}/{qn('w:outlineLvl')}") if element is not None else None
        value = found.get(qn("w:val")) if found is not None else None
        return int(value) + 1 if value is not None and value.isdigit() and int(value) < 9 else 0

    if level := outline(paragraph._p):
        return level
    style = paragraph.style
    for _ in range(8):  # the chain of styles it is based on, however a template built it
        if style is None:
            return 0
        name = style.name or ""
        if name == "Title":
            return 1
        match = re.fullmatch(r"Heading (\d)", name)
        if match:
            return int(match.group(1))
        if level := outline(style.element):
            return level
        style = style.base_style
    return 0


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
        raise ParseError(f"the file is not valid UTF-8 text (bad byte at offset {exc.start:,})") from exc


def _read_text(path: Path, budget: _Budget, *, html: bool = False) -> str:
    size = path.stat().st_size
    if size > budget.max_chars * 4:
        raise ParseError(f"the document holds more than {budget.max_chars:,} characters of text")
    text = _decode(path.read_bytes(), html=html)
    if "\x00" in text:
        raise ParseError("the file contains NUL bytes, so it is not a text document")
    return budget.take(text)


_MD_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
_MD_LINK = re.compile(r"!?\[([^\]]*)\]\([^)]*\)")


# Front matter (Jekyll, Hugo, Docusaurus, MkDocs): YAML between --- lines, or TOML between +++ lines.
_FRONT_MATTER = re.compile(r"\A\ufeff?(---|\+\+\+)[ \t]*\r?\n(.*?)\r?\n\1[ \t]*(?:\r?\n|\Z)", re.S)
_FRONT_TITLE = re.compile(r"""^title\s*[:=]\s*(["']?)(.+?)\1\s*$""", re.M)


# MDX (Markdown with components, as Docusaurus writes it): its ES module lines and lines holding
# only a component's tag (capitalised, unlike HTML's) are code, not text.
_MDX_CODE = re.compile(
    r"""^(?:import\s+["'][^"']+["']|(?:import|export)\s.*\sfrom\s+["'][^"']+["'])\s*;?\s*$"""
    r"""|^\s*</?[A-Z][\w.]*(?:\s[^<>]*)?/?>\s*$"""
)


def _looks_like_front_matter(body: str) -> bool:
    """Keys and values (`key: value`, `key = value`, indented or listed continuations, comments),
    starting with a key: not a page opening with a horizontal rule."""
    lines = body.splitlines()
    key = re.compile(r"""^["']?[\w.-]+["']?\s*[:=]""")
    return (
        bool(lines)
        and bool(key.match(lines[0]))
        and all(not line.strip() or key.match(line) or line[0] in " \t-#[" for line in lines)
    )


def parse_markdown(path: Path, budget: _Budget) -> list[Block]:
    text = _read_text(path, budget)
    blocks: list[Block] = []
    headings: list[str] = []
    front = _FRONT_MATTER.match(text)
    if front and _looks_like_front_matter(front.group(2)):
        # Metadata, not text; its title names the page when no "# heading" does (an H1 replaces it).
        text = text[front.end() :]
        title = _FRONT_TITLE.search(front.group(2))
        headings = [title.group(2).strip()] if title else []
    lines = text.splitlines()
    buffer: list[str] = []
    in_fence = False

    def flush() -> None:
        para = "\n".join(buffer).strip()
        buffer.clear()
        if para:
            blocks.append(Block(_MD_LINK.sub(r"\1", para), headings=list(headings)))

    for i, line in enumerate(lines):
        if line.lstrip().startswith(("```", "~~~")):
            in_fence = not in_fence
            buffer.append(line)
            if not in_fence:
                flush()
            continue
        if in_fence:
            buffer.append(line)
            continue
        if _MDX_CODE.match(line):
            continue
        match = _MD_HEADING.match(line)
        # Setext headings: a line underlined by === or ---.
        nxt = lines[i + 1] if i + 1 < len(lines) else ""
        if match is None and line.strip() and re.fullmatch(r"\s*(=+|-+)\s*", nxt) and not buffer:
            match_level, title = (1 if nxt.strip()[0] == "=" else 2), line.strip()
        elif match:
            match_level, title = len(match.group(1)), match.group(2)
        else:
            match_level, title = 0, ""
        if match_level:
            flush()
            headings = headings[: match_level - 1] + [_MD_LINK.sub(r"\1", title)]
            continue
        if re.fullmatch(r"\s*(=+|-+)\s*", line) and not buffer:
            continue  # the underline of a setext heading
        if not line.strip():
            flush()
        else:
            buffer.append(line)
    flush()
    return blocks


_HTML_SKIP = {
    "script",
    "style",
    "noscript",
    "template",
    "head",
    "svg",
    "iframe",
    "object",
    "canvas",
    "button",
}
_HTML_BLOCK = {
    "p",
    "div",
    "li",
    "ul",
    "ol",
    "pre",
    "blockquote",
    "section",
    "article",
    "main",
    "aside",
    "header",
    "footer",
    "nav",
    "table",
    "tr",
    "td",
    "th",
    "dd",
    "dt",
    "dl",
    "figure",
    "figcaption",
    "br",
    "hr",
    "form",
}
# A table whose cells hold these lays out a page rather than tabulating data.
_HTML_LAYOUT = ["table", "p", "div", "ul", "ol", "h1", "h2", "h3", "h4", "h5", "h6", "pre", "blockquote"]
_HIDDEN_STYLE = re.compile(r"display\s*:\s*none|visibility\s*:\s*hidden", re.I)


def parse_html(path: Path, budget: _Budget) -> list[Block]:
    return _html_blocks(_read_text(path, budget, html=True))


def _html_blocks(text: str, headings: Sequence[str] = ()) -> list[Block]:
    """The visible text of an HTML document as blocks, under `headings` and its own h1-h6."""
    from bs4 import BeautifulSoup, Comment, NavigableString, Tag

    soup = BeautifulSoup(text, "lxml")
    blocks: list[Block] = []
    outer = list(headings)
    headings = list(outer)
    buffer: list[str] = []

    def flush() -> None:
        para = re.sub(r"[ \t\r\f\v]+", " ", "".join(buffer)).strip()
        buffer.clear()
        if para:
            blocks.append(Block(para, headings=list(headings)))

    def hidden(tag: Tag) -> bool:
        return (
            tag.has_attr("hidden")
            or tag.get("aria-hidden") == "true"
            or bool(_HIDDEN_STYLE.search(tag.get("style") or ""))
        )

    def is_data_table(table: Tag) -> bool:
        # Cells holding blocks lay a page out; hidden or skipped content must go through walk().
        return not table.find(_HTML_LAYOUT) and not any(
            d.name in _HTML_SKIP or hidden(d) for d in table.find_all(True)
        )

    def walk(node) -> None:
        nonlocal headings
        for child in node.children:
            if isinstance(child, Comment):
                continue
            if isinstance(child, NavigableString):
                buffer.append(str(child))
                continue
            if not isinstance(child, Tag) or child.name in _HTML_SKIP or hidden(child):
                continue
            if re.fullmatch(r"h[1-6]", child.name):
                flush()
                level = int(child.name[1])
                title = re.sub(r"\s+", " ", child.get_text(" ")).strip()
                if title:
                    headings = outer + headings[len(outer) : len(outer) + level - 1] + [title]
                continue
            if child.name == "table" and is_data_table(child):
                flush()
                text = markdown_table(
                    [
                        [cell.get_text(" ") for cell in row.find_all(("th", "td"), recursive=False)]
                        for row in child.find_all("tr")
                    ]
                )
                if text:
                    blocks.append(Block(text, headings=list(headings)))
                continue
            if child.name in _HTML_BLOCK:
                flush()
                walk(child)
                flush()
            else:
                walk(child)

    walk(soup.body or soup)
    flush()
    if not blocks:
        title = soup.title.get_text(" ").strip() if soup.title else ""
        if title:
            blocks.append(Block(title, headings=outer))
    return blocks


def _text_blocks(text: str, headings: Sequence[str] = ()) -> list[Block]:
    return [Block(p.strip(), headings=list(headings)) for p in re.split(r"\n\s*\n", text) if p.strip()]


EMAIL_HEADERS = ("From", "To", "Cc", "Date", "Subject")


def _xml(data: bytes):
    """An XML part of an upload, parsed as untrusted: no entities, no network, no huge trees."""
    from lxml import etree

    return etree.fromstring(data, etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False))


_OPF = "{http://www.idpf.org/2007/opf}"
_CONTAINER = "{urn:oasis:names:tc:opendocument:xmlns:container}"


def parse_epub(path: Path, budget: _Budget) -> list[Block]:
    """An EPUB book: its XHTML documents in reading order (the spine), each read like an HTML page,
    under the book's title."""
    import posixpath

    from lxml import etree

    _open_package(path, "EPUB")
    blocks: list[Block] = []
    try:
        with zipfile.ZipFile(path) as zf:
            container = _xml(zf.read("META-INF/container.xml"))
            rootfile = container.find(f".//{_CONTAINER}rootfile")
            opf_path = rootfile.get("full-path") if rootfile is not None else None
            if not opf_path:
                raise ParseError("the EPUB names no package document")
            opf = _xml(zf.read(opf_path))
            title_node = opf.find(".//{http://purl.org/dc/elements/1.1/}title")
            title = _clean(title_node.text or "") if title_node is not None and title_node.text else ""
            items = {
                item.get("id"): item
                for item in opf.iter(f"{_OPF}item")
                if item.get("media-type") in ("application/xhtml+xml", "text/html")
            }
            base = posixpath.dirname(opf_path)
            for ref in opf.iter(f"{_OPF}itemref"):
                item = items.get(ref.get("idref"))
                if item is None or not item.get("href"):
                    continue
                name = posixpath.normpath(posixpath.join(base, item.get("href").split("#")[0]))
                data = zf.read(name)
                text = budget.take(_decode(data, html=True))
                blocks += _html_blocks(text, [title] if title else [])
    except ParseError:
        raise
    except (KeyError, zipfile.BadZipFile, etree.XMLSyntaxError, ValueError) as exc:
        raise ParseError(f"the EPUB file is damaged or malformed ({type(exc).__name__})") from exc
    return blocks


_ODF_TEXT = "{urn:oasis:names:tc:opendocument:xmlns:text:1.0}"
_ODF_TABLE = "{urn:oasis:names:tc:opendocument:xmlns:table:1.0}"
_ODF_OFFICE = "{urn:oasis:names:tc:opendocument:xmlns:office:1.0}"
ODF_REPEAT_MAX = 50  # a repeated cell or row past this is formatting reaching the sheet's edge


def parse_odt(path: Path, budget: _Budget) -> list[Block]:
    """An OpenDocument text (LibreOffice Writer): headings by outline level, paragraphs and list
    items, tables as Markdown; footnotes and annotations are left out of the running text."""
    from lxml import etree

    _open_package(path, "ODT")
    try:
        with zipfile.ZipFile(path) as zf:
            data = zf.read("content.xml")
        root = _xml(data)
    except (KeyError, zipfile.BadZipFile, etree.XMLSyntaxError) as exc:
        raise ParseError(f"the ODT file is damaged or malformed ({type(exc).__name__})") from exc
    body = root.find(f"{_ODF_OFFICE}body/{_ODF_OFFICE}text")
    if body is None:
        raise ParseError("the ODT file has no text body")
    blocks: list[Block] = []
    headings: list[str] = []

    def walk(node) -> None:
        nonlocal headings
        for child in node:
            if child.tag == f"{_ODF_TEXT}h":
                title = _clean(" ".join(_odf_text(child).split()))
                level = int(child.get(f"{_ODF_TEXT}outline-level") or 1) if title else 0
                if title:
                    headings = headings[: max(level, 1) - 1] + [budget.take(title)]
            elif child.tag == f"{_ODF_TEXT}p":
                text = _clean(_odf_text(child))
                if text:
                    blocks.append(Block(budget.take(text), headings=list(headings)))
            elif child.tag == f"{_ODF_TABLE}table":
                table = markdown_table(_odf_rows(child))
                if table:
                    blocks.append(Block(budget.take(table), headings=list(headings)))
            elif child.tag in (f"{_ODF_TEXT}list", f"{_ODF_TEXT}list-item", f"{_ODF_TEXT}section"):
                walk(child)

    walk(body)
    return blocks


def _odf_text(node) -> str:
    parts = [node.text or ""]
    for child in node:
        tag = child.tag
        if tag == f"{_ODF_TEXT}s":
            parts.append(" " * min(int(child.get(f"{_ODF_TEXT}c") or 1), 100))
        elif tag == f"{_ODF_TEXT}tab":
            parts.append("\t")
        elif tag == f"{_ODF_TEXT}line-break":
            parts.append("\n")
        elif tag not in (f"{_ODF_TEXT}note", f"{_ODF_OFFICE}annotation"):
            parts.append(_odf_text(child))
        parts.append(child.tail or "")
    return "".join(parts)


def _odf_rows(table) -> list[list[str]]:
    rows: list[list[str]] = []
    for row in table.iter(f"{_ODF_TABLE}table-row"):
        cells: list[str] = []
        for cell in row:
            if cell.tag not in (f"{_ODF_TABLE}table-cell", f"{_ODF_TABLE}covered-table-cell"):
                continue
            text = " ".join(_clean(_odf_text(p)) for p in cell if p.tag == f"{_ODF_TEXT}p").strip()
            repeat = min(int(cell.get(f"{_ODF_TABLE}number-columns-repeated") or 1), ODF_REPEAT_MAX)
            cells.extend([text] * repeat)
        while cells and not cells[-1]:
            cells.pop()
        repeat = min(int(row.get(f"{_ODF_TABLE}number-rows-repeated") or 1), ODF_REPEAT_MAX)
        rows.extend([cells] * repeat if cells else [])
    return rows


def _email_text(part) -> str:
    try:
        return part.get_content()
    except LookupError:  # a charset Python does not know: read it as UTF-8, marking what is not
        return (part.get_payload(decode=True) or b"").decode("utf-8", errors="replace")


def parse_email(path: Path, budget: _Budget) -> list[Block]:
    """An email (.eml): its sender, recipients, date and subject as the first block, then its body
    (the plain text part, else the HTML one) under the subject; attachments are named, not read."""
    import email
    import email.policy

    size = path.stat().st_size
    if size > budget.max_chars * 4:
        raise ParseError(f"the document holds more than {budget.max_chars:,} characters of text")
    try:
        message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        header = [f"{name}: {_clean(str(message[name]))}" for name in EMAIL_HEADERS if message[name]]
        subject = _clean(str(message["Subject"] or "")) or "(no subject)"
        body = message.get_body(preferencelist=("plain", "html"))
        content = _clean(_email_text(body)) if body is not None else ""
        attachments = [_clean(part.get_filename() or "") for part in message.iter_attachments()]
    except (LookupError, UnicodeError, ValueError, TypeError, AttributeError, IndexError) as exc:
        # An unknown charset, a malformed header or MIME structure: the standard library's kinds.
        raise ParseError(f"the email is malformed ({type(exc).__name__}: {str(exc)[:120]})") from exc
    budget.take(content)
    blocks = [Block(budget.take("\n".join(header)), headings=[subject])] if header else []
    if body is not None and body.get_content_type() == "text/html":
        blocks += _html_blocks(content, [subject])
    else:
        blocks += _text_blocks(content, [subject])
    named = [name for name in attachments if name]
    if named:
        blocks.append(Block("Attachments: " + ", ".join(named), headings=[subject]))
    return blocks


def parse_text(path: Path, budget: _Budget) -> list[Block]:
    return _text_blocks(_read_text(path, budget))


def parse_csv(path: Path, budget: _Budget) -> list[Block]:
    """A CSV file as one Markdown table (its first row the header), which chunking cuts between rows
    under a repeated header."""
    import csv

    text = _read_text(path, budget)
    try:
        dialect = csv.Sniffer().sniff(text[:8192], delimiters=",;\t|")
    except csv.Error:
        dialect = csv.excel
    try:
        rows = list(csv.reader(io.StringIO(text, newline=""), dialect))
    except csv.Error as exc:  # an unclosed quote, or a field past the csv module's size limit
        raise ParseError(f"the CSV file is malformed ({exc})") from exc
    table = markdown_table(rows)
    return [Block(table)] if table else []


def parse_pptx(path: Path, budget: _Budget) -> list[Block]:
    """Each slide under the heading "Slide N: its title": its text boxes top to bottom, its tables
    (and charts' data) as Markdown tables, pictures by their alt text, then the speaker notes. (Not as pages: a citation then says "slide", and a deck
    is downloaded, so there is no viewer to open at a page.)"""
    _open_package(path, "PPTX")
    import pptx
    from pptx.enum.shapes import MSO_SHAPE_TYPE

    try:
        presentation = pptx.Presentation(str(path))
    except Exception as exc:  # python-pptx raises many kinds on malformed packages
        raise ParseError(f"the PPTX file is damaged or malformed ({type(exc).__name__})") from exc

    def shapes_in(shapes):
        # Reading order: top to bottom, then left to right; a group's shapes take its place.
        for shape in sorted(shapes, key=lambda s: (s.top or 0, s.left or 0)):
            if shape.shape_type == MSO_SHAPE_TYPE.GROUP:
                yield from shapes_in(shape.shapes)
            else:
                yield shape

    blocks: list[Block] = []
    for number, slide in enumerate(presentation.slides, start=1):
        title_shape = slide.shapes.title
        title = _clean(title_shape.text_frame.text) if title_shape is not None else ""
        headings = [budget.take(f"Slide {number}: {title}" if title else f"Slide {number}")]
        found = len(blocks)
        for shape in shapes_in(slide.shapes):
            if title_shape is not None and shape.shape_id == title_shape.shape_id:
                continue
            if shape.has_text_frame:
                text = "\n".join(t for p in shape.text_frame.paragraphs if (t := _clean(p.text)))
            elif getattr(shape, "has_table", False):  # only a graphic frame has the attribute
                text = markdown_table([[_clean(c.text) for c in row.cells] for row in shape.table.rows])
            elif getattr(shape, "has_chart", False):
                try:
                    text = _chart_text(shape.chart)
                except (KeyError, ValueError, TypeError, AttributeError, IndexError):
                    text = ""  # a chart part past reading costs the chart, not the deck
            elif shape.shape_type == MSO_SHAPE_TYPE.PICTURE:
                # A picture says nothing, but its alternative text (for screen readers) may.
                alt = _clean(shape._element.nvPicPr.cNvPr.get("descr") or "")
                text = f"Image: {alt}" if alt else ""
            else:
                continue
            if text:
                blocks.append(Block(budget.take(text), headings=list(headings)))
        if slide.has_notes_slide:
            notes = (
                _clean(slide.notes_slide.notes_text_frame.text) if slide.notes_slide.notes_text_frame else ""
            )
            if notes:
                blocks.append(Block(budget.take(notes), headings=[*headings, "Notes"]))
        if title and len(blocks) == found:
            blocks.append(Block(title, headings=list(headings)))  # a title slide says something too
    return blocks


def _chart_text(chart) -> str:
    """A chart as its title over a Markdown table of its data: a row per category, a column per
    series (what the slide shows as bars or lines, which text search cannot see)."""
    title = _clean(chart.chart_title.text_frame.text) if chart.has_title else ""
    rows: list[list[str]] = []
    for plot in chart.plots:
        categories = [_clean(str(c)) for c in plot.categories]
        series = list(plot.series)
        if not series:
            continue
        header = ["", *(_clean(s.name or "") for s in series)]
        values = [list(s.values) for s in series]
        rows = [header] + [
            [category, *(_cell(v[i]) if i < len(v) and v[i] is not None else "" for v in values)]
            for i, category in enumerate(categories)
        ]
        break  # the first plot; a combined chart's others share its categories
    table = markdown_table(rows) if len(rows) > 1 else ""
    return "\n\n".join(part for part in (f"Chart: {title}" if title else "", table) if part)


def parse_xlsx(path: Path, budget: _Budget) -> list[Block]:
    """Each sheet as a Markdown table under the sheet's name, its first non-empty row the header;
    cells as last calculated (formulas are not evaluated)."""
    _open_package(path, "XLSX")
    import openpyxl

    try:
        # A file object: given a path, openpyxl insists on an .xlsx name, and stored files have none.
        workbook = openpyxl.load_workbook(path.open("rb"), read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises many kinds on malformed packages
        raise ParseError(f"the XLSX file is damaged or malformed ({type(exc).__name__})") from exc
    blocks: list[Block] = []
    try:
        for sheet in workbook.worksheets:
            # The stored dimensions may take in a formatted empty cell far out; read the cells there are.
            sheet.reset_dimensions()
            rows: list[list[str]] = []
            for values in sheet.iter_rows(values_only=True):
                row = ["" if v is None else _cell(v) for v in values]
                while row and not row[-1]:
                    row.pop()
                if row:
                    budget.take(" ".join(row))  # counted as read: a huge sheet fails early
                    rows.append(row)
            # A table placed further right (from column C, say) leaves empty columns before it.
            left = min((next(i for i, c in enumerate(row) if c) for row in rows), default=0)
            table = markdown_table([row[left:] for row in rows])
            if table:
                blocks.append(Block(table, headings=[_clean(sheet.title)]))
    except ParseError:
        raise
    except Exception as exc:
        raise ParseError(f"the XLSX file is damaged or malformed ({type(exc).__name__})") from exc
    finally:
        workbook.close()
    return blocks


def _cell(value) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if hasattr(value, "isoformat"):
        text = value.isoformat(sep=" ") if hasattr(value, "hour") else value.isoformat()
        return text.removesuffix(" 00:00:00")
    return _clean(str(value))


PARSERS = {
    "pdf": parse_pdf,
    "docx": parse_docx,
    "markdown": parse_markdown,
    "html": parse_html,
    "text": parse_text,
    "csv": parse_csv,
    "pptx": parse_pptx,
    "xlsx": parse_xlsx,
    "email": parse_email,
    "epub": parse_epub,
    "odt": parse_odt,
}


def parse(path: str | Path, kind: str, *, max_chars: int) -> list[Block]:
    """Parse in this process. Use `parse_isolated` for untrusted files."""
    blocks = PARSERS[kind](Path(path), _Budget(max_chars))
    if not blocks:
        raise ParseError("the document contains no text")
    return blocks


class IsolatedParser:
    """A long-lived child process that parses one file at a time under rlimits.

    Reusing the child keeps a Python start-up off every document; a file that hangs it, blows its
    memory limit or crashes it costs only that file, and the next call starts a fresh child.
    """

    RECYCLE_AFTER = 200  # documents; bounds fragmentation and anything a parser may leak

    def __init__(self, *, timeout_s: int, memory_mb: int):
        self.timeout_s = timeout_s
        self.memory_mb = memory_mb
        self._proc: subprocess.Popen | None = None
        self._served = 0
        self._lock = threading.Lock()

    def _start(self) -> subprocess.Popen:
        memory = self.memory_mb * 1024 * 1024

        def limit() -> None:
            import resource

            resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
            resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0))  # the parser writes no files
            resource.setrlimit(resource.RLIMIT_CORE, (0, 0))

        env = {k: v for k, v in os.environ.items() if k in ("PATH", "LANG", "LC_ALL", "HOME", "TMPDIR")}
        env["PYTHONPATH"] = str(Path(__file__).resolve().parent.parent)
        self._served = 0
        return subprocess.Popen(
            [sys.executable, "-m", "retrieval.parsing", "--serve"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,  # pypdf warns a lot on bad files; a full pipe would hang the child
            preexec_fn=limit,
            env=env,
        )

    def close(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()

    def parse(self, path: str | Path, kind: str, *, max_chars: int) -> list[Block]:
        if kind not in PARSERS:
            raise UnsupportedType(f"unknown document kind {kind!r}")
        with self._lock:
            if self._proc is None or self._proc.poll() is not None or self._served >= self.RECYCLE_AFTER:
                self.close()
                self._proc = self._start()
            proc = self._proc
            request = json.dumps({"kind": kind, "path": str(path), "max_chars": max_chars}) + "\n"
            try:
                proc.stdin.write(request.encode())
                proc.stdin.flush()
            except BrokenPipeError:
                self.close()
                raise ParseError("the parser process could not be started") from None
            line = self._read_line(proc)
            self._served += 1
        try:
            result = json.loads(line)
        except ValueError:
            self.close()
            raise ParseError("the parser returned garbage for this file") from None
        if result.get("restart"):
            self.close()
        if "error" in result:
            raise ParseError(result["error"])
        return [Block(**b) for b in result["blocks"]]

    def _read_line(self, proc: subprocess.Popen) -> bytes:
        deadline = time.monotonic() + self.timeout_s
        chunks: list[bytes] = []
        fd = proc.stdout.fileno()
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                self.close()
                raise ParseError(f"parsing took longer than {self.timeout_s} s and was stopped")
            ready, _, _ = select.select([fd], [], [], left)
            if not ready:
                continue
            data = os.read(fd, 1 << 20)
            if not data:
                code = proc.wait()
                self.close()
                if code < 0:
                    name = signal.Signals(-code).name
                    raise ParseError(f"the parser crashed on this file ({name}); the file may be malicious")
                raise ParseError(f"the parser stopped on this file (exit code {code})")
            chunks.append(data)
            if data.endswith(b"\n"):
                return b"".join(chunks)


_parsers: dict[tuple[int, int], IsolatedParser] = {}


def parse_isolated(
    path: str | Path, kind: str, *, max_chars: int, timeout_s: int, memory_mb: int
) -> list[Block]:
    """Parse untrusted bytes in this process's parser child; failures become readable ParseErrors."""
    key = (timeout_s, memory_mb)
    if key not in _parsers:
        _parsers[key] = IsolatedParser(timeout_s=timeout_s, memory_mb=memory_mb)
    return _parsers[key].parse(path, kind, max_chars=max_chars)


def _serve_one(request: dict) -> dict:
    try:
        blocks = parse(request["path"], request["kind"], max_chars=int(request["max_chars"]))
        return {"blocks": [asdict(b) for b in blocks]}
    except (ParseError, UnsupportedType) as exc:
        return {"error": str(exc)}
    except MemoryError:
        return {"error": "parsing needed more memory than allowed and was stopped", "restart": True}
    except RecursionError:
        return {"error": "the document is nested too deeply to parse", "restart": True}
    except OSError as exc:
        return {"error": f"the file could not be read ({exc.strerror or exc})"}
    except Exception as exc:  # the child reports any parser failure as the document's error
        return {"error": f"the file could not be parsed ({type(exc).__name__}: {str(exc)[:160]})"}


def _serve() -> int:
    for line in sys.stdin.buffer:
        try:
            out = json.dumps(_serve_one(json.loads(line)))
        except MemoryError:
            out = json.dumps(
                {"error": "parsing needed more memory than allowed and was stopped", "restart": True}
            )
        sys.stdout.write(out + "\n")
        sys.stdout.flush()
        if '"restart": true' in out[-40:]:
            return 0
    return 0


if __name__ == "__main__" and sys.argv[1:] == ["--serve"]:
    sys.exit(_serve())
