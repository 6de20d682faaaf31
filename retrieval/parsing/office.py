"""Office documents: Word (DOCX), PowerPoint (PPTX), Excel (XLSX) and OpenDocument text (ODT)."""

from __future__ import annotations

import re
import zipfile
from pathlib import Path

from ..tables import markdown_table
from . import ocr
from .base import Block, Headings, ParseError, _Budget, _clean, _open_package, _xml


def parse_docx(path: Path, budget: _Budget) -> list[Block]:
    _open_package(path, "DOCX")
    import docx
    from docx.oxml.ns import qn

    try:
        document = docx.Document(str(path))
    except Exception as exc:  # python-docx raises many kinds on malformed packages
        raise ParseError(f"the DOCX file is damaged or malformed ({type(exc).__name__})") from exc

    blocks: list[Block] = []
    outline = Headings(blocks)
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
                outline.set(level, budget.take(text))
                continue
            marker = numbering.marker(paragraph)
            text = f"{marker} {text}" if marker else text
            blocks.append(Block(budget.take(text), headings=list(outline.path)))
        elif child.tag == qn("w:tbl"):
            table = docx.table.Table(child, document)
            text = markdown_table([[_clean(c.text) for c in row.cells] for row in table.rows])
            if text:
                blocks.append(Block(budget.take(text), headings=list(outline.path)))
    outline.finish()
    if not blocks:
        return _docx_scans(document, budget)
    return blocks


def _docx_scans(document, budget: _Budget) -> list[Block]:
    """A Word file of pictures and no text (scanned pages pasted in, one a page): its pictures read
    by OCR, in the order they stand."""
    from docx.oxml.ns import qn

    from .image import read_pages

    parts = document.part.related_parts
    blobs = []
    for blip in document.element.body.iter(qn("a:blip")):
        part = parts.get(blip.get(qn("r:embed")))
        if part is not None and part.content_type.startswith("image/"):
            blobs.append(part.blob)
    if not blobs:
        return []
    paragraphs = read_pages(blobs, len(blobs), budget, "the DOCX holds only pictures, no text")
    return [Block(p.text, headings=p.headings) for p in paragraphs]


class _DocxNumbering:
    """The list marker Word shows before a paragraph ("1.", "b)", a bullet as "-"), counted through
    the document as Word counts: a list's items share one counter per level, and an item resets the
    levels below it. Without it "Step 3" of a procedure reads as a bare sentence."""

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
        for element in [paragraph._p] + [s.element for s in _style_chain(style)]:
            num_pr = element.find(f"{qn('w:pPr')}/{qn('w:numPr')}")
            if num_pr is not None:
                num_id, ilvl = num_pr.find(qn("w:numId")), num_pr.find(qn("w:ilvl"))
                if num_id is None:
                    continue
                level = ilvl.get(qn("w:val")) if ilvl is not None else "0"
                return num_id.get(qn("w:val")), int(level) if level.isdigit() else 0
        return None

    def marker(self, paragraph) -> str:
        found = self._numbering_of(paragraph)
        if not found or found[0] not in self.levels:
            return ""  # numId 0 (numbering switched off) or undefined
        num_id, ilvl = found
        fmt, text, start = self.levels[num_id].get(ilvl, ("decimal", f"%{ilvl + 1}.", 1))
        if fmt == "none":
            return ""
        if fmt == "bullet":
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
    for style in _style_chain(paragraph.style):
        name = style.name or ""
        if name == "Title":
            return 1
        match = re.fullmatch(r"Heading (\d)", name)
        if match:
            return int(match.group(1))
        if level := outline(style.element):
            return level
    return 0


def _style_chain(style):
    """A paragraph style, then those it is based on, however a template built them (at most 8)."""
    for _ in range(8):
        if style is None:
            return
        yield style
        style = style.base_style


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
    outline = Headings(blocks)

    def walk(node) -> None:
        for child in node:
            if child.tag == f"{_ODF_TEXT}h":
                title = _clean(" ".join(_odf_text(child).split()))
                if title:
                    level = max(int(child.get(f"{_ODF_TEXT}outline-level") or 1), 1)
                    outline.set(level, budget.take(title))
            elif child.tag == f"{_ODF_TEXT}p":
                text = _clean(_odf_text(child))
                if text:
                    blocks.append(Block(budget.take(text), headings=list(outline.path)))
            elif child.tag == f"{_ODF_TABLE}table":
                table = markdown_table(_odf_rows(child))
                if table:
                    blocks.append(Block(budget.take(table), headings=list(outline.path)))
            elif child.tag in (f"{_ODF_TEXT}list", f"{_ODF_TEXT}list-item", f"{_ODF_TEXT}section"):
                walk(child)

    walk(body)
    outline.finish()
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


def parse_pptx(path: Path, budget: _Budget) -> list[Block]:
    """Each slide under the heading "Slide N: its title": its text boxes top to bottom, its tables
    (and charts' data) as Markdown tables, pictures by their alt text, then the speaker notes. (Not
    as pages: a citation then says "slide", and a deck is downloaded, so there is no viewer to open
    at a page.)"""
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
    pictured = 0  # blocks that are a picture's alt text (often only its file name: "image.png")
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
                pictured += bool(text)
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
    if len(blocks) == pictured:  # pictures and no text at all: a deck of scans or exported slides
        if blocks and (budget.ocr is None or not ocr.available()):
            return blocks  # the alt text, rather than failing a deck that has some
        return _pptx_scans(presentation, shapes_in, budget) or blocks
    return blocks


def _pptx_scans(presentation, shapes_in, budget: _Budget) -> list[Block]:
    """A deck of pictures and no text (handouts scanned, slides exported as images): each slide's
    largest picture read by OCR, under "Slide N" (in place of the pictures' alt text)."""
    from pptx.enum.shapes import MSO_SHAPE_TYPE

    from .image import read_pages

    slides, blobs = [], []
    for number, slide in enumerate(presentation.slides, start=1):
        pictures = [s for s in shapes_in(slide.shapes) if s.shape_type == MSO_SHAPE_TYPE.PICTURE]
        if not pictures:
            continue
        largest = max(pictures, key=lambda s: (s.width or 0) * (s.height or 0))
        try:
            blob = largest.image.blob
        except (KeyError, ValueError, AttributeError):  # a picture linked from outside the deck
            continue
        slides.append(number)
        blobs.append(blob)
    if not blobs:
        return []
    paragraphs = read_pages(blobs, len(blobs), budget, "the PPTX holds only pictures, no text")
    return [Block(p.text, headings=[f"Slide {slides[p.page - 1]}", *p.headings]) for p in paragraphs]


def _chart_text(chart) -> str:
    """A chart as its title over a Markdown table of its data: a row per category, a column per
    series (what the slide shows as bars or lines, which text search cannot see)."""
    title = _clean(chart.chart_title.text_frame.text) if chart.has_title else ""
    # The first plot with data; a combined chart's others share its categories.
    plot = next((p for p in chart.plots if len(p.series)), None)
    table = ""
    if plot is not None:
        values = [list(s.values) for s in plot.series]
        rows = [["", *(_clean(s.name or "") for s in plot.series)]] + [
            [_clean(str(category)), *(_cell(v[i]) if i < len(v) and v[i] is not None else "" for v in values)]
            for i, category in enumerate(plot.categories)
        ]
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
