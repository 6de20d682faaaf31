"""PDF: text by page, read as paragraphs under bookmarks and type-size headings (see pdf_text);
scanned pages read by OCR (see ocr)."""

from __future__ import annotations

from pathlib import Path

from . import ocr, pdf_text
from .base import Block, ParseError, _Budget, _clean


def parse_pdf(path: Path, budget: _Budget) -> list[Block]:
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(str(path), strict=False)
        if reader.is_encrypted:
            raise ParseError("the PDF is encrypted; remove the password and upload it again")
        sized = [_pdf_lines(page, budget) for page in reader.pages]
        scanned = [i for i, lines in enumerate(sized) if _scanned(reader.pages[i], lines)]
    except (PdfReadError, KeyError, ValueError, TypeError, AttributeError, IndexError, RecursionError) as exc:
        if isinstance(exc, ParseError):
            raise
        raise ParseError(f"the PDF is damaged or malformed ({type(exc).__name__}: {str(exc)[:120]})") from exc
    undecoded: set[str] = set()  # why a scanned page's image could not be read, if one could not
    if scanned:
        undecoded = _read_scanned(reader, sized, scanned, budget)
    blocks = [
        Block(p.text, page=p.page, headings=p.headings) for p in pdf_text.read(sized, _pdf_outline(reader))
    ]
    if not blocks and undecoded:
        raise ParseError(f"the PDF's scanned pages could not be read: {'; '.join(sorted(undecoded))}")
    if not blocks:
        raise ParseError("the PDF has no extractable text (its pages hold neither text nor scanned images)")
    return blocks


SCANNED_MAX_CHARS = 16  # a scanned page may carry a stamp or a scanner's footer as text, no more


def _scanned(page, lines: list[tuple[str, float]]) -> bool:
    """A page of images and (next to) no text: a scan, whose text only OCR can read."""
    if sum(len("".join(line.split())) for line, _ in lines) >= SCANNED_MAX_CHARS:
        return False
    try:
        return len(page.images) > 0  # lists the page's images without decoding them
    except Exception:  # pypdf raises many kinds on malformed resources; then there is nothing to read
        return False


def _read_scanned(
    reader, sized: list[list[tuple[str, float]]], scanned: list[int], budget: _Budget
) -> set[str]:
    """Replace the scanned pages' lines with what OCR reads in their images, page by page, telling
    `budget.progress`; returns why images could not be decoded, if any could not. Without OCR, a
    PDF that is all scans fails saying what it needs; one with typeset pages as well keeps those."""
    undecoded: set[str] = set()
    if len(scanned) < len(sized) and (budget.ocr is None or not ocr.available()):
        return undecoded
    ocr.require(budget.ocr, "the PDF is scanned images without text", len(scanned))
    for done, i in enumerate(scanned, start=1):
        sized[i] = _ocr_page(reader.pages[i], budget, undecoded)
        if budget.progress:
            budget.progress(done, len(scanned))
    # Measured heights vary a little from line to line: one class per type size.
    classes = ocr.same_sizes([size for i in scanned for _, size in sized[i]])
    for i in scanned:
        sized[i] = [(line, classes.get(size, 0.0)) for line, size in sized[i]]
    return undecoded


def _ocr_page(page, budget: _Budget, undecoded: set[str]) -> list[tuple[str, float]]:
    lines: list[tuple[str, float]] = []
    box = max(float(page.mediabox.width), float(page.mediabox.height)) / 72  # inches
    for index in range(len(page.images)):
        try:
            image = page.images[index]
            width, height = image.image.size
        except MemoryError:
            raise
        except Exception as exc:  # an image pypdf cannot decode: no text from it, and the reason kept
            undecoded.add(_undecoded(exc))
            continue
        if min(width, height) < ocr.MIN_IMAGE_PX:
            continue
        dpi = max(width, height) / box if box else 0
        dpi = dpi if 50 <= dpi <= 1200 else None
        found = ocr.read_image(image.data, budget.ocr, dpi=dpi)
        budget.take("".join(line for line, _ in found))
        # In points, as the typeset pages' sizes are; unknown without the image's resolution.
        lines += [(_clean(line), size * 72 / dpi if dpi else 0.0) for line, size in found if _clean(line)]
    return lines


def _pdf_lines(page, budget: _Budget) -> list[tuple[str, float]]:
    """The page's text lines, each with the type size most of its characters are set in (0 when
    unknown). pypdf hands every piece of text it extracts to the visitor, with its matrices."""
    pieces: list[tuple[str, float, float]] = []

    def visit(text, cm, tm, font, size) -> None:
        scale = (abs(tm[0] * tm[3] - tm[1] * tm[2]) * abs(cm[0] * cm[3] - cm[1] * cm[2])) ** 0.5
        x = tm[4] * cm[0] + tm[5] * cm[2] + cm[4]
        pieces.append((text, float(size or 0) * scale, float(x)))

    text = budget.take(page.extract_text(visitor_text=visit) or "")
    if "".join(t for t, _, _ in pieces) != text:  # not the pieces of this text: sizes unknown
        return [(line, 0.0) for line in _clean(text).splitlines()]
    lines: list[tuple[str, float]] = []
    current, weights, last_x = [], {}, None
    for piece, size, x in pieces + [("\n", 0.0, 0.0)]:
        for i, part in enumerate(piece.split("\n")):
            if i:
                line = _clean("".join(current))
                lines.append((line, max(weights, key=weights.get) if weights else 0.0))
                current, weights, last_x = [], {}, None
            if part.strip():
                # Text set further left on the same line than the text before it is another run:
                # a label at the right margin drawn first, as texinfo's "[Function]", which pypdf
                # joins to the line's first word (it hands over a piece at each change of font,
                # so only runs in two fonts are seen apart). Less than an em back is kerning or
                # an accent set over its letter.
                back = i == 0 and last_x is not None and x < last_x - max(size, 1.0)
                if back and not "".join(current)[-1:].isspace() and not part[0].isspace():
                    current.append(" ")
                last_x = x if i == 0 else None
                weights[size] = weights.get(size, 0) + len(part.strip())
            current.append(part)
    return [(line, size) for line, size in lines if line]


def _undecoded(exc: Exception) -> str:
    if "jbig2dec" in str(exc):
        return "they are JBIG2 images, which need the jbig2dec program (Debian: apt-get install jbig2dec)"
    from pypdf.errors import LimitReachedError

    if isinstance(exc, LimitReachedError):  # pypdf's guard on what a stream inflates to
        return "a page image inflates past the size pypdf decodes (a decompression bomb, or a huge scan)"
    return f"an image is damaged or in a form that cannot be decoded ({type(exc).__name__}: {str(exc)[:80]})"


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
