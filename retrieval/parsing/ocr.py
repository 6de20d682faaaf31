"""Scanned pages read by OCR: each page image handed to Tesseract, a program of its own (Debian's
`tesseract-ocr`), used when it is on PATH. Reading an image takes a second or two, so the caller
reports progress page by page.

Tesseract's hOCR output gives each printed line with its `x_size`, the height it measured for the
line's type; converted to points (with the image's resolution), it is the line's type size, so that
the readers find a scan's headings the way they find a typeset PDF's.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from html.parser import HTMLParser

from .base import ParseError

MIN_IMAGE_PX = 200  # a smaller image is a logo or an icon, not a page's text
SIZE_STEP = 1.08  # measured sizes this close are one type size (Tesseract's x_size varies by a few %)


@dataclass(frozen=True)
class Ocr:
    """How scanned pages are read (from settings: `DOCENT_OCR_*`)."""

    languages: str = "eng"
    max_pages: int = 200
    timeout_s: int = 120  # per image


def available() -> bool:
    return shutil.which("tesseract") is not None


# Tesseract's name for each language a collection can be in (PostgreSQL's text search
# configurations, `SEARCH_LANGUAGES`); "simple" has none.
TESSERACT_LANGUAGES = {
    "arabic": "ara", "armenian": "hye", "basque": "eus", "catalan": "cat", "danish": "dan",
    "dutch": "nld", "english": "eng", "finnish": "fin", "french": "fra", "german": "deu",
    "greek": "ell", "hindi": "hin", "hungarian": "hun", "indonesian": "ind", "irish": "gle",
    "italian": "ita", "lithuanian": "lit", "nepali": "nep", "norwegian": "nor", "portuguese": "por",
    "romanian": "ron", "russian": "rus", "serbian": "srp", "spanish": "spa", "swedish": "swe",
    "tamil": "tam", "turkish": "tur", "yiddish": "yid",
}  # fmt: skip


@functools.lru_cache(maxsize=1)
def installed_languages() -> frozenset[str]:
    """The languages Tesseract has data for on this machine (`tesseract --list-langs`)."""
    if not available():
        return frozenset()
    try:
        done = subprocess.run(
            [shutil.which("tesseract") or "tesseract", "--list-langs"],
            capture_output=True,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return frozenset()
    lines = done.stdout.decode(errors="replace").splitlines()
    return frozenset(line.strip() for line in lines[1:] if line.strip())


def languages_for(collection_language: str, configured: str) -> str:
    """The languages to read a collection's scans in: the configured ones (`DOCENT_OCR_LANGUAGES`),
    with the collection's own first when Tesseract has it ("deu+eng" for a German collection: "ß"
    and "ä" are read as such, not as "B" and "a")."""
    code = TESSERACT_LANGUAGES.get(collection_language)
    names = configured.split("+")
    if code is None or code in names or code not in installed_languages():
        return configured
    return "+".join([code, *names])


def require(ocr: Ocr | None, what: str, pages: int) -> Ocr:
    """The OCR settings to read `pages` scanned pages of `what` ("the PDF is scanned images without
    text"), or a ParseError saying what is missing."""
    if ocr is None:
        raise ParseError(f"{what}, and OCR is turned off (DOCENT_OCR)")
    if not available():
        raise ParseError(
            f"{what}; reading its text needs OCR: install Tesseract on the worker's machine "
            "(Debian: apt-get install tesseract-ocr), then retry the document"
        )
    if pages > ocr.max_pages:
        raise ParseError(
            f"{what}: {pages} pages, and OCR reads at most {ocr.max_pages} per document (DOCENT_OCR_MAX_PAGES)"
        )
    return ocr


def read_image(data: bytes, ocr: Ocr, *, dpi: float | None) -> list[tuple[str, float]]:
    """The printed lines of one image (PNG, JPEG, TIFF ...), each with the height Tesseract measured
    for its type, in pixels (`dpi`, when known, is passed on as a hint)."""
    # Page segmentation 1: with orientation detection, so a page scanned sideways or upside down is
    # read (about 8% slower than without).
    command = [shutil.which("tesseract") or "tesseract", "stdin", "stdout", "-l", ocr.languages, "--psm", "1"]
    if dpi:
        command += ["--dpi", str(round(dpi))]
    try:
        done = subprocess.run(
            [*command, "hocr"],
            input=data,
            capture_output=True,
            timeout=ocr.timeout_s,
            # One thread: the worker runs several things at once, and OpenMP's threads only fight them.
            env={**os.environ, "OMP_THREAD_LIMIT": "1"},
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise ParseError(
            f"reading a scanned page took longer than {ocr.timeout_s} s and was stopped"
        ) from None
    if done.returncode != 0:
        said = done.stderr.decode(errors="replace")
        if "Failed loading language" in said or "Error opening data file" in said:
            raise ParseError(
                f"OCR language {ocr.languages!r} is not installed (Debian: tesseract-ocr-<language>); "
                "set DOCENT_OCR_LANGUAGES to one that is"
            )
        return []  # an image Tesseract cannot read holds no text we could have had
    hocr = _Hocr()
    hocr.feed(done.stdout.decode(errors="replace"))
    return [(" ".join(words), size) for words, size in hocr.lines if words]


class _Hocr(HTMLParser):
    """hOCR's lines: their words, and the type height Tesseract measured (`x_size`, in pixels)."""

    LINES = {"ocr_line", "ocr_header", "ocr_caption", "ocr_textfloat"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.lines: list[tuple[list[str], float]] = []
        self._word: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        names = dict(attrs)
        kind = names.get("class") or ""
        if kind in self.LINES:
            size = re.search(r"x_size ([\d.]+)", names.get("title") or "")
            self.lines.append(([], float(size.group(1)) if size else 0.0))
        elif kind == "ocrx_word" and self.lines:
            self._word = []

    def handle_data(self, data: str) -> None:
        if self._word is not None:
            self._word.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "span" and self._word is not None:  # a word's own span; inside it only <strong>, <em>
            word = "".join(self._word).strip()
            if word:
                self.lines[-1][0].append(word)
            self._word = None


def same_sizes(sizes: Sequence[float]) -> dict[float, float]:
    """Each measured size mapped to its size class. Sizes in a run where each is within `SIZE_STEP`
    of the one below are one size (the run's median), so body lines measured 9.1 to 9.8 pt are one
    body size and a heading measured 13.9 pt on one line and 15.1 pt on the next one heading."""
    classes: dict[float, float] = {}
    group: list[float] = []
    for size in sorted(s for s in sizes if s > 0) + [float("inf")]:
        if group and size > group[-1] * SIZE_STEP:
            middle = round(group[len(group) // 2] * 2) / 2
            classes.update(dict.fromkeys(group, middle))
            group = []
        group.append(size)
    return classes
