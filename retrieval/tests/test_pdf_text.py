from retrieval.parsing.pdf_text import Heading, below_bookmarks, paragraphs, sized_headings, strip_furniture

WIDE = "The sweep re-queues every document that has sat in processing for too long without a"


def _page(n: int, body: list[str]) -> list[str]:
    return ["ACME Operations Handbook", f"Chapter 2: Workers {n}", *body, f"Page {n} of 4"]


def test_running_headers_footers_and_page_numbers_go():
    """A line at a page's edge repeated on three or more pages (numbers aside) is furniture."""
    bodies = ["Workers restart.", "Queues drain.", "Logs rotate daily.", "Backups run at night."]
    pages = [_page(n, [body]) for n, body in enumerate(bodies, start=1)]
    pages[2].append("17")  # a bare page number below the footer
    assert strip_furniture(pages) == [[body] for body in bodies]


def test_body_lines_repeated_on_few_pages_or_inside_stay():
    """A repeated line inside the page, or at the edge of only two pages, is the document's text."""
    pages = [
        ["Warning: back up first.", "Step one.", "Note", "Step two.", "End of part."],
        ["Warning: back up first.", "Step three.", "Note", "Step four.", "End of part 2."],
        ["Other start.", "Step five.", "Note", "Step six.", "Closing words here."],
    ]
    assert strip_furniture(pages) == pages


def test_wrapped_lines_run_on_and_line_end_hyphens_go():
    """Lines wrapped at the margin become one paragraph; a word hyphenated across them is whole
    again, so keyword search and quotes find it."""
    lines = [
        WIDE,
        "heartbeat, and it logs the infor-",
        "mation it used to decide. Then it writes the document's new state and moves on to",
        "the next one.",
        "A second paragraph begins here.",
    ]
    out = paragraphs([lines])
    assert [p.text for p in out] == [
        f"{WIDE} heartbeat, and it logs the information it used to decide. Then it writes the"
        " document's new state and moves on to the next one.",
        "A second paragraph begins here.",
    ]
    assert all(p.page == 1 for p in out)


def test_wrapped_chinese_lines_run_on_without_a_space():
    """Chinese wraps anywhere, with no space to drop: a space put at each line end would split words
    ("检索" / "增强") for keyword search and show in quotes."""
    lines = [
        "员工每年享有十五天带薪年假，未使用的假期最多可以结转五天到下一年。报销差旅费用时需要检索增",
        "强的审批单和发票。",
        "Next paragraph.",
    ]
    assert [p.text for p in paragraphs([lines])] == [lines[0] + lines[1], "Next paragraph."]


def test_short_lines_keep_their_breaks_and_list_items_stand_apart():
    """Code, table rows and list items are not run together; a contents line is left out."""
    lines = [
        "Run these commands:",
        "make install",
        "make test",
        WIDE,
        "- the first item of a list that follows a long line",
        "Contents . . . . . . . . . . . . . . . . . . . . . . . . . . . . . . . . . . . . . . . . . . . 7",
        "Setup",
    ]
    kept = lines[1:5] + lines[6:]
    assert [p.text for p in paragraphs([lines])] == ["Run these commands:", "\n".join(kept)]


def test_outline_headings_name_their_sections():
    """A bookmark's title printed on its page (with or without its section number) starts its
    section there and is not body text; nested bookmarks make a path; a deeper one ends with its
    parent's next sibling."""
    pages = [
        ["Intro text before any heading."],
        ["Closing words of the intro.", "2.1 Installing", "Install it.", "3 Running", "Run it."],
    ]
    outline = [
        Heading(0, "2 Setup", 2),  # not printed on its page: takes effect with the next printed one
        Heading(1, "Installing", 2),
        Heading(0, "3 Running", 2),
    ]
    out = [(p.text, p.headings) for p in paragraphs(pages, outline)]
    assert out == [
        ("Intro text before any heading.", []),
        ("Closing words of the intro.", []),
        ("Install it.", ["2 Setup", "2.1 Installing"]),
        ("Run it.", ["3 Running"]),
    ]


def test_bookmark_whose_title_is_not_printed_applies_from_its_page():
    pages = [["First page."], ["Second page."]]
    out = paragraphs(pages, [Heading(0, "Appendix", 2)])
    assert [(p.text, p.headings) for p in out] == [("First page.", []), ("Second page.", ["Appendix"])]


def test_only_plausible_page_numbers_go():
    """A bare number past the page count, or a word of roman-numeral letters, is the text's own."""
    pages = [["Invoice total", "1250"], ["Rights", "Civil"], ["Contents", "vii"], ["Appendix", "- 4 -"]]
    assert strip_furniture(pages) == [
        ["Invoice total", "1250"],
        ["Rights", "Civil"],
        ["Contents"],
        ["Appendix"],
    ]


def test_bookmarks_by_chapter_are_completed_by_type_size():
    """A PDF bookmarked by chapter alone: its sections, in a heading size smaller than the
    bookmarked chapters', are nested under them; a larger line (the title) and large type before the
    first bookmark are no section; with no bookmark printed in a heading size, nothing is added."""
    body = [
        "Body one.",
        "Body two.",
        "Body three.",
        "Body text sets the width of the page, as most of its printed lines do.",
    ]
    pages = [
        ["Operations Handbook", "Written by the ops team", "Printed in March.", *body],
        ["1 Workers", "Each worker takes one document.", *body, "Restarts", "Workers restart on failure."],
        [
            "2 Storage",
            "Uploads live on disk.",
            "Backups",
            "Backups run nightly.",
            "Offsite",
            "Weekly.",
            *body,
        ],
    ]
    size = {"Operations Handbook": 24, "Written by the ops team": 14, "1 Workers": 18, "2 Storage": 18}
    size |= {"Restarts": 14, "Backups": 14, "Offsite": 12.5}
    sizes = [{line: size.get(line, 10) for line in lines} for lines in pages]
    outline = [Heading(0, "Workers", 2), Heading(0, "Storage", 3)]
    nested = below_bookmarks(outline, sized_headings(pages, sizes))
    assert [(h.depth, h.title) for h in nested] == [
        (0, "Written by the ops team"),
        (0, "Restarts"),
        (0, "Backups"),
        (1, "Offsite"),
    ]
    out = [(p.text, p.headings) for p in paragraphs(pages, outline, nested)]
    assert [(text, path) for text, path in out if not text.startswith("Body")] == [
        ("Operations Handbook\nWritten by the ops team\nPrinted in March.", []),  # body text
        ("Each worker takes one document.", ["1 Workers"]),
        ("Workers restart on failure.", ["1 Workers", "Restarts"]),
        ("Uploads live on disk.", ["2 Storage"]),
        ("Backups run nightly.", ["2 Storage", "Backups"]),
        ("Weekly.", ["2 Storage", "Backups", "Offsite"]),
    ]
    unprinted = [Heading(0, "Chapter One", 2)]
    assert below_bookmarks(unprinted, sized_headings(pages, sizes)) == []


def test_a_compound_broken_at_its_hyphen_keeps_it():
    """Typesetters break a hyphenated word at its own hyphen; that hyphen stays (else keyword search
    finds neither part), while a word split into syllables is whole again."""
    lines = [
        WIDE,
        "preterm infants were studied with line scan diffusion-",
        "weighted imaging, and the long-",
        "term outcome of T-",
        "cell counts after COVID-",
        "19 was compared with some-",
        "thing else that was infor-",
        "mation only, OP-",
        "TIONAL in a microstruc-",
        "tural way.",
    ]
    (paragraph,) = paragraphs([lines])
    assert paragraph.text == (
        f"{WIDE} preterm infants were studied with line scan diffusion-weighted imaging, and the"
        " long-term outcome of T-cell counts after COVID-19 was compared with something else that was"
        " information only, OPTIONAL in a microstructural way."
    )
