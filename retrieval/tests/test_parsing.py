import io
import os
import shutil
from pathlib import Path

import pytest

from retrieval import parsing
from retrieval.parsing import ParseError, UnsupportedType, detect_kind, parse_isolated

from . import files

LIMITS = {"max_chars": 2_000_000, "timeout_s": 20, "memory_mb": 512}


def write(tmp_path, name: str, data: bytes):
    path = tmp_path / name
    path.write_bytes(data)
    return path


@pytest.mark.parametrize(
    ("name", "data", "kind"),
    [
        ("a.pdf", files.pdf_bytes(["Hello PDF"]), "pdf"),
        ("a.docx", files.docx_bytes("Title", ["Body"]), "docx"),
        ("a.md", b"# Heading\n\nText", "markdown"),
        ("a.html", b"<!doctype html><html><body><p>Hi</p></body></html>", "html"),
        ("a.txt", b"plain words", "text"),
        ("README", b"plain words without extension", "text"),
        ("page", b"<html><body><p>x</p></body></html>", "html"),
        ("prices.csv", b"city,cap\nLondon,220\n", "csv"),
        ("deck.pptx", files.pptx_bytes([("Title", ["Body"], "")]), "pptx"),
        ("sheet.xlsx", files.xlsx_bytes({"S": [["a", "b"]]}), "xlsx"),
        ("photo.png", b"\x89PNG\r\n\x1a\n\x00\x00", "image"),
        ("photo.JPG", b"\xff\xd8\xff\xe0\x00\x10JFIF", "image"),
        ("fax.tif", b"II*\x00\x08\x00", "image"),
        ("scan.tiff", b"MM\x00*\x00\x08", "image"),
        ("shot.webp", b"RIFF\x24\x00\x00\x00WEBPVP8 ", "image"),
        ("cli.py", b"def main():\n    pass\n", "code"),
        ("compose.yml", b"services:\n  web: {}\n", "code"),
        ("feed.xml", b"<?xml version='1.0'?><html><body><p>x</p></body></html>", "code"),
        ("prices.tsv", b"city\tcap\nLondon\t220\n", "csv"),
    ],
)
def test_detect_kind_from_content(tmp_path, name, data, kind):
    """The kind comes from the bytes, checked against the extension."""
    assert detect_kind(write(tmp_path, name, data), name) == kind


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("fake.pdf", b"just text pretending"),
        ("fake.docx", files.pdf_bytes(["x"])),
        ("photo.png", files.pdf_bytes(["x"])),
        ("photo.gif", b"GIF89a\x00\x01binary"),
        ("scan.pdf", b"\x89PNG\r\n\x1a\n...."),
        ("a.txt", b"\x89PNG\r\n\x1a\n\x00\x00binary"),
        ("a.md", b"GIF89a\x00\x01binary"),
        ("a.html", b"no markup at all"),
        ("archive.docx", b"PK\x03\x04garbage"),
        ("nul.txt", b"text with a \x00 NUL"),
        ("prices.csv", files.pdf_bytes(["x"])),
    ],
)
def test_detect_kind_refuses_mismatch_and_unknown(tmp_path, name, data):
    """A mismatched or unknown type is refused (the API answers 415)."""
    with pytest.raises(UnsupportedType):
        detect_kind(write(tmp_path, name, data), name)


PYTHON = b'''"""Ledger entries."""
import decimal
try:
    import numpy
except ImportError:
    numpy = None


# The smallest amount kept.
@dataclass
class Ledger:
    """A team's books."""

    def post(self, entry):  # one entry
        self.entries.append(entry)

        return len(self.entries)

    currency = "EUR"


def total(ledger):
    return sum(
        e.amount for e in ledger.entries
    )
'''


def test_code_keeps_its_lines_under_the_definitions_each_part_is_in(tmp_path):
    """Source code reads as paragraphs that keep line breaks and indentation, each under the
    definitions around it: a method under its class, a decorator and comment with what they
    precede, code back at a definition's indentation out of it, a closing bracket still in it."""
    blocks = parse_isolated(write(tmp_path, "ledger.py", PYTHON), "code", **LIMITS)
    assert [(b.headings, b.text) for b in blocks] == [
        (
            [],
            '"""Ledger entries."""\nimport decimal\ntry:\n    import numpy\nexcept ImportError:\n    numpy = None',
        ),
        (
            ["class Ledger"],
            '# The smallest amount kept.\n@dataclass\nclass Ledger:\n    """A team\'s books."""',
        ),
        (
            ["class Ledger", "def post(self, entry)"],
            "    def post(self, entry):  # one entry\n        self.entries.append(entry)",
        ),
        (["class Ledger", "def post(self, entry)"], "        return len(self.entries)"),
        (["class Ledger"], '    currency = "EUR"'),
        (
            ["def total(ledger)"],
            "def total(ledger):\n    return sum(\n        e.amount for e in ledger.entries\n    )",
        ),
    ]


def test_configuration_sections_and_keys_head_their_parts(tmp_path):
    yaml = b'version: "3"\nservices:\n  web:\n    image: nginx\n\n  db:\n    image: postgres\n'
    blocks = parse_isolated(write(tmp_path, "compose.yaml", yaml), "code", **LIMITS)
    assert [(b.headings, b.text) for b in blocks] == [
        ([], 'version: "3"'),
        (["services"], "services:\n  web:\n    image: nginx"),
        (["services"], "  db:\n    image: postgres"),
    ]
    ini = b"[database]\nhost = db.internal\n\n[cache]\nttl = 60\n"
    blocks = parse_isolated(write(tmp_path, "app.ini", ini), "code", **LIMITS)
    assert [(b.headings, b.text) for b in blocks] == [
        (["[database]"], "[database]\nhost = db.internal"),
        (["[cache]"], "[cache]\nttl = 60"),
    ]


def test_c_and_javascript_functions_head_their_bodies_but_calls_and_prototypes_do_not(tmp_path):
    c = b"int add(int a, int b);\n\nstatic int add(int a, int b)\n{\n    if (a > b) {\n        swap(a, b);\n    }\n\n    return a + b;\n}\n"
    blocks = parse_isolated(write(tmp_path, "add.c", c), "code", **LIMITS)
    assert [b.headings for b in blocks] == [
        [],
        ["static int add(int a, int b)"],
        ["static int add(int a, int b)"],
    ]
    js = b"export async function load(url) {\n  return fetch(url);\n}\n\nload('/a');\n"
    blocks = parse_isolated(write(tmp_path, "load.js", js), "code", **LIMITS)
    assert [b.headings for b in blocks] == [["export async function load(url)"], []]


def test_pdf_pages_are_kept(tmp_path):
    """Each PDF page's text carries its page number."""
    blocks = parse_isolated(
        write(tmp_path, "a.pdf", files.pdf_bytes(["First page text", "Second page text"])), "pdf", **LIMITS
    )
    assert [(b.text, b.page) for b in blocks] == [("First page text", 1), ("Second page text", 2)]


def test_pdf_text_drawn_left_of_the_text_before_it_is_spaced_from_it(tmp_path):
    """A label set at the right margin in its own font and drawn first (texinfo's "[Function]"
    before each function of a GNU manual) ran into the line's first word ("[Function]void
    asn1_octet_der"); a step back of less than an em (kerning, an accent set over its letter)
    still joins."""
    stream = (
        "BT /F1 10 Tf 474 700 Td ([Function]) Tj -384 0 Td /F1 10 Tf (void asn1_octet_der \\(char *str\\)) Tj ET "
        "BT /F1 10 Tf 90 680 Td (Re) Tj 9 0 Td /F1 10 Tf (sume) Tj -3 0 Td /F1 10 Tf (d work.) Tj ET"
    )
    blocks = parse_isolated(write(tmp_path, "ref.pdf", files.pdf_content_bytes(stream)), "pdf", **LIMITS)
    text = " ".join(b.text for b in blocks)
    assert text.startswith("[Function] void asn1_octet_der (char *str)")
    assert text.endswith(" Resumed work.")


def test_pdf_layout_read_as_paragraphs_under_bookmarks(tmp_path):
    """A real PDF's running header and page numbers are dropped, its wrapped lines and hyphenated
    words joined, and its bookmarks give the heading path."""
    wide = "Each worker takes one document at a time and writes its chunks in a single transac-"
    pages = [
        ["Operations Handbook", "1 Workers", wide, "tion, so a crash never leaves half a document.", "1"],
        ["Operations Handbook", "The sweep finds stalled work.", "2 Storage", "Uploads live on disk.", "2"],
        ["Operations Handbook", "Backups run nightly.", "3"],
    ]
    data = files.pdf_bytes(pages, outline=[(0, "1 Workers", 1), (0, "Storage", 2)])
    blocks = parse_isolated(write(tmp_path, "handbook.pdf", data), "pdf", **LIMITS)
    assert [(b.text, b.page, b.headings) for b in blocks] == [
        (wide[:-1] + "tion, so a crash never leaves half a document.", 1, ["1 Workers"]),
        ("The sweep finds stalled work.", 2, ["1 Workers"]),
        ("Uploads live on disk.", 2, ["2 Storage"]),
        ("Backups run nightly.", 3, ["2 Storage"]),
    ]


def test_pdf_without_bookmarks_takes_headings_from_type_size(tmp_path):
    """Short lines set larger than the body text are headings, the largest size outermost."""
    pages = [
        [
            ("Operations Handbook", 20),
            ("Workers", 15),
            "Each worker takes one document at a time.",
            "Logs go",
        ],
        [
            "to standard output.",
            ("Storage", 15),
            "Uploads live on disk.",
            ("Backups", 13.5),
            "Nightly.",
            "Kept.",
        ],
    ]
    blocks = parse_isolated(write(tmp_path, "h.pdf", files.pdf_bytes(pages)), "pdf", **LIMITS)
    assert [(b.text, b.page, b.headings) for b in blocks] == [
        ("Each worker takes one document at a time. Logs go", 1, ["Operations Handbook", "Workers"]),
        ("to standard output.", 2, ["Operations Handbook", "Workers"]),
        ("Uploads live on disk.", 2, ["Operations Handbook", "Storage"]),
        ("Nightly.", 2, ["Operations Handbook", "Storage", "Backups"]),
        ("Kept.", 2, ["Operations Handbook", "Storage", "Backups"]),
    ]


def test_pdf_bookmarked_by_chapter_gets_its_sections_from_type_size(tmp_path):
    """Bookmarks for the chapters alone: the sections, set smaller than the chapters but larger than
    the body, come under their chapter (a manual's function reference, bookmarked by group only)."""
    body = ["Each worker takes one document.", "It writes its chunks at once.", "Logs go out."]
    pages = [
        [("1 Workers", 18), *body, ("Restarts", 14), "A worker restarts after a crash."],
        [("2 Storage", 18), *body, ("Backups", 14), "Backups run nightly."],
    ]
    data = files.pdf_bytes(pages, outline=[(0, "1 Workers", 1), (0, "2 Storage", 2)])
    blocks = parse_isolated(write(tmp_path, "manual.pdf", data), "pdf", **LIMITS)
    under = {b.text: b.headings for b in blocks}
    assert under["A worker restarts after a crash."] == ["1 Workers", "Restarts"]
    assert under["Backups run nightly."] == ["2 Storage", "Backups"]
    assert [b.headings for b in blocks if b.text.startswith("Each worker")] == [["1 Workers"], ["2 Storage"]]


def test_pdf_large_type_that_is_not_a_heading(tmp_path):
    """A sentence or a figure set large is text, and where large lines are most of the lines, size
    marks nothing."""
    quote = [("Uploads are never lost.", 18), ("1,250", 18), "Body text of the page.", "More body text here."]
    blocks = parse_isolated(write(tmp_path, "q.pdf", files.pdf_bytes([quote])), "pdf", **LIMITS)
    assert all(b.headings == [] for b in blocks)
    assert "1,250" in blocks[-1].text
    # Most characters in body type, but most lines large: size marks nothing here.
    poster = [
        [("Open day", 30), ("Friday", 30), ("Bring a friend", 30), "Doors open at nine; talks begin at ten."]
    ]
    blocks = parse_isolated(write(tmp_path, "p.pdf", files.pdf_bytes(poster)), "pdf", **LIMITS)
    assert all(b.headings == [] for b in blocks)


def test_pdf_with_a_broken_outline_still_parses(tmp_path, monkeypatch):
    """Bookmarks only name sections: an outline pypdf cannot read leaves the text without headings."""

    def broken(self):
        raise ValueError("bad outline")

    from pypdf import PdfReader

    monkeypatch.setattr(PdfReader, "outline", property(broken))
    data = files.pdf_bytes([["Operations Handbook", "Body."]], outline=[(0, "Operations Handbook", 1)])
    blocks = parsing.parse(write(tmp_path, "a.pdf", data), "pdf", max_chars=10_000)
    assert [(b.text, b.headings) for b in blocks] == [("Operations Handbook\nBody.", [])]


def test_email_headers_body_and_attachment_names(tmp_path):
    """An .eml gives its sender, recipients, date and subject, then its plain body in paragraphs
    under the subject (decoded from its charset and transfer encoding); attachments are named."""
    data = files.eml_bytes(
        "Wöchentlicher Bericht",
        "Hallo,\n\nder Server läuft seit Montag.\n",
        attachments=(("report.txt", "Alles grün.".encode()),),
        charset="iso-8859-1",
    )
    path = write(tmp_path, "bericht.eml", data)
    assert detect_kind(path, "bericht.eml") == "email"
    blocks = parse_isolated(path, "email", **LIMITS)
    assert [(b.text, b.headings) for b in blocks] == [
        (
            "From: Ana Ops <ana@example.org>\nTo: team@example.org\nDate: Tue, 24 Nov 2026 09:00:00 +0000\n"
            "Subject: Wöchentlicher Bericht",
            ["Wöchentlicher Bericht"],
        ),
        ("Hallo,", ["Wöchentlicher Bericht"]),
        ("der Server läuft seit Montag.", ["Wöchentlicher Bericht"]),
        ("Alles grün.", ["Wöchentlicher Bericht", "Attachment: report.txt"]),
        ("Attachments: report.txt", ["Wöchentlicher Bericht"]),
    ]


def test_email_attachments_are_read_by_their_own_parsers_and_a_bad_one_is_only_named(tmp_path):
    """A mailed report is found, and cited, with the mail that sent it: each attachment of a
    supported type (told by its content) is read under "subject > Attachment: name"; one that is
    hostile, broken or of another type is named with the reason, and the email still reads."""
    data = files.eml_bytes(
        "Quarterly numbers",
        "See the attached report.\n",
        attachments=(
            ("report.pdf", files.pdf_bytes(["Revenue grew by twelve percent."])),
            ("plan.docx", files.docx_bytes("Plan", ["Hire two engineers."])),
            ("loop.pdf", files.pdf_circular_xref()),
            ("logo.gif", b"GIF89a\x01\x00\x01\x00"),
            ("image001.png", _logo()),
            ("error.png", files.photo_bytes([("Disk full on db-2.", 30), ("Restart refused.", 30)])),
            ("fwd.eml", files.eml_bytes("Earlier note", "Costs fell.\n", attachments=("inner.pdf",))),
        ),
    )
    blocks = parse_isolated(write(tmp_path, "numbers.eml", data), "email", **LIMITS, ocr=parsing.Ocr())
    assert [(b.text, b.headings, b.page) for b in blocks[1:-1]] == [
        ("See the attached report.", ["Quarterly numbers"], None),
        ("Revenue grew by twelve percent.", ["Quarterly numbers", "Attachment: report.pdf"], None),
        ("Hire two engineers.", ["Quarterly numbers", "Attachment: plan.docx", "Plan"], None),
        ("Disk full on db-2.", ["Quarterly numbers", "Attachment: error.png"], None),
        ("Restart refused.", ["Quarterly numbers", "Attachment: error.png"], None),
        (
            "From: Ana Ops <ana@example.org>\nTo: team@example.org\nDate: Tue, 24 Nov 2026 09:00:00 +0000\n"
            "Subject: Earlier note",
            ["Quarterly numbers", "Attachment: fwd.eml", "Earlier note"],
            None,
        ),
        ("Costs fell.", ["Quarterly numbers", "Attachment: fwd.eml", "Earlier note"], None),
    ]
    listed = blocks[-1].text
    assert listed.startswith("Attachments: report.pdf, plan.docx, loop.pdf (not read: the PDF is damaged")
    # A signature's small logo is named, not read by OCR.
    assert listed.endswith(", logo.gif (not read: not a supported type), image001.png, error.png, fwd.eml")


def _logo() -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (160, 48), "navy").save(out, "PNG")
    return out.getvalue()


def test_email_with_only_html_reads_its_visible_text(tmp_path):
    html = "<html><body><h1>Outage</h1><p>The queue is <b>drained</b>.</p><script>x()</script></body></html>"
    blocks = parse_isolated(write(tmp_path, "a.eml", files.eml_bytes("Status", html=html)), "email", **LIMITS)
    assert [(b.text, b.headings) for b in blocks[1:]] == [("The queue is drained.", ["Status", "Outage"])]


def test_email_in_an_unknown_charset_is_still_read(tmp_path):
    data = files.eml_bytes("Note", "Plain words.\n", charset="us-ascii").replace(b"us-ascii", b"x-unheard-of")
    blocks = parse_isolated(write(tmp_path, "a.eml", data), "email", **LIMITS)
    assert blocks[1].text == "Plain words."


@pytest.mark.parametrize(
    "data",
    [b"Just some notes.\nNothing like a message.\n", b"Subject: only one field\n\nbody\n"],
)
def test_eml_name_on_a_file_that_is_not_an_email_is_refused(tmp_path, data):
    with pytest.raises(UnsupportedType):
        detect_kind(write(tmp_path, "notes.eml", data), "notes.eml")


def test_mbox_style_export_is_an_email(tmp_path):
    data = b"From - Tue Nov 24 09:00:00 2026\n" + files.eml_bytes("Hi", "Body.\n")
    assert detect_kind(write(tmp_path, "a.eml", data), "a.eml") == "email"


def test_epub_chapters_in_reading_order_under_the_book_title(tmp_path):
    """An EPUB is read in its spine's order (not the manifest's), each chapter's headings under the
    book's title; the navigation document, outside the spine, is not read."""
    data = files.epub_bytes(
        "Field Guide",
        [("Tools", ["Carry a knife."]), ("Maps", ["North is up.", "Scale is 1:25000."])],
        spine=[1, 0],
    )
    path = write(tmp_path, "guide.epub", data)
    assert detect_kind(path, "guide.epub") == "epub"
    blocks = parse_isolated(path, "epub", **LIMITS)
    assert [(b.text, b.headings) for b in blocks] == [
        ("North is up.", ["Field Guide", "Maps"]),
        ("Scale is 1:25000.", ["Field Guide", "Maps"]),
        ("Carry a knife.", ["Field Guide", "Tools"]),
    ]


def test_zip_with_epub_marks_but_another_mimetype_or_damaged_is_refused(tmp_path):
    other = files.epub_bytes("Book", [("One", ["Text."])], mimetype="application/x-other")
    with pytest.raises(UnsupportedType, match="not a Word, PowerPoint, Excel, OpenDocument text or EPUB"):
        detect_kind(write(tmp_path, "book.epub", other), "book.epub")
    damaged = files.epub_bytes("Book", [("One", ["Text."])]).replace(b"epub+zip", b"epub+zap")
    with pytest.raises(UnsupportedType, match="damaged"):
        detect_kind(write(tmp_path, "bad.epub", damaged), "bad.epub")


def test_epub_zip_bomb_fails_unopened(tmp_path):
    path = write(tmp_path, "bomb.epub", files.docx_zip_bomb("OEBPS/c.xhtml", epub=True))
    assert detect_kind(path, "bomb.epub") == "epub"
    with pytest.raises(ParseError, match="zip bomb"):
        parse_isolated(path, "epub", **LIMITS)


def test_odt_headings_paragraphs_lists_and_tables(tmp_path):
    """LibreOffice text: headings by outline level, spaces and line breaks as written, list items,
    a table as Markdown (repeated cells spelled out), footnotes left out of the sentence."""
    body = (
        '<text:h text:outline-level="1">Travel</text:h>'
        '<text:p>Book<text:s text:c="2"/>early.<text:note><text:note-body><text:p>See HR.</text:p>'
        "</text:note-body></text:note> Fly economy.</text:p>"
        '<text:h text:outline-level="2">Caps</text:h>'
        "<text:list><text:list-item><text:p>Hotels<text:line-break/>near the office</text:p></text:list-item></text:list>"
        "<table:table><table:table-row><table:table-cell><text:p>city</text:p></table:table-cell>"
        "<table:table-cell><text:p>cap</text:p></table:table-cell></table:table-row>"
        "<table:table-row><table:table-cell><text:p>Berlin</text:p></table:table-cell>"
        '<table:table-cell table:number-columns-repeated="1"><text:p>160</text:p></table:table-cell>'
        '<table:table-cell table:number-columns-repeated="100000"/></table:table-row></table:table>'
    )
    path = write(tmp_path, "travel.odt", files.odt_bytes(body))
    assert detect_kind(path, "travel.odt") == "odt"
    blocks = parse_isolated(path, "odt", **LIMITS)
    assert [(b.text, b.headings) for b in blocks] == [
        ("Book  early. Fly economy.", ["Travel"]),
        ("Hotels\nnear the office", ["Travel", "Caps"]),
        ("| city | cap |\n|---|---|\n| Berlin | 160 |", ["Travel", "Caps"]),
    ]


def test_odt_entities_are_not_expanded_nor_files_read(tmp_path):
    """An external entity (XXE) or a billion laughs in an Office or EPUB part reads no file and
    expands nothing."""
    doctype = (
        '<!DOCTYPE office:document-content [<!ENTITY xxe SYSTEM "file:///etc/hostname">'
        '<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;"><!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;">]>'
    )
    data = files.odt_bytes("<text:p>Before &xxe; &c; after.</text:p>", doctype=doctype)
    blocks = parse_isolated(write(tmp_path, "x.odt", data), "odt", **LIMITS)
    text = " ".join(b.text for b in blocks)
    assert "Before" in text and "aaaa" not in text
    assert Path("/etc/hostname").read_text().strip() not in text


def test_docx_headings_become_heading_path(tmp_path):
    """DOCX headings give the heading path of the paragraphs below them."""
    blocks = parse_isolated(
        write(tmp_path, "a.docx", files.docx_bytes("Policies", ["Leave is 25 days."])), "docx", **LIMITS
    )
    assert blocks[0].text == "Leave is 25 days."
    assert blocks[0].headings == ["Policies"]


def test_docx_headings_of_a_company_template(tmp_path):
    """A style built on a Heading style, or an outline level on the paragraph, is a heading too."""
    blocks = parse_isolated(write(tmp_path, "t.docx", files.docx_template_bytes()), "docx", **LIMITS)
    assert [(b.text, b.headings) for b in blocks] == [
        ("Book trains for short trips.", ["Policies", "Travel"]),
        ("Up to 40 EUR a day.", ["Policies", "Meals"]),
    ]


OUTLINE = {
    "markdown": b"# Guide\n\n## Install\n\n## Use\n\nRun it.\n\n## FAQ\n",
    "html": b"<html><body><h1>Guide</h1><h2>Install</h2><h2>Use</h2><p>Run it.</p><h2>FAQ</h2></body></html>",
    "odt": files.odt_bytes(
        '<text:h text:outline-level="1">Guide</text:h><text:h text:outline-level="2">Install</text:h>'
        '<text:h text:outline-level="2">Use</text:h><text:p>Run it.</text:p>'
        '<text:h text:outline-level="2">FAQ</text:h>'
    ),
}


@pytest.mark.parametrize("kind", sorted(OUTLINE))
def test_headings_with_no_text_under_them_are_kept(tmp_path, kind):
    """An empty section's heading (nothing under it, not even a deeper heading) is a block of its
    own: its words stay searchable. One with text or subsections lives on in their heading paths."""
    blocks = parse_isolated(write(tmp_path, f"guide.{kind}", OUTLINE[kind]), kind, **LIMITS)
    assert [(b.text, b.headings) for b in blocks] == [
        ("Install", ["Guide"]),
        ("Run it.", ["Guide", "Use"]),
        ("FAQ", ["Guide"]),
    ]


@pytest.mark.parametrize(
    ("name", "data", "expected"),
    [
        (
            "outline.md",
            b"# Roadmap\n\n## Single sign-on\n\n## Audit log\n",
            [("Single sign-on", ["Roadmap"]), ("Audit log", ["Roadmap"])],
        ),
        ("outline.docx", files.docx_bytes("Roadmap", []), [("Roadmap", [])]),
    ],
)
def test_a_document_of_headings_only_is_read(tmp_path, name, data, expected):
    """A file that is only an outline has text: its headings (it failed as "contains no text")."""
    path = write(tmp_path, name, data)
    blocks = parse_isolated(path, detect_kind(path, name), **LIMITS)
    assert [(b.text, b.headings) for b in blocks] == expected


@pytest.mark.parametrize(
    "front",
    [
        "---\ntitle: Deploying\ntags: [ops]\nsidebar_position: 2\n---\n",
        '+++\ntitle = "Deploying"\ndraft = false\n+++\n',
    ],
)
def test_markdown_front_matter_is_metadata_and_its_title_a_heading(tmp_path, front):
    """Docs sites put YAML or TOML front matter first: it is not text (its last key was read as a
    setext heading over the whole page), and its title names the page."""
    body = front + "\nDeploy with make.\n\n## Rollback\n\nRun make rollback.\n"
    blocks = parse_isolated(write(tmp_path, "deploy.md", body.encode()), "markdown", **LIMITS)
    assert [(b.text, b.headings) for b in blocks] == [
        ("Deploy with make.", ["Deploying"]),
        ("Run make rollback.", ["Deploying", "Rollback"]),
    ]


def test_mdx_module_lines_and_component_tags_are_left_out(tmp_path):
    """Docusaurus pages (.mdx): imports and component tags are code; the Markdown between them, and
    HTML tags or prose that merely start alike, stay."""
    body = (
        "---\ntitle: Install\n---\nimport Tabs from '@theme/Tabs';\nimport './tabs.css';\n\n"
        '<Tabs>\n<TabItem value="pip" label="pip">\n\nRun pip install docent.\n\n</TabItem>\n</Tabs>\n\n'
        "import the settings file before you start.\n\n<details>\n"
    )
    path = write(tmp_path, "install.mdx", body.encode())
    assert detect_kind(path, "install.mdx") == "markdown"
    blocks = parse_isolated(path, "markdown", **LIMITS)
    assert [(b.text, b.headings) for b in blocks] == [
        ("Run pip install docent.", ["Install"]),
        ("import the settings file before you start.", ["Install"]),
        ("<details>", ["Install"]),
    ]


def test_markdown_rule_first_is_not_front_matter(tmp_path):
    body = "---\n\n# Guide\n\nText.\n\n---\n\nMore.\n"
    blocks = parse_isolated(write(tmp_path, "g.md", body.encode()), "markdown", **LIMITS)
    assert [(b.text, b.headings) for b in blocks] == [("Text.", ["Guide"]), ("More.", ["Guide"])]


@pytest.mark.parametrize("name", ["index.rst", "guide.adoc", "notes.org", "worker.log"])
def test_light_markup_and_logs_are_read_as_text(tmp_path, name):
    path = write(tmp_path, name, b"Install\n=======\n\nRun the installer.\n")
    assert detect_kind(path, name) == "text"
    assert [b.text for b in parse_isolated(path, "text", **LIMITS)] == [
        "Install\n=======",
        "Run the installer.",
    ]


def test_docx_list_items_keep_their_numbers_and_bullets(tmp_path):
    """Word's list numbers are not in the text itself: they are counted as Word counts them."""
    blocks = parse_isolated(write(tmp_path, "l.docx", files.docx_lists_bytes()), "docx", **LIMITS)
    assert [b.text for b in blocks] == [
        "1. Stop the workers.",
        "2. Copy the dump back.",
        "- Check its size first.",
        "3. Start the workers.",
        "Done.",
    ]


def test_docx_with_numbering_past_reading_still_parses_without_markers(tmp_path):
    import io
    import zipfile

    packed, out = zipfile.ZipFile(io.BytesIO(files.docx_lists_bytes())), io.BytesIO()
    with zipfile.ZipFile(out, "w") as zf:
        for info in packed.infolist():
            data = packed.read(info)
            if info.filename == "word/numbering.xml":
                data = data.replace(b'w:ilvl="0"', b'w:ilvl="x"')
            zf.writestr(info, data)
    blocks = parse_isolated(write(tmp_path, "l.docx", out.getvalue()), "docx", **LIMITS)
    assert [b.text for b in blocks][:2] == ["Stop the workers.", "Copy the dump back."]


def test_pptx_charts_as_tables_and_pictures_by_their_alt_text(tmp_path):
    """A chart's data and a picture's alternative text are what a slide says beyond its text boxes."""
    blocks = parse_isolated(write(tmp_path, "r.pptx", files.pptx_chart_bytes()), "pptx", **LIMITS)
    assert [(b.text, b.headings) for b in blocks] == [
        (
            "Chart: Revenue and costs, kEUR\n\n"
            "|  | Revenue | Costs |\n|---|---|---|\n| Q1 | 120 | 90 |\n| Q2 | 135 | 95 |\n| Q3 | 150 | 97.5 |",
            ["Slide 1: Results"],
        ),
        ("Image: Org chart: Ops reports to the CTO", ["Slide 1: Results"]),
    ]


def test_markdown_structure(tmp_path):
    """ATX and setext headings nest; links keep their text; code fences stay whole."""
    md = b"Intro\n=====\n\nFirst [para](http://x).\n\n## Part\n\n```\ncode\n\nmore code\n```\n\n### Deep\n\nLast.\n"
    blocks = parse_isolated(write(tmp_path, "a.md", md), "markdown", **LIMITS)
    assert [(b.text, b.headings) for b in blocks] == [
        ("First para.", ["Intro"]),
        ("```\ncode\n\nmore code\n```", ["Intro", "Part"]),
        ("Last.", ["Intro", "Part", "Deep"]),
    ]


def test_html_keeps_visible_text_only(tmp_path):
    """Scripts, styles, hidden elements and comments never reach the index."""
    html = b"""<html><head><title>T</title><style>p{}</style></head><body>
    <h1>Guide</h1><p>Visible <b>text</b>.</p><script>alert('x')</script>
    <div hidden>secret one</div><p style="display:none">secret two</p><!-- secret three -->
    <h2>Sub</h2><ul><li>item</li></ul></body></html>"""
    blocks = parse_isolated(write(tmp_path, "a.html", html), "html", **LIMITS)
    assert [(b.text, b.headings) for b in blocks] == [
        ("Visible text.", ["Guide"]),
        ("item", ["Guide", "Sub"]),
    ]
    assert "secret" not in " ".join(b.text for b in blocks)


def test_tables_become_markdown_tables(tmp_path):
    """A data table (HTML or DOCX) is one block in Markdown's pipe format, header first, so chunks cut
    it between rows and keep its column names. A table laying out a page is read as its text."""
    html = b"""<html><body><h1>Travel</h1><table>
    <thead><tr><th>city</th><th>nightly cap</th></tr></thead>
    <tbody><tr><td>London</td><td>220 GBP</td></tr><tr><td>Berlin | Mitte</td><td>160\n EUR</td></tr></tbody>
    </table><table><tr><td><p>Layout cell one.</p></td><td><p>Layout cell two.</p></td></tr></table>
    <table><tr><td>shown</td><td><span hidden>secret</span></td></tr></table></body></html>"""
    blocks = parse_isolated(write(tmp_path, "a.html", html), "html", **LIMITS)
    assert [(b.text, b.headings) for b in blocks] == [
        (
            "| city | nightly cap |\n|---|---|\n| London | 220 GBP |\n| Berlin \\| Mitte | 160 EUR |",
            ["Travel"],
        ),
        ("Layout cell one.", ["Travel"]),
        ("Layout cell two.", ["Travel"]),
        ("shown", ["Travel"]),
    ]
    docx = files.docx_table_bytes("Travel", [["city", "nightly cap"], ["London", "220 GBP"], ["Paris", ""]])
    blocks = parse_isolated(write(tmp_path, "a.docx", docx), "docx", **LIMITS)
    assert [(b.text, b.headings) for b in blocks] == [
        ("| city | nightly cap |\n|---|---|\n| London | 220 GBP |\n| Paris |  |", ["Travel"])
    ]
    one_row = files.docx_table_bytes("Travel", [["city", "nightly cap"]])
    assert [b.text for b in parse_isolated(write(tmp_path, "b.docx", one_row), "docx", **LIMITS)] == [
        "city | nightly cap"
    ]


def test_csv_is_a_table(tmp_path):
    """A CSV file is one Markdown table under its header row, whatever its delimiter."""
    data = b'city;nightly cap\nLondon;220 GBP\n"Berlin; Mitte";160 EUR\n'
    blocks = parse_isolated(write(tmp_path, "caps.csv", data), "csv", **LIMITS)
    assert [b.text for b in blocks] == [
        "| city | nightly cap |\n|---|---|\n| London | 220 GBP |\n| Berlin; Mitte | 160 EUR |"
    ]
    huge_field = b"a,b\n" + b"x" * 200_000 + b",y\n"
    with pytest.raises(ParseError, match="CSV file is malformed"):
        parse_isolated(write(tmp_path, "huge.csv", huge_field), "csv", **LIMITS)


def test_invalid_utf8_fails_readably(tmp_path):
    with pytest.raises(ParseError, match="not valid UTF-8 text .bad byte at offset 3.; save it as UTF-8"):
        parse_isolated(write(tmp_path, "a.txt", b"ok \xff\xfe bad"), "text", **LIMITS)


def test_typographic_ligatures_are_spelled_out_and_soft_hyphens_go(tmp_path):
    """A PDF's "fi" and "fl" ligatures (TeX sets them; pypdf hands them out as U+FB01, U+FB02) are
    read as letters, so that "file" finds "ﬁle" in keyword search and the embedder reads a word."""
    pdf = files.pdf_content_bytes(r"BT /F1 12 Tf 72 700 Td (Each \256le is \257agged for review.) Tj ET")
    assert [b.text for b in parse_isolated(write(tmp_path, "a.pdf", pdf), "pdf", **LIMITS)] == [
        "Each file is flagged for review."
    ]
    # Soft hyphens, invisible hints where a word may break, go as well.
    text = write(tmp_path, "a.txt", "The infor\u00admation desk.".encode())
    assert [b.text for b in parse_isolated(text, "text", **LIMITS)] == ["The information desk."]


def test_utf16_with_byte_order_mark_is_text(tmp_path):
    """Windows' "Unicode" text (Notepad, Excel's Unicode Text, PowerShell 5's `>`) is UTF-16 with a
    byte order mark: every other byte is NUL, yet it is text, not a binary file."""
    words = "Reisekosten: Übernachtung bis 160 €\r\n\r\nSecond paragraph"
    little = write(tmp_path, "notes.txt", words.encode("utf-16"))  # with its BOM, little-endian here
    big = write(tmp_path, "costs.csv", b"\xfe\xff" + "city\tcap\nBerlin\t160\n".encode("utf-16-be"))
    assert detect_kind(little, "notes.txt") == "text"
    assert detect_kind(big, "costs.csv") == "csv"
    assert [b.text for b in parse_isolated(little, "text", **LIMITS)] == [
        "Reisekosten: Übernachtung bis 160 €",
        "Second paragraph",
    ]
    assert [b.text for b in parse_isolated(big, "csv", **LIMITS)] == [
        "| city | cap |\n|---|---|\n| Berlin | 160 |"
    ]


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"\xff\xfe broken", "not valid UTF-16"),  # an odd number of bytes
        (b"\xff\xfe\x00\xd8ab", "not valid UTF-16"),  # a lone surrogate
        (b"\xff\xfe" + "\x01\x02\x03 text".encode("utf-16-le"), "no readable text"),
    ],
)
def test_a_byte_order_mark_before_garbage_fails_readably(tmp_path, data, reason):
    with pytest.raises(ParseError, match=reason):
        parse_isolated(write(tmp_path, "a.txt", data), "text", **LIMITS)


def test_html_in_its_declared_charset(tmp_path):
    """Word's "Save as Web Page" writes windows-1252 and says so in a <meta>; undeclared or
    misdeclared bytes still fail as invalid UTF-8."""
    body = b"<body><p>\x93Quoted\x94 caf\xe9</p></body></html>"
    declared = b'<html><head><meta http-equiv=Content-Type content="text/html; charset=windows-1252">' + body
    blocks = parse_isolated(write(tmp_path, "a.html", declared), "html", **LIMITS)
    assert [b.text for b in blocks] == ["\u201cQuoted\u201d caf\u00e9"]
    for head in (b"<html><head>", b'<html><head><meta charset="utf-8">'):
        with pytest.raises(ParseError, match="not valid UTF-8"):
            parse_isolated(write(tmp_path, "b.html", head + body), "html", **LIMITS)


def test_nul_bytes_fail_readably(tmp_path):
    with pytest.raises(ParseError, match="NUL"):
        parse_isolated(write(tmp_path, "a.txt", b"text\x00more"), "text", **LIMITS)


@pytest.mark.slow
def test_pdf_decompression_bomb_fails_and_parser_recovers(tmp_path):
    """A 1 GB inflating stream fails its document; the next document still parses."""
    bomb = write(tmp_path, "bomb.pdf", files.pdf_decompression_bomb())
    with pytest.raises(ParseError):
        parse_isolated(bomb, "pdf", max_chars=2_000_000, timeout_s=20, memory_mb=384)
    ok = write(tmp_path, "ok.txt", b"still fine")
    assert (
        parse_isolated(ok, "text", max_chars=2_000_000, timeout_s=20, memory_mb=384)[0].text == "still fine"
    )


def test_pdf_circular_xref_fails(tmp_path):
    with pytest.raises(ParseError):
        parse_isolated(write(tmp_path, "loop.pdf", files.pdf_circular_xref()), "pdf", **LIMITS)


@pytest.mark.parametrize(
    ("name", "part"),
    [
        ("bomb.docx", "word/document.xml"),
        ("bomb.pptx", "ppt/presentation.xml"),
        ("bomb.xlsx", "xl/workbook.xml"),
    ],
)
def test_office_zip_bomb_is_not_opened(tmp_path, name, part):
    path = write(tmp_path, name, files.docx_zip_bomb(part))
    kind = detect_kind(path, name)
    with pytest.raises(ParseError, match="zip bomb"):
        parse_isolated(path, kind, **LIMITS)


def test_pptx_slides_are_sections_named_by_number_and_title(tmp_path):
    data = files.pptx_bytes(
        [
            ("Roadmap", ["Launch in March.", "Pilot with two teams."], "Mention the budget."),
            ("Travel", ["Caps per city:"], ""),
        ]
    )
    blocks = parse_isolated(write(tmp_path, "stored-as-4a1b", data), "pptx", **LIMITS)
    assert [(b.page, b.headings, b.text) for b in blocks] == [
        (None, ["Slide 1: Roadmap"], "Launch in March.\nPilot with two teams."),
        (None, ["Slide 1: Roadmap", "Notes"], "Mention the budget."),
        (None, ["Slide 2: Travel"], "Caps per city:"),
        (None, ["Slide 2: Travel"], "| city | cap |\n|---|---|\n| Berlin | 160 EUR |"),
    ]


def test_pptx_reads_text_in_groups_in_reading_order(tmp_path):
    """Shapes are read top to bottom, then left to right; a group's shapes where the group stands."""
    import io

    import pptx
    from pptx.enum.shapes import MSO_SHAPE
    from pptx.util import Inches

    presentation = pptx.Presentation()
    slide = presentation.slides.add_slide(presentation.slide_layouts[6])  # blank: no title
    slide.shapes.add_textbox(Inches(1), Inches(4), Inches(3), Inches(1)).text_frame.text = "Last, lowest."
    group = slide.shapes.add_group_shape()
    group.shapes.add_shape(
        MSO_SHAPE.RECTANGLE, Inches(5), Inches(2), Inches(1), Inches(1)
    ).text = "Grouped, right."
    group.shapes.add_shape(
        MSO_SHAPE.RECTANGLE, Inches(1), Inches(2), Inches(1), Inches(1)
    ).text = "Grouped, left."
    slide.shapes.add_textbox(Inches(1), Inches(1), Inches(3), Inches(1)).text_frame.text = "First, highest."
    out = io.BytesIO()
    presentation.save(out)
    blocks = parse_isolated(write(tmp_path, "stored-as-77aa", out.getvalue()), "pptx", **LIMITS)
    assert [(b.headings, b.text) for b in blocks] == [
        (["Slide 1"], "First, highest."),
        (["Slide 1"], "Grouped, left."),
        (["Slide 1"], "Grouped, right."),
        (["Slide 1"], "Last, lowest."),
    ]


def test_xlsx_sheets_are_tables_under_their_names(tmp_path):
    import datetime

    data = files.xlsx_bytes(
        {
            "Budget 2026": [
                ["team", "budget", "from"],
                ["Ops", 120000, datetime.date(2026, 1, 1)],
                [None, None],
            ],
            "Empty": [],
            "Rates": [[None, None, "city", "cap"], [], [None, None, "Berlin", 160.5]],
        }
    )
    blocks = parse_isolated(write(tmp_path, "stored-as-9f2c", data), "xlsx", **LIMITS)
    assert [(b.headings, b.text) for b in blocks] == [
        (["Budget 2026"], "| team | budget | from |\n|---|---|---|\n| Ops | 120000 | 2026-01-01 |"),
        (["Rates"], "| city | cap |\n|---|---|\n| Berlin | 160.5 |"),
    ]


def test_xlsx_reads_only_the_cells_a_sheet_has(tmp_path):
    """A formatted but empty cell far out (exporters leave them) claims a 300,000 x 2,000 sheet;
    only the cells written are read, so the sheet parses at once instead of timing out."""
    import openpyxl

    workbook = openpyxl.Workbook()
    sheet = workbook.active
    sheet.title = "Caps"
    sheet.append(["city", "cap"])
    sheet.append(["Berlin", 160])
    sheet.cell(row=300_000, column=2_000).number_format = "0.00"
    path = tmp_path / "sparse.xlsx"
    workbook.save(path)
    blocks = parse_isolated(path, "xlsx", **{**LIMITS, "timeout_s": 10})
    assert [(b.headings, b.text) for b in blocks] == [
        (["Caps"], "| city | cap |\n|---|---|\n| Berlin | 160 |")
    ]


@pytest.mark.slow
def test_huge_single_line_fails_fast(tmp_path):
    """A 200 MB single line is refused by the character budget, not by exhausting memory."""
    path = tmp_path / "line.txt"
    with path.open("wb") as fh:
        for _ in range(200):
            fh.write(b"a" * (1 << 20))
    with pytest.raises(ParseError, match="more than"):
        parse_isolated(path, "text", **LIMITS)


def test_hung_parser_is_stopped(tmp_path, monkeypatch):
    """A parse that never returns is killed at the time limit and the next call gets a fresh child."""
    slow = parsing.IsolatedParser(timeout_s=1, memory_mb=256)
    fifo = tmp_path / "never.txt"
    import os

    os.mkfifo(fifo)  # reading a FIFO with no writer blocks forever
    with pytest.raises(ParseError, match="longer than 1 s"):
        slow.parse(fifo, "text", max_chars=100)
    ok = write(tmp_path, "ok.txt", b"alive")
    assert slow.parse(ok, "text", max_chars=100)[0].text == "alive"
    slow.close()


SCAN = [
    [
        ("Quarterly Report", 64),
        ("Revenue grew by twelve percent in the northern region,", 34),
        ("while costs held steady through the second half.", 34),
    ],
    [("The warehouse in Leeds closes every Friday at noon.", 34)],
]


def test_a_scanned_pdf_is_read_by_ocr_with_headings_from_line_height(tmp_path):
    """Each scanned page is read by Tesseract, page by page (the progress says so); the large line
    is the heading, as type size makes one in a typeset PDF."""
    told = []
    blocks = parse_isolated(
        write(tmp_path, "scan.pdf", files.scanned_pdf_bytes(SCAN)),
        "pdf",
        **LIMITS,
        ocr=parsing.Ocr(),
        progress=lambda done, of: told.append((done, of)),
    )
    assert told == [(1, 2), (2, 2)]
    assert [(b.page, b.headings) for b in blocks] == [(1, ["Quarterly Report"]), (2, ["Quarterly Report"])]
    assert "Revenue grew by twelve percent in the northern region" in blocks[0].text
    assert "The warehouse in Leeds closes every Friday at noon." in blocks[1].text


def test_a_pdf_with_typeset_pages_and_scans_reads_both_and_without_ocr_keeps_the_typeset(tmp_path):
    path = write(tmp_path, "mixed.pdf", files.scanned_pdf_bytes(SCAN[1:], text_page="Typeset cover page."))
    read = parse_isolated(path, "pdf", **LIMITS, ocr=parsing.Ocr())
    assert [(b.page, b.text) for b in read] == [
        (1, "Typeset cover page."),
        (2, "The warehouse in Leeds closes every Friday at noon."),
    ]
    assert [(b.page, b.text) for b in parse_isolated(path, "pdf", **LIMITS)] == [(1, "Typeset cover page.")]


def test_a_scan_that_cannot_be_read_fails_saying_why(tmp_path, monkeypatch):
    path = write(tmp_path, "scan.pdf", files.scanned_pdf_bytes(SCAN))
    with pytest.raises(ParseError, match=r"OCR is turned off \(DOCENT_OCR\)"):
        parse_isolated(path, "pdf", **LIMITS)
    with pytest.raises(
        ParseError, match=r"without text: 2 pages, and OCR reads at most 1 .*DOCENT_OCR_MAX_PAGES"
    ):
        parse_isolated(path, "pdf", **LIMITS, ocr=parsing.Ocr(max_pages=1))
    with pytest.raises(ParseError, match=r"OCR language 'xyz' is not installed"):
        parse_isolated(path, "pdf", **LIMITS, ocr=parsing.Ocr(languages="xyz"))
    monkeypatch.setattr(parsing.ocr.shutil, "which", lambda name: None)  # in this process: no Tesseract
    with pytest.raises(ParseError, match=r"install Tesseract .*apt-get install tesseract-ocr"):
        parsing.parse(path, "pdf", max_chars=10_000, ocr=parsing.Ocr())


def test_scans_are_read_in_the_collections_language_when_tesseract_has_it(monkeypatch, settings):
    """A German collection's scans are read as "deu+eng" where Tesseract has German, as configured
    where it has not (never failing for it); a language already configured is not named twice."""
    from retrieval import services

    monkeypatch.setattr(parsing.ocr, "installed_languages", lambda: frozenset({"eng", "osd", "deu"}))
    settings.DOCENT_OCR_LANGUAGES = "eng"
    assert services._ocr("german").languages == "deu+eng"
    assert services._ocr("english").languages == "eng"
    assert services._ocr("simple").languages == "eng"
    assert services._ocr("french").languages == "eng"  # no French data installed
    settings.DOCENT_OCR_LANGUAGES = "eng+deu"
    assert services._ocr("german").languages == "eng+deu"


def test_ingestion_reads_a_documents_scans_in_its_collections_language(
    monkeypatch, settings, team_a, make_collection
):
    from retrieval import services

    from .helpers import upload

    monkeypatch.setattr(parsing.ocr, "installed_languages", lambda: frozenset({"eng", "deu"}))
    settings.DOCENT_OCR_LANGUAGES = "eng"
    asked = []

    def parse(path, kind, **kwargs):
        asked.append(kwargs["ocr"].languages)
        return [parsing.Block("Die Straße ist lang.")]

    monkeypatch.setattr(services, "parse_isolated", parse)
    german = services.collection_create(team=team_a, name="Archiv", language="german")
    english = make_collection(team_a, "archive")
    documents = [upload(c, "scan.txt", b"x", enqueue=False)[0] for c in (german, english)]
    services.documents_ingest(document_ids=[d.id for d in documents])
    assert sorted(asked) == ["deu+eng", "eng"]


def test_tesseracts_languages_are_read_from_it():
    parsing.ocr.installed_languages.cache_clear()
    found = parsing.ocr.installed_languages()
    assert ("eng" in found) is parsing.ocr.available()
    assert not any(" " in name or name.startswith("List") for name in found)


def test_ocr_size_classes_join_measured_heights_of_one_type_size():
    """Tesseract's measured sizes vary by a few percent; a subheading 1.2 times the body is its own."""
    classes = parsing.ocr.same_sizes([9.1, 9.4, 9.6, 9.8, 11.5, 11.8, 13.9, 14.6, 15.1, 0.0])
    assert {classes[s] for s in (9.1, 9.4, 9.6, 9.8)} == {9.5}
    assert {classes[s] for s in (11.5, 11.8)} == {12.0}
    assert {classes[s] for s in (13.9, 14.6, 15.1)} == {14.5}
    assert 0.0 not in classes


def test_a_long_scan_may_take_longer_than_the_timeout_while_each_page_is_read_in_time(tmp_path, monkeypatch):
    """The parser's time limit bounds the time between two pages read, not the whole scan; a page
    over it still stops the parse. (A slow Tesseract: a script that sleeps, then answers one word,
    the image's checksum.)"""
    slow = tmp_path / "bin" / "tesseract"
    slow.parent.mkdir()

    def sleeping(seconds: float) -> None:
        slow.write_text(
            f"#!/bin/sh\nword=$(md5sum | cut -c1-8)\nsleep {seconds}\n"
            "echo \"<span class='ocr_line' title='bbox 0 0 9 9; x_size 30'>"
            "<span class='ocrx_word'>$word.</span></span>\"\n"
        )
        slow.chmod(0o755)

    monkeypatch.setenv("PATH", f"{slow.parent}:{os.environ['PATH']}")
    path = write(tmp_path, "scan.pdf", files.scanned_pdf_bytes([[(f"Line {n}.", 34)] for n in range(3)]))
    limits = {"max_chars": 10_000, "memory_mb": 512, "ocr": parsing.Ocr()}
    sleeping(0.9)  # 2.7 s in all, under 1.5 s a page
    blocks = parse_isolated(path, "pdf", timeout_s=1.5, **limits)
    assert [b.page for b in blocks] == [1, 2, 3] and all(len(b.text) == 9 for b in blocks)
    sleeping(2)
    with pytest.raises(ParseError, match="longer than 1.6 s"):
        parse_isolated(path, "pdf", timeout_s=1.6, **limits)


def test_a_jbig2_scan_is_read_and_without_jbig2dec_fails_saying_what_to_install(tmp_path, monkeypatch):
    """Archive scanners save 1-bit pages as JBIG2, which pypdf decodes with the jbig2dec program
    (writing a temporary file, which the parser child may)."""
    path = write(tmp_path, "scan.pdf", files.jbig2_scan_pdf_bytes("The JBIG2 scan of the tenancy agreement."))
    blocks = parse_isolated(path, "pdf", **LIMITS, ocr=parsing.Ocr())
    assert [b.text for b in blocks] == ["The JBIG2 scan of the tenancy agreement."]
    only = tmp_path / "bin"  # Tesseract on PATH, jbig2dec not
    only.mkdir()
    (only / "tesseract").symlink_to(shutil.which("tesseract"))
    monkeypatch.setenv("PATH", str(only))
    with pytest.raises(ParseError, match=r"scanned pages could not be read: .*apt-get install jbig2dec"):
        parse_isolated(path, "pdf", max_chars=10_000, timeout_s=21, memory_mb=512, ocr=parsing.Ocr())


def test_a_scan_whose_image_inflates_to_400_megapixels_fails_and_the_parser_goes_on(tmp_path):
    bomb = write(tmp_path, "bomb.pdf", files.pdf_image_bomb())
    with pytest.raises(ParseError, match="could not be read: a page image inflates past the size"):
        parse_isolated(bomb, "pdf", **LIMITS, ocr=parsing.Ocr())
    scan = write(tmp_path, "scan.pdf", files.scanned_pdf_bytes(SCAN[1:]))
    assert parse_isolated(scan, "pdf", **LIMITS, ocr=parsing.Ocr())[0].text.startswith("The warehouse")


@pytest.mark.parametrize("turn", [90, 180])
def test_a_page_scanned_sideways_or_upside_down_is_read(tmp_path, turn):
    """Tesseract finds the page's orientation from its text (a few lines of it)."""
    lines = [
        "The warehouse in Leeds closes every Friday at noon.",
        "Deliveries arriving after that wait until Monday morning.",
        "Drivers sign the gate book and leave the keys at the desk.",
        "Pallets are stacked no higher than two metres in aisle four.",
    ]
    path = write(tmp_path, "scan.pdf", files.scanned_pdf_bytes([[(line, 34) for line in lines]], turn=turn))
    blocks = parse_isolated(path, "pdf", **LIMITS, ocr=parsing.Ocr())
    assert " ".join(b.text for b in blocks).split() == " ".join(lines).split()


def test_an_image_of_text_is_read_by_ocr_with_its_heading(tmp_path):
    """A photo or screenshot of a printed notice: one passage per paragraph, the large line its
    heading, no page number (a photo has none)."""
    lines = [
        "Leave by the east stairs and meet in the car park.",
        "Wardens in yellow vests count everyone on their list.",
        "Nobody goes back in until the all clear is given.",
    ]
    photo = files.photo_bytes([("Fire Drill", 60), *((line, 30) for line in lines)])
    blocks = parse_isolated(write(tmp_path, "notice.png", photo), "image", **LIMITS, ocr=parsing.Ocr())
    assert [(b.text, b.page, b.headings) for b in blocks] == [(" ".join(lines), None, ["Fire Drill"])]


def test_a_multi_page_tiff_is_read_page_by_page(tmp_path):
    """Scanners and fax servers save a document as one TIFF of several pages."""
    from PIL import Image

    pages = [
        Image.open(io.BytesIO(files.photo_bytes([(line, 30)]))).convert("1")
        for line in ("The lease runs for three years.", "Rent is due on the first of the month.")
    ]
    tiff = io.BytesIO()
    pages[0].save(tiff, "TIFF", save_all=True, append_images=pages[1:], compression="group4")
    told = []
    blocks = parse_isolated(
        write(tmp_path, "fax.tif", tiff.getvalue()),
        "image",
        **LIMITS,
        ocr=parsing.Ocr(),
        progress=lambda done, of: told.append((done, of)),
    )
    assert [(b.page, b.text) for b in blocks] == [
        (1, "The lease runs for three years."),
        (2, "Rent is due on the first of the month."),
    ]
    assert told == [(1, 2), (2, 2)]


def test_an_image_that_cannot_be_read_fails_saying_why(tmp_path):
    photo = write(tmp_path, "notice.png", files.photo_bytes([("Fire Drill", 60)]))
    with pytest.raises(ParseError, match=r"the file is an image, and OCR is turned off \(DOCENT_OCR\)"):
        parse_isolated(photo, "image", **LIMITS)
    blank = write(tmp_path, "blank.jpg", files.photo_bytes([], fmt="JPEG"))
    with pytest.raises(ParseError, match="no text was found in the image"):
        parse_isolated(blank, "image", **LIMITS, ocr=parsing.Ocr())
    cut = write(tmp_path, "cut.png", files.photo_bytes([("Fire Drill", 60)])[:300])
    with pytest.raises(ParseError, match="the image is damaged"):
        parse_isolated(cut, "image", **LIMITS, ocr=parsing.Ocr())


def test_an_image_declaring_ten_gigapixels_is_refused_unread(tmp_path):
    """A PNG header claiming 100,000 x 100,000 pixels: Pillow refuses it before decoding anything."""
    import struct
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 0, 0, 0, 0)
    data = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(bytes(100)))
    with pytest.raises(ParseError, match="the image is too large to read"):
        parse_isolated(write(tmp_path, "bomb.png", data), "image", **LIMITS, ocr=parsing.Ocr())


def test_a_word_file_of_scanned_pages_is_read_by_ocr(tmp_path):
    """Scanned pages pasted into Word, one picture a page, and no text: the pictures are read."""
    import docx
    from docx.shared import Inches

    document = docx.Document()
    for line in ("The lease runs for three years.", "Rent is due on the first of the month."):
        document.add_picture(
            io.BytesIO(files.photo_bytes([(line, 30), ("Signed by both parties.", 30)])), Inches(6)
        )
    out = io.BytesIO()
    document.save(out)
    path = write(tmp_path, "scans.docx", out.getvalue())
    blocks = parse_isolated(path, "docx", **LIMITS, ocr=parsing.Ocr())
    assert [b.text for b in blocks] == [
        "The lease runs for three years. Signed by both parties.",
        "Rent is due on the first of the month. Signed by both parties.",
    ]
    with pytest.raises(ParseError, match=r"the DOCX holds only pictures, no text, and OCR is turned off"):
        parse_isolated(path, "docx", **LIMITS)


def test_a_deck_of_pictures_is_read_by_ocr_slide_by_slide(tmp_path):
    """Handouts scanned into a deck, or slides exported as images: no text, one picture a slide;
    each slide's picture is read, under its slide, in place of the alt text."""
    import pptx
    from pptx.util import Inches

    deck = pptx.Presentation()
    for line in ("Revenue grew in the north.", "Costs fell in the second half."):
        slide = deck.slides.add_slide(deck.slide_layouts[6])  # blank
        picture = files.photo_bytes([(line, 30), ("Figures are unaudited.", 30)])
        slide.shapes.add_picture(io.BytesIO(picture), Inches(0.5), Inches(0.5), width=Inches(9))
    out = io.BytesIO()
    deck.save(out)
    path = write(tmp_path, "handouts.pptx", out.getvalue())
    blocks = parse_isolated(path, "pptx", **LIMITS, ocr=parsing.Ocr())
    assert [(b.text, b.headings) for b in blocks] == [
        ("Revenue grew in the north. Figures are unaudited.", ["Slide 1"]),
        ("Costs fell in the second half. Figures are unaudited.", ["Slide 2"]),
    ]
    # Without OCR the deck keeps what it had: its pictures' alt text (here their file names).
    assert [b.text for b in parse_isolated(path, "pptx", **LIMITS)] == ["Image: image.png"] * 2


def test_an_attachment_past_the_documents_text_limit_fails_the_whole_email(tmp_path):
    """The text limit is the email's, attachments included: one attachment cannot be skipped to
    get around it."""
    data = files.eml_bytes("Dump", "See attached.\n", attachments=(("dump.txt", b"word " * 2_500),))
    with pytest.raises(ParseError, match="more than 10,000 characters of text"):
        parse_isolated(
            write(tmp_path, "dump.eml", data), "email", max_chars=10_000, timeout_s=20, memory_mb=512
        )


def test_a_web_pages_menus_banner_and_footer_are_left_out_and_its_main_content_read(tmp_path):
    """A site's furniture repeats on each of its pages and would be found for every question about
    it: menus, and a banner, footer or sidebar of links outside the content, are not read; a page
    that marks its main content is read from there."""
    site = (
        "<html><head><title>Leave</title></head><body>"
        "<header><a href='/'>Acme</a> <a href='/hr'>HR</a> <a href='/it'>IT</a></header>"
        "<nav><ul><li><a href='/a'>Benefits overview and enrolment</a></li></ul></nav>"
        "<div role='navigation'>Skip to: <a href='#x'>search</a></div>"
        "<article><header><h1>Annual leave</h1><p>Updated in May</p></header>"
        "<p>Employees get 25 days of leave.</p><footer>Written by People Ops</footer></article>"
        "<aside><a href='/1'>Related: sick leave</a> <a href='/2'>Related: parental leave</a></aside>"
        "<footer>© Acme · <a href='/privacy'>Privacy</a> · <a href='/terms'>Terms</a></footer>"
        "</body></html>"
    )
    text = " ".join(b.text for b in _parse_html(tmp_path, site))
    assert "Employees get 25 days of leave." in text
    assert "Updated in May" in text and "Written by People Ops" in text
    for chrome in ("Acme", "Benefits overview", "Skip to", "Related", "Privacy"):
        assert chrome not in text, chrome

    blocks = _parse_html(
        tmp_path,
        "<body><div class='top'>Menu Home Blog</div><main><h1>Setup</h1><p>Install it.</p></main>"
        "<div class='bottom'>Subscribe to our newsletter</div></body>",
    )
    assert [(b.text, b.headings) for b in blocks] == [("Install it.", ["Setup"])]
    # A chapter's header, no menu at all, stays; an empty <main> (filled by scripts) reads the body.
    blocks = _parse_html(tmp_path, "<body><header><h1>Chapter 1</h1></header><p>It was dark.</p></body>")
    assert [(b.text, b.headings) for b in blocks] == [("It was dark.", ["Chapter 1"])]
    blocks = _parse_html(tmp_path, "<body><main></main><p>Rendered elsewhere.</p></body>")
    assert [b.text for b in blocks] == ["Rendered elsewhere."]


def _parse_html(tmp_path, html: str):
    from retrieval.parsing.base import _Budget
    from retrieval.parsing.markup import parse_html

    path = tmp_path / "page.html"
    path.write_text(html, encoding="utf-8")
    return parse_html(path, _Budget(10_000_000))
