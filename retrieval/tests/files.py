"""Small real documents of every supported type, and hostile ones, built in memory."""

from __future__ import annotations

import io
import zipfile


def pdf_bytes(pages: list[str | list], outline: list[tuple[int, str, int]] = ()) -> bytes:
    """A valid PDF written by hand (Helvetica, uncompressed): each page one text line, or a list of
    lines (text, or (text, type size)) set 14 points apart (more for large type). `outline` adds bookmarks (depth, title,
    1-based page) with pypdf."""
    objects = []
    kids = " ".join(f"{3 + 2 * i} 0 R" for i in range(len(pages)))
    objects.append("<< /Type /Catalog /Pages 2 0 R >>")
    objects.append(f"<< /Type /Pages /Kids [{kids}] /Count {len(pages)} >>")
    font_id = 3 + 2 * len(pages)
    for i, lines in enumerate(pages):
        content_id = 4 + 2 * i
        objects.append(
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents {content_id} 0 R "
            f"/Resources << /Font << /F1 {font_id} 0 R >> >> >>"
        )
        shown = []
        for line in [lines] if isinstance(lines, str) else lines:
            line, size = (line, 12) if isinstance(line, str) else line
            safe = line.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
            shown.append(f"/F1 {size} Tf ({safe}) Tj 0 -{max(14, round(size * 1.4))} Td")
        stream = "BT /F1 12 Tf 72 720 Td " + " ".join(shown) + " ET"
        objects.append(f"<< /Length {len(stream)} >>\nstream\n{stream}\nendstream")
    objects.append("<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
    out = io.BytesIO()
    out.write(b"%PDF-1.4\n")
    offsets = []
    for n, body in enumerate(objects, start=1):
        offsets.append(out.tell())
        out.write(f"{n} 0 obj\n{body}\nendobj\n".encode("latin-1"))
    xref = out.tell()
    out.write(f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode())
    for off in offsets:
        out.write(f"{off:010d} 00000 n \n".encode())
    out.write(f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode())
    if not outline:
        return out.getvalue()
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(out.getvalue())))
    parents: list = []
    for depth, title, page in outline:
        del parents[depth:]
        parent = parents[-1] if parents else None
        parents.append(writer.add_outline_item(title=title, page_number=page - 1, parent=parent))
    result = io.BytesIO()
    writer.write(result)
    return result.getvalue()


def scanned_pdf_bytes(
    pages: list[list[tuple[str, int]]], text_page: str | None = None, turn: int = 0
) -> bytes:
    """A PDF of page scans, as a scanner makes them: each page one grey image (200 dpi, JPEG) of
    lines (text, height in pixels), and no text. `text_page` puts a typeset page first; `turn`
    turns every page by that many degrees (a page fed sideways)."""
    from PIL import Image, ImageDraw, ImageFont
    from pypdf import PdfReader, PdfWriter

    images = []
    for lines in pages:
        image = Image.new("L", (1700, 2200), 255)
        draw, y = ImageDraw.Draw(image), 200
        for line, px in lines:
            draw.text((170, y), line, font=ImageFont.load_default(size=px), fill=0)
            y += round(px * 1.5)
        images.append(image.rotate(turn, expand=True))
    scans = io.BytesIO()
    images[0].save(scans, "PDF", save_all=True, append_images=images[1:], resolution=200)
    if text_page is None:
        return scans.getvalue()
    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(pdf_bytes([text_page]))))
    writer.append(PdfReader(scans))
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def jbig2_scan_pdf_bytes(line: str) -> bytes:
    """A one-page scan as archive scanners save them: a 1-bit page image in JBIG2 (an MMR-coded
    generic region, its CCITT G4 data taken from a one-strip TIFF Pillow writes), 200 dpi."""
    import struct

    from PIL import Image, ImageDraw, ImageFont, ImageOps

    page = Image.new("L", (1700, 2200), 255)
    ImageDraw.Draw(page).text((170, 200), line, font=ImageFont.load_default(size=34), fill=0)
    tiff = io.BytesIO()
    # Inverted: in JBIG2 a set bit is black, in Pillow's 1-bit images white.
    ImageOps.invert(page).convert("1").save(tiff, "TIFF", compression="group4", strip_size=1 << 30)
    tags = Image.open(io.BytesIO(tiff.getvalue())).tag_v2
    g4 = tiff.getvalue()[tags[273][0] : tags[273][0] + tags[279][0]]

    def segment(number: int, kind: int, data: bytes) -> bytes:
        return struct.pack(">IBBBI", number, kind, 0, 1, len(data)) + data

    stream = segment(0, 48, struct.pack(">IIIIBH", *page.size, 0, 0, 0, 0)) + segment(
        1, 38, struct.pack(">IIIIBB", *page.size, 0, 0, 0, 1) + g4
    )
    return _image_page_pdf(*page.size, 1, b"/JBIG2Decode", stream)


def pdf_image_bomb(side: int = 20_000) -> bytes:
    """A page with no text and one grey image side x side pixels (400 megapixels by default), which
    inflates from about 400 KB: a scan that would take all memory to decode."""
    import zlib

    compressor = zlib.compressobj(9)
    row = bytes(side) * 1000
    data = b"".join(compressor.compress(row) for _ in range(side // 1000)) + compressor.flush()
    return _image_page_pdf(side, side, 8, b"/FlateDecode", data)


def _image_page_pdf(width: int, height: int, bits: int, codec: bytes, data: bytes) -> bytes:
    """A letter page showing one grey image, full page, stored as `codec` encoded it, and no text."""
    return _pdf(
        [
            b"<< /Type /Catalog /Pages 2 0 R >>",
            b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
            b"/Resources << /XObject << /Im0 5 0 R >> >> >>",
            b"<< /Length 35 >>\nstream\nq 612 0 0 792 0 0 cm /Im0 Do Q\nendstream",
            b"<< /Type /XObject /Subtype /Image /Width %d /Height %d /ColorSpace /DeviceGray "
            b"/BitsPerComponent %d /Filter %s /Length %d >>\nstream\n"
            % (width, height, bits, codec, len(data))
            + data
            + b"\nendstream",
        ]
    )


def photo_bytes(lines: list[tuple[str, int]], fmt: str = "PNG", **save) -> bytes:
    """An image of printed lines (text, height in pixels), as a screenshot or a photo of a notice."""
    from PIL import Image, ImageDraw, ImageFont

    image = Image.new("L", (1400, 120 + 60 * len(lines)), 255)
    draw, y = ImageDraw.Draw(image), 40
    for line, px in lines:
        draw.text((60, y), line, font=ImageFont.load_default(size=px), fill=0)
        y += round(px * 1.6)
    out = io.BytesIO()
    image.save(out, fmt, **save)
    return out.getvalue()


def epub_bytes(
    title: str,
    chapters: list[tuple[str, list[str]]],
    spine: list[int] | None = None,
    mimetype: str = "application/epub+zip",
) -> bytes:
    """An EPUB 3 book: one XHTML file per chapter (an h1 and its paragraphs), read in `spine` order
    (chapter indexes; the order given by default), and a navigation document outside the spine."""
    order = spine if spine is not None else list(range(len(chapters)))
    manifest = "".join(
        f'<item id="c{i}" href="text/c{i}.xhtml" media-type="application/xhtml+xml"/>'
        for i in range(len(chapters))
    )
    opf = (
        '<?xml version="1.0" encoding="utf-8"?>'
        '<package xmlns="http://www.idpf.org/2007/opf" version="3.0" unique-identifier="id">'
        f'<metadata xmlns:dc="http://purl.org/dc/elements/1.1/"><dc:title>{title}</dc:title></metadata>'
        f'<manifest><item id="nav" href="nav.xhtml" media-type="application/xhtml+xml" properties="nav"/>{manifest}'
        "</manifest><spine>" + "".join(f'<itemref idref="c{i}"/>' for i in order) + "</spine></package>"
    )
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(zipfile.ZipInfo("mimetype"), mimetype)  # first and stored, as EPUB asks
        zf.writestr(
            "META-INF/container.xml",
            '<?xml version="1.0"?><container version="1.0" xmlns="urn:oasis:names:tc:opendocument:xmlns:container">'
            '<rootfiles><rootfile full-path="OEBPS/content.opf" media-type="application/oebps-package+xml"/>'
            "</rootfiles></container>",
        )
        zf.writestr("OEBPS/content.opf", opf)
        zf.writestr("OEBPS/nav.xhtml", "<html><body><nav><ol><li>Contents</li></ol></nav></body></html>")
        for i, (heading, paragraphs) in enumerate(chapters):
            body = f"<h1>{heading}</h1>" + "".join(f"<p>{p}</p>" for p in paragraphs)
            zf.writestr(
                f"OEBPS/text/c{i}.xhtml",
                f'<?xml version="1.0" encoding="utf-8"?><html xmlns="http://www.w3.org/1999/xhtml"><body>{body}</body></html>',
            )
    return out.getvalue()


def odt_bytes(body: str, doctype: str = "") -> bytes:
    """An OpenDocument text holding `body`, the XML inside <office:text> (prefixes text:, table:),
    after `doctype` if given (a hostile file's entity declarations)."""
    content = (
        f'<?xml version="1.0" encoding="UTF-8"?>{doctype}'
        '<office:document-content xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0"'
        ' xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0"'
        ' xmlns:table="urn:oasis:names:tc:opendocument:xmlns:table:1.0" office:version="1.3">'
        f"<office:body><office:text>{body}</office:text></office:body></office:document-content>"
    )
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(zipfile.ZipInfo("mimetype"), "application/vnd.oasis.opendocument.text")
        zf.writestr("content.xml", content)
        zf.writestr("META-INF/manifest.xml", "<manifest/>")
    return out.getvalue()


def eml_bytes(
    subject: str,
    text: str | None = None,
    html: str | None = None,
    attachments: tuple[str | tuple[str, bytes], ...] = (),
    charset: str = "utf-8",
) -> bytes:
    """An email as a mail client saves it (.eml): a plain and/or HTML body, attachments (a name, with
    a broken PDF's bytes, or a name and bytes)."""
    from email.message import EmailMessage

    message = EmailMessage()
    message["From"] = "Ana Ops <ana@example.org>"
    message["To"] = "team@example.org"
    message["Date"] = "Tue, 24 Nov 2026 09:00:00 +0000"
    message["Subject"] = subject
    if text is not None:
        message.set_content(text, charset=charset, cte="quoted-printable")
    if html is not None:
        (message.add_alternative if text is not None else message.set_content)(html, subtype="html")
    for attachment in attachments:
        name, data = (attachment, b"%PDF-1.4 not read") if isinstance(attachment, str) else attachment
        message.add_attachment(data, maintype="application", subtype="octet-stream", filename=name)
    return message.as_bytes()


def docx_bytes(heading: str, paragraphs: list[str]) -> bytes:
    import docx

    document = docx.Document()
    document.add_heading(heading, level=1)
    for p in paragraphs:
        document.add_paragraph(p)
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def docx_template_bytes() -> bytes:
    """A company template's headings: a style built on Heading 2, and a paragraph whose style says
    nothing but which carries an outline level itself."""
    import docx
    from docx.enum.style import WD_STYLE_TYPE
    from docx.oxml import OxmlElement
    from docx.oxml.ns import qn

    document = docx.Document()
    document.add_heading("Policies", level=1)
    corporate = document.styles.add_style("ACME Section", WD_STYLE_TYPE.PARAGRAPH)
    corporate.base_style = document.styles["Heading 2"]
    document.add_paragraph("Travel", style="ACME Section")
    document.add_paragraph("Book trains for short trips.")
    marked = document.add_paragraph("Meals")
    level = OxmlElement("w:outlineLvl")
    level.set(qn("w:val"), "1")
    marked._p.get_or_add_pPr().append(level)
    document.add_paragraph("Up to 40 EUR a day.")
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def docx_lists_bytes() -> bytes:
    """A procedure in Word's List Number style, a nested bullet, and a second numbered item."""
    import docx

    document = docx.Document()
    document.add_heading("Restore", level=1)
    document.add_paragraph("Stop the workers.", style="List Number")
    document.add_paragraph("Copy the dump back.", style="List Number")
    document.add_paragraph("Check its size first.", style="List Bullet 2")
    document.add_paragraph("Start the workers.", style="List Number")
    document.add_paragraph("Done.")
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def docx_table_bytes(heading: str, rows: list[list[str]]) -> bytes:
    import docx

    document = docx.Document()
    document.add_heading(heading, level=1)
    table = document.add_table(rows=len(rows), cols=len(rows[0]))
    for r, row in enumerate(rows):
        for c, text in enumerate(row):
            table.cell(r, c).text = text
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def pptx_bytes(slides: list[tuple[str, list[str], str]]) -> bytes:
    """Slides of (title, bullet lines, speaker notes); the second slide also holds a 2x2 table."""
    import pptx
    from pptx.util import Inches

    presentation = pptx.Presentation()
    for i, (title, lines, notes) in enumerate(slides):
        slide = presentation.slides.add_slide(presentation.slide_layouts[1])  # title and content
        slide.shapes.title.text = title
        body = slide.placeholders[1].text_frame
        body.text = lines[0]
        for line in lines[1:]:
            body.add_paragraph().text = line
        if notes:
            slide.notes_slide.notes_text_frame.text = notes
        if i == 1:
            table = slide.shapes.add_table(2, 2, Inches(1), Inches(5), Inches(4), Inches(1)).table
            for r, row in enumerate([["city", "cap"], ["Berlin", "160 EUR"]]):
                for c, text in enumerate(row):
                    table.cell(r, c).text = text
    out = io.BytesIO()
    presentation.save(out)
    return out.getvalue()


def pptx_chart_bytes() -> bytes:
    """A slide with a column chart (two series over three quarters) and a picture with alt text."""
    from pptx import Presentation
    from pptx.chart.data import CategoryChartData
    from pptx.enum.chart import XL_CHART_TYPE
    from pptx.util import Inches

    deck = Presentation()
    slide = deck.slides.add_slide(deck.slide_layouts[5])  # title only
    slide.shapes.title.text = "Results"
    data = CategoryChartData()
    data.categories = ["Q1", "Q2", "Q3"]
    data.add_series("Revenue", (120, 135, 150))
    data.add_series("Costs", (90, 95, 97.5))
    frame = slide.shapes.add_chart(
        XL_CHART_TYPE.COLUMN_CLUSTERED, Inches(1), Inches(2), Inches(6), Inches(3), data
    )
    frame.chart.has_title = True
    frame.chart.chart_title.text_frame.text = "Revenue and costs, kEUR"
    png = io.BytesIO()
    from PIL import Image

    Image.new("RGB", (4, 4), "white").save(png, format="PNG")
    picture = slide.shapes.add_picture(io.BytesIO(png.getvalue()), Inches(1), Inches(5.5))
    picture._element.nvPicPr.cNvPr.set("descr", "Org chart: Ops reports to the CTO")
    out = io.BytesIO()
    deck.save(out)
    return out.getvalue()


def xlsx_bytes(sheets: dict[str, list[list]]) -> bytes:
    import openpyxl

    workbook = openpyxl.Workbook()
    workbook.remove(workbook.active)
    for name, rows in sheets.items():
        sheet = workbook.create_sheet(name)
        for row in rows:
            sheet.append(row)
    out = io.BytesIO()
    workbook.save(out)
    return out.getvalue()


def pdf_content_bytes(stream: str) -> bytes:
    """A one-page PDF whose page is the given content stream, with Helvetica as /F1."""
    return _pdf(
        [
            b"<< /Type /Catalog /Pages 2 0 R >>",
            b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R"
            b" /Resources << /Font << /F1 5 0 R >> >> >>",
            b"<< /Length %d >>\nstream\n%s\nendstream" % (len(stream), stream.encode("latin-1")),
            b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
        ]
    )


def _pdf(objects: list[bytes]) -> bytes:
    out = io.BytesIO()
    out.write(b"%PDF-1.4\n")
    offsets = []
    for n, body in enumerate(objects, start=1):
        offsets.append(out.tell())
        out.write(b"%d 0 obj\n" % n + body + b"\nendobj\n")
    xref = out.tell()
    out.write(b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1))
    for off in offsets:
        out.write(b"%010d 00000 n \n" % off)
    out.write(b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref))
    return out.getvalue()


def pdf_decompression_bomb() -> bytes:
    """A well-formed PDF whose page content stream inflates to ~1 GB."""
    import zlib

    compressor = zlib.compressobj(9)
    chunk = b"BT (a) Tj ET\n" * 80_000
    payload = b"".join(compressor.compress(chunk) for _ in range(1000)) + compressor.flush()
    return _pdf(
        [
            b"<< /Type /Catalog /Pages 2 0 R >>",
            b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R >>",
            b"<< /Length %d /Filter /FlateDecode >>\nstream\n" % len(payload) + payload + b"\nendstream",
        ]
    )


def pdf_circular_xref() -> bytes:
    """A PDF whose xref sections point at each other through /Prev forever, with a self-referencing page tree."""
    body = (
        b"%PDF-1.4\n1 0 obj\n<< /Type /Catalog /Pages 2 0 R >>\nendobj\n"
        b"2 0 obj\n<< /Type /Pages /Kids [2 0 R] /Count 1 >>\nendobj\n"
    )
    xref1 = len(body)
    body += b"xref\n0 3\n0000000000 65535 f \n0000000009 00000 n \n0000000058 00000 n \n"
    body += b"trailer\n<< /Size 3 /Root 1 0 R /Prev %d >>\n" % xref1
    body += b"startxref\n%d\n%%%%EOF\n" % xref1
    return body


def docx_zip_bomb(part: str = "word/document.xml", epub: bool = False) -> bytes:
    """A DOCX-shaped ZIP whose document.xml inflates to 1 GB (`part` gives another Office type; with
    `epub`, an EPUB's marks)."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        zf.writestr("[Content_Types].xml", "<Types/>")
        if epub:
            zf.writestr("mimetype", "application/epub+zip")
            zf.writestr("META-INF/container.xml", "<container/>")
        with zf.open(part, "w", force_zip64=True) as member:
            block = b"<w:p>" + b"A" * (1 << 20)
            for _ in range(1024):
                member.write(block)
    return out.getvalue()
