"""Text formats: Markdown (and MDX), HTML, plain text, source code and configuration, CSV, email (.eml)
and EPUB books."""

from __future__ import annotations

import io
import re
import zipfile
from collections.abc import Sequence
from pathlib import Path

from ..tables import markdown_table
from .base import (
    Block,
    Headings,
    ParseError,
    _Budget,
    _clean,
    _decode,
    _open_package,
    _read_bytes,
    _read_text,
    _text_blocks,
    _xml,
)

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
    front_title = None
    front = _FRONT_MATTER.match(text)
    if front and _looks_like_front_matter(front.group(2)):
        # Metadata, not text; its title names the page when no "# heading" does (an H1 replaces it).
        text = text[front.end() :]
        front_title = _FRONT_TITLE.search(front.group(2))
    outline = Headings(blocks, title=front_title.group(2).strip() if front_title else "")
    lines = text.splitlines()
    buffer: list[str] = []
    in_fence = False

    def flush() -> None:
        para = "\n".join(buffer).strip()
        buffer.clear()
        if para:
            blocks.append(Block(_MD_LINK.sub(r"\1", para), headings=list(outline.path)))

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
            outline.set(match_level, _MD_LINK.sub(r"\1", title))
            continue
        if re.fullmatch(r"\s*(=+|-+)\s*", line) and not buffer:
            continue  # the underline of a setext heading
        if not line.strip():
            flush()
        else:
            buffer.append(line)
    flush()
    outline.finish()
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
# ARIA landmarks of a site's furniture: menus, the banner, the footer, the site's search.
_HTML_CHROME_ROLES = {"navigation", "banner", "contentinfo", "search"}
_HIDDEN_STYLE = re.compile(r"display\s*:\s*none|visibility\s*:\s*hidden", re.I)


def parse_html(path: Path, budget: _Budget) -> list[Block]:
    return _html_blocks(_read_text(path, budget, html=True))


def _html_blocks(text: str, headings: Sequence[str] = ()) -> list[Block]:
    """The visible text of an HTML document as blocks, under `headings` and its own h1-h6."""
    from bs4 import BeautifulSoup, Comment, NavigableString, Tag

    soup = BeautifulSoup(text, "lxml")
    blocks: list[Block] = []
    outer = list(headings)
    outline = Headings(blocks, outer)
    buffer: list[str] = []

    def flush() -> None:
        para = re.sub(r"[ \t\r\f\v]+", " ", "".join(buffer)).strip()
        buffer.clear()
        if para:
            blocks.append(Block(para, headings=list(outline.path)))

    def hidden(tag: Tag) -> bool:
        return (
            tag.has_attr("hidden")
            or tag.get("aria-hidden") == "true"
            or bool(_HIDDEN_STYLE.search(tag.get("style") or ""))
        )

    def chrome(tag: Tag) -> bool:
        """A site's own furniture, the same on each of its pages: menus, and a banner, footer or
        sidebar outside the page's content that is mostly links (a chapter's header is read, as is
        an article's own header, footer and notes)."""
        role = (tag.get("role") or "").lower()
        if tag.name == "nav" or role in _HTML_CHROME_ROLES:
            return True
        if tag.name not in ("header", "footer", "aside") or tag.find_parent(("article", "main", "section")):
            return False
        text = len(tag.get_text(strip=True))
        linked = sum(len(a.get_text(strip=True)) for a in tag.find_all("a"))
        return bool(tag.find(("nav", "form"))) or (text > 0 and linked / text >= 0.3)

    def is_data_table(table: Tag) -> bool:
        # Cells holding blocks lay a page out; hidden or skipped content must go through walk().
        return not table.find(_HTML_LAYOUT) and not any(
            d.name in _HTML_SKIP or hidden(d) for d in table.find_all(True)
        )

    def walk(node) -> None:
        for child in node.children:
            if isinstance(child, Comment):
                continue
            if isinstance(child, NavigableString):
                buffer.append(str(child))
                continue
            if not isinstance(child, Tag) or child.name in _HTML_SKIP or hidden(child) or chrome(child):
                continue
            if re.fullmatch(r"h[1-6]", child.name):
                flush()
                level = int(child.name[1])
                title = re.sub(r"\s+", " ", child.get_text(" ")).strip()
                if title:
                    outline.set(level, title)
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
                    blocks.append(Block(text, headings=list(outline.path)))
                continue
            if child.name in _HTML_BLOCK:
                flush()
                walk(child)
                flush()
            else:
                walk(child)

    # A page that marks its main content is read from there alone (a web page's own text, without
    # what surrounds it on every page of its site), unless that holds no text.
    main = soup.find("main") or soup.find(attrs={"role": "main"})
    if main is not None and not hidden(main) and main.get_text(strip=True):
        walk(main)
    else:
        walk(soup.body or soup)
    flush()
    outline.finish()
    if not blocks:
        title = soup.title.get_text(" ").strip() if soup.title else ""
        if title:
            blocks.append(Block(title, headings=outer))
    return blocks


EMAIL_HEADERS = ("From", "To", "Cc", "Date", "Subject")


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
            title = _clean(title_node.text or "") if title_node is not None else ""
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


def _email_text(part) -> str:
    try:
        return part.get_content()
    except LookupError:  # a charset Python does not know: read it as UTF-8, marking what is not
        return (part.get_payload(decode=True) or b"").decode("utf-8", errors="replace")


def read_email(path: Path, budget: _Budget) -> tuple[list[Block], str, list[tuple[str, bytes]]]:
    """An email (.eml): its sender, recipients, date and subject as the first block, then its body
    (the plain text part, else the HTML one) under the subject; with the subject, and the
    attachments' names and bytes (`mail` reads them)."""
    import email
    import email.policy

    data = _read_bytes(path, budget)
    try:
        message = email.message_from_bytes(data, policy=email.policy.default)
        header = [f"{name}: {_clean(str(message[name]))}" for name in EMAIL_HEADERS if message[name]]
        subject = _clean(str(message["Subject"] or "")) or "(no subject)"
        body = message.get_body(preferencelist=("plain", "html"))
        content = _clean(_email_text(body)) if body is not None else ""
        attachments = [
            (_clean(part.get_filename() or ""), part.get_payload(decode=True) or b"")
            for part in message.iter_attachments()
        ]
    except (LookupError, UnicodeError, ValueError, TypeError, AttributeError, IndexError) as exc:
        # An unknown charset, a malformed header or MIME structure: the standard library's kinds.
        raise ParseError(f"the email is malformed ({type(exc).__name__}: {str(exc)[:120]})") from exc
    budget.take(content)
    blocks = [Block(budget.take("\n".join(header)), headings=[subject])] if header else []
    if body is not None and body.get_content_type() == "text/html":
        blocks += _html_blocks(content, [subject])
    else:
        blocks += _text_blocks(content, [subject])
    return blocks, subject, attachments


def parse_text(path: Path, budget: _Budget) -> list[Block]:
    return _text_blocks(_read_text(path, budget))


# A line that opens a definition, in the languages kept beside a team's documents: Python,
# JavaScript and TypeScript, Go, Rust, Java, Kotlin, C#, C and C++ (a type, a name and an opening
# parenthesis, with no semicolon after: not a prototype or a call), Ruby, shell and SQL. Matched on
# the line without its indentation; a definition inside another one nests under it.
_CODE_DEFINITION = re.compile(
    r"(?:export\s+)?(?:default\s+)?(?:async\s+)?(?:def|class|function\*?|interface|enum|type|namespace|module)\s+[\w$]"
    r"|func\s|(?:pub(?:\([\w:]+\))?\s+)?(?:async\s+)?(?:fn|struct|enum|trait|impl|mod)\s"
    r"|(?:(?:public|private|protected|internal|static|final|abstract|sealed|open|data|partial|override)\s+)*"
    r"(?:class|interface|record|object|fun)\s+\w"
    r"|(?!(?:if|for|while|switch|return|else|elif|case|catch|with|assert|await|yield|throw|raise|new|delete|echo)\b)"
    r"[A-Za-z_][\w\s*&:<>,]*[\s*&]~?\w+\s*\([^;]*$"
    r"|\w+\s*\(\)\s*\{"
    r"|(?i:create|alter)\s+(?i:or\s+replace\s+)?(?i:table|view|function|procedure|index|trigger|type)\s",
)
# At the left margin only: a section of INI or TOML, a key of YAML that opens a block.
# (Not Python's block keywords, which a module's top level may hold.)
_CONFIG_SECTION = re.compile(
    r"\[{1,2}[^\]\n]+\]{1,2}\s*$|(?!(?:try|else|finally|default)\s*:)[A-Za-z_][\w.-]*:\s*$"
)
# Comment and decorator lines directly above a definition belong to it.
_CODE_PREAMBLE = ("@", "#", "//", "/*", "*", "--", "///", "%")
# Lines that close (or open) a bracket or block: part of the definition around them.
_CODE_BRACKET = re.compile(r"[}\])]|\{\s*$|\*/|(?:end|fi|done|esac)\b")
CODE_HEADING_MAX = 120
CODE_DEPTH_MAX = 3


def _code_heading(line: str) -> str:
    heading = re.sub(r"\s+(?://|#)\s.*$", "", " ".join(line.split())).rstrip("{:= ").strip()
    return heading if len(heading) <= CODE_HEADING_MAX else heading[: CODE_HEADING_MAX - 1].rstrip() + "…"


def _indent(line: str) -> int:
    return len(line.expandtabs(4)) - len(line.lstrip(" \t").expandtabs(4))


def parse_code(path: Path, budget: _Budget) -> list[Block]:
    """Source code or configuration: paragraphs (runs of lines between blank lines) keep their line
    breaks and indentation, each under the definitions it lies in ("class Ledger > def post(self,
    entry)"; a YAML block's key, an INI section), so that a passage names the function it is from."""
    lines = [line.rstrip() for line in _read_text(path, budget).splitlines()]
    starts: dict[int, tuple[int, str]] = {}  # first line of a definition's part -> (indent, heading)
    held: set[int] = set()  # a definition's lines from its first comment or decorator on
    for i, line in enumerate(lines):
        bare = line.lstrip(" \t")
        indent = _indent(line)
        if not (_CODE_DEFINITION.match(bare) or (indent == 0 and _CONFIG_SECTION.match(bare))):
            continue
        first = i
        while first > 0 and lines[first - 1].lstrip().startswith(_CODE_PREAMBLE) and first - 1 not in starts:
            first -= 1
        starts[first] = (indent, _code_heading(bare))
        held.update(range(first, i + 1))
    blocks: list[Block] = []
    stack: list[tuple[int, str]] = []
    paragraph: list[str] = []
    under: list[str] = []  # the headings of the paragraph, as they were at its first line

    def close() -> None:
        text = "\n".join(paragraph)
        if text.strip():
            blocks.append(Block(text, headings=under[:]))
        paragraph.clear()

    for i, line in enumerate(lines):
        if i in starts:
            close()
            indent, heading = starts[i]
            while stack and stack[-1][0] >= indent:
                stack.pop()
            if len(stack) < CODE_DEPTH_MAX:
                stack.append((indent, heading))
        elif line.strip() and i not in held and not _CODE_BRACKET.match(line.lstrip()):
            # Code back at a definition's own indentation is past its end (a closing bracket is
            # not: it ends a signature or a body that the definition still holds).
            while stack and stack[-1][0] >= _indent(line):
                stack.pop()
        if not line.strip():
            close()
            continue
        if not paragraph:
            under = [h for _, h in stack]
        paragraph.append(line)
    close()
    return blocks


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
