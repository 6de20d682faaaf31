"""What a file is, from its content, checked against its name (415 when they disagree)."""

from __future__ import annotations

import re
import zipfile
import zlib
from pathlib import Path

from .base import _UTF16_BOMS, SNIFF_BYTES, UnsupportedType

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
    # A photo or scan of a printed page, read by OCR; left out of folder uploads (below).
    ".png": "image",
    ".jpg": "image",
    ".jpeg": "image",
    ".tif": "image",
    ".tiff": "image",
    ".webp": "image",
}
# Source code and configuration, read as text that keeps its lines and indentation, each part
# under the definition it belongs to (`markup.parse_code`). Shown as plain text, never run.
CODE_EXTENSIONS = (
    ".py",
    ".pyi",
    ".js",
    ".mjs",
    ".cjs",
    ".jsx",
    ".ts",
    ".tsx",
    ".vue",
    ".svelte",
    ".go",
    ".rs",
    ".java",
    ".kt",
    ".kts",
    ".scala",
    ".groovy",
    ".c",
    ".h",
    ".cc",
    ".cpp",
    ".cxx",
    ".hpp",
    ".hh",
    ".cs",
    ".fs",
    ".swift",
    ".m",
    ".mm",
    ".rb",
    ".php",
    ".pl",
    ".pm",
    ".lua",
    ".r",
    ".jl",
    ".dart",
    ".ex",
    ".exs",
    ".erl",
    ".hs",
    ".clj",
    ".ml",
    ".sh",
    ".bash",
    ".zsh",
    ".fish",
    ".ps1",
    ".bat",
    ".sql",
    ".proto",
    ".graphql",
    ".gql",
    ".css",
    ".scss",
    ".less",
    ".tf",
    ".hcl",
    ".nix",
    ".cmake",
    ".gradle",
    ".json",
    ".yaml",
    ".yml",
    ".toml",
    ".ini",
    ".cfg",
    ".conf",
    ".properties",
    ".xml",
    ".xsd",
    ".wsdl",
    ".plist",
)
EXTENSIONS.update(dict.fromkeys(CODE_EXTENSIONS, "code"))
EXTENSIONS[".tsv"] = "csv"

# What a folder upload takes: not its images, which in a folder are mostly diagrams, screenshots and
# icons (each would be read by OCR, and most would fail for holding no text).
FOLDER_EXTENSIONS = {ext: kind for ext, kind in EXTENSIONS.items() if kind != "image"}


# What the refusals name; `EXTENSIONS` above is the full list (light markup reads as text).
FOLDER_NAMES = (
    "PDF, DOCX, ODT, PPTX, XLSX, EPUB, Markdown, HTML, CSV, email (EML), source code, configuration or text"
)
SUPPORTED_NAMES = f"{FOLDER_NAMES.replace(' or text', ', text')} or images of text (PNG, JPEG, TIFF, WebP)"
# Folders a folder upload leaves out, with hidden ones (".git", ".venv") and hidden files (".env"):
# installed dependencies and caches, not a team's documents.
FOLDER_SKIPPED = ("node_modules", "__pycache__", "site-packages", "venv", "bower_components")


def folder_skips(path: str) -> bool:
    """Whether a folder upload leaves out the file at this path (relative, "/"-separated)."""
    return any(part.startswith(".") or part in FOLDER_SKIPPED for part in path.split("/"))


_IMAGE_MAGIC = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"II*\x00", b"MM\x00*")
_OFFICE_PARTS = {"word/document.xml": "docx", "ppt/presentation.xml": "pptx", "xl/workbook.xml": "xlsx"}
# EPUB and OpenDocument name their type in a first, stored file called `mimetype`.
_ZIP_MIMETYPES = {b"application/epub+zip": "epub", b"application/vnd.oasis.opendocument.text": "odt"}


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
        raise UnsupportedType(f"'{ext}' files are not supported; upload {SUPPORTED_NAMES}")

    if b"%PDF-" in head[:1024]:
        found = "pdf"
    elif head.startswith(_IMAGE_MAGIC) or (head[:4] == b"RIFF" and head[8:12] == b"WEBP"):
        found = "image"
    elif head.startswith(b"PK\x03\x04"):
        found = _zip_kind(path)
    else:
        text = _sniff_text(head)
        if text is None:
            raise UnsupportedType(f"the file is binary and not one of {SUPPORTED_NAMES}")
        if claimed in ("markdown", "text", "csv", "code"):
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
            for marker, kind in _OFFICE_PARTS.items():
                if marker in names:
                    return kind
            if "mimetype" in names and zf.getinfo("mimetype").file_size < 100:
                kind = _ZIP_MIMETYPES.get(zf.read("mimetype").strip())
                if kind:
                    return kind
    except (zipfile.BadZipFile, RuntimeError, NotImplementedError, EOFError, zlib.error) as exc:
        # A bad checksum, an encrypted or oddly compressed member: not a package we can read.
        raise UnsupportedType("the file is a damaged ZIP archive") from exc
    raise UnsupportedType(
        "the file is a ZIP archive but not a Word, PowerPoint, Excel, OpenDocument text or EPUB document"
    )
