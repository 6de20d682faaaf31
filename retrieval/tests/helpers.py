import io
import time

from retrieval.models import Document


def upload(collection, name: str, data: bytes, user=None, enqueue: bool = True, replace: bool = False):
    from retrieval import services

    return services.document_create(
        collection=collection,
        file=io.BytesIO(data),
        filename=name,
        user=user,
        enqueue=enqueue,
        replace=replace,
    )


def wait_done(document_id: int, timeout: float = 90.0) -> Document:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        document = Document.objects.get(id=document_id)
        if document.status in (Document.Status.READY, Document.Status.FAILED):
            return document
        time.sleep(0.2)
    raise AssertionError(
        f"document {document_id} still {Document.objects.get(id=document_id).status} after {timeout}s"
    )
