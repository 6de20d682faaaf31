"""Images (PNG, JPEG, TIFF, WebP): a photo or scan of a printed page, read by OCR. A multi-page
TIFF, as scanners and fax servers save them, is read page by page."""

from __future__ import annotations

import io
from collections.abc import Iterable
from pathlib import Path

from . import ocr, pdf_text
from .base import Block, ParseError, _Budget, _clean


def parse_image(path: Path, budget: _Budget) -> list[Block]:
    from PIL import Image, ImageSequence, UnidentifiedImageError

    try:
        image = Image.open(path)
        frames = getattr(image, "n_frames", 1)
    except Image.DecompressionBombError as exc:
        raise ParseError(f"the image is too large to read ({exc})") from exc
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise ParseError(f"the image is damaged or in a form that cannot be read ({str(exc)[:120]})") from exc

    def pages():
        for frame in ImageSequence.Iterator(image):
            frame.load()  # a truncated or damaged image fails here, not as "no text" after OCR
            if frames == 1 and image.format in ("PNG", "JPEG", "WEBP"):
                yield path.read_bytes()  # Tesseract reads these as they are
                continue
            buffer = io.BytesIO()  # a page of a TIFF, in a form Tesseract reads whatever its compression
            frame.save(buffer, "PNG")
            yield buffer.getvalue()

    try:
        paragraphs = read_pages(pages(), frames, budget, "the file is an image", dpi=_dpi(image))
    except ParseError:
        raise
    except (OSError, ValueError, SyntaxError) as exc:  # Pillow's, decoding a damaged page
        raise ParseError(f"the image is damaged or in a form that cannot be read ({str(exc)[:120]})") from exc
    if not paragraphs:
        raise ParseError("no text was found in the image")
    single = frames == 1  # a photo has no page numbers to cite
    return [Block(p.text, page=None if single else p.page, headings=p.headings) for p in paragraphs]


def read_pages(
    pages: Iterable[bytes], count: int, budget: _Budget, what: str, *, dpi: float | None = None
) -> list[pdf_text.Paragraph]:
    """Paragraphs under headings of `count` images of pages, read by OCR one at a time (telling
    `budget.progress`); `what` names the document in the error when OCR is missing."""
    settings = ocr.require(budget.ocr, what, count)
    sized: list[list[tuple[str, float]]] = []
    for number, data in enumerate(pages, start=1):
        found = ocr.read_image(data, settings, dpi=dpi)
        budget.take("".join(line for line, _ in found))
        # Pixels: only their ratios count, as no typeset page's sizes are beside them.
        sized.append([(_clean(line), size) for line, size in found if _clean(line)])
        if budget.progress:
            budget.progress(number, count)
    classes = ocr.same_sizes([size for lines in sized for _, size in lines])
    return pdf_text.read([[(line, classes.get(size, 0.0)) for line, size in lines] for lines in sized])


def _dpi(image) -> float | None:
    """The resolution the image declares, when it is one a scanner would use (a photo says 72)."""
    declared = image.info.get("dpi")
    try:
        value = float(declared[0]) if declared else 0.0
    except (TypeError, ValueError, IndexError):
        return None
    return value if 100 <= value <= 1200 else None
