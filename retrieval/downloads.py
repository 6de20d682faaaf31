"""An uploaded file handed back to a browser, safely: Markdown, CSV, text and code shown as plain text, PDF
shown in the browser's own PDF viewer (so a citation opens at its page), a PNG, JPEG or WebP image shown
as an image, every other type downloaded,
never rendered as a page of the app's origin (an uploaded HTML page would otherwise run its scripts as
the signed-in user)."""

from __future__ import annotations

from django.http import FileResponse, Http404

from .models import Document

_TEXT_KINDS = {Document.Kind.TEXT, Document.Kind.MARKDOWN, Document.Kind.CSV, Document.Kind.CODE}
_DOWNLOAD_TYPES = {
    Document.Kind.DOCX: "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    Document.Kind.PPTX: "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    Document.Kind.XLSX: "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    Document.Kind.HTML: "application/octet-stream",
    Document.Kind.EMAIL: "message/rfc822",
    Document.Kind.EPUB: "application/epub+zip",
    Document.Kind.ODT: "application/vnd.oasis.opendocument.text",
    Document.Kind.IMAGE: "application/octet-stream",  # a TIFF: no browser shows one
}


def _image_type(handle) -> str | None:
    """The type of a PNG, JPEG or WebP image from its first bytes (checked at upload; not SVG, which
    could hold scripts), which a browser shows; None for a TIFF."""
    head = handle.read(12)
    handle.seek(0)
    if head.startswith(b"\x89PNG"):
        return "image/png"
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    return None


def file_response(document: Document) -> FileResponse:
    """Raises Http404 when the file is no longer stored."""
    try:
        handle = document.file.open("rb")
    except FileNotFoundError:
        raise Http404("the document's file is no longer stored") from None
    filename = document.original_name.rsplit("/", 1)[-1]  # a folder upload's path is not a file name
    if document.kind == Document.Kind.PDF:
        # The type was checked from the content at upload and nosniff holds it to PDF, so the browser
        # hands it to its PDF viewer, whose document scripts never reach the app's origin. No CSP: a
        # sandboxed PDF shows blank in Chromium, whose viewer is refused as a plugin.
        return FileResponse(handle, filename=filename, content_type="application/pdf")
    text = document.kind in _TEXT_KINDS
    shown = _image_type(handle) if document.kind == Document.Kind.IMAGE else None
    response = FileResponse(
        handle,
        as_attachment=not (text or shown),
        filename=filename,
        content_type="text/plain; charset=utf-8" if text else shown or _DOWNLOAD_TYPES[document.kind],
    )
    response["Content-Security-Policy"] = "default-src 'none'; sandbox"
    return response
