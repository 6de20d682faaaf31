"""An uploaded file handed back to a browser, safely: Markdown, CSV and text shown as plain text, every
other type downloaded, never rendered in the app's origin (an uploaded HTML page would otherwise run
its scripts as the signed-in user)."""

from __future__ import annotations

from django.http import FileResponse, Http404

from .models import Document

_INLINE_KINDS = {Document.Kind.TEXT, Document.Kind.MARKDOWN, Document.Kind.CSV}
_DOWNLOAD_TYPES = {
    Document.Kind.PDF: "application/pdf",
    Document.Kind.DOCX: "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    Document.Kind.HTML: "application/octet-stream",
}


def file_response(document: Document) -> FileResponse:
    """Raises Http404 when the file is no longer stored."""
    try:
        handle = document.file.open("rb")
    except FileNotFoundError:
        raise Http404("the document's file is no longer stored") from None
    inline = document.kind in _INLINE_KINDS
    response = FileResponse(
        handle,
        as_attachment=not inline,
        filename=document.original_name.rsplit("/", 1)[-1],  # a folder upload's path is not a file name
        content_type="text/plain; charset=utf-8" if inline else _DOWNLOAD_TYPES[document.kind],
    )
    response["Content-Security-Policy"] = "default-src 'none'; sandbox"
    return response
