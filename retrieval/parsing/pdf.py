"""PDF: text by page, read as paragraphs under bookmarks and type-size headings (see pdf_text)."""

from __future__ import annotations

from pathlib import Path

from . import pdf_text
from .base import Block, ParseError, _Budget, _clean


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
    outline, nested = _pdf_outline(reader), []
    if outline:
        nested = pdf_text.below_bookmarks(outline, pdf_text.sized_headings(pages, sizes))
    else:
        outline = pdf_text.font_headings(pages, sizes)
    blocks = [
        Block(p.text, page=p.page, headings=p.headings) for p in pdf_text.paragraphs(pages, outline, nested)
    ]
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
