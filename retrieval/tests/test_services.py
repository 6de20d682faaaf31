import numpy as np
import pytest

from retrieval import services
from retrieval.embeddings import get_embedder
from retrieval.models import Chunk, Document

from . import files
from .helpers import upload, wait_done

SAMPLES = {
    "report.pdf": files.pdf_bytes(
        ["Quarterly revenue grew by twelve percent.", "Costs fell in the second half."]
    ),
    "policy.docx": files.docx_bytes("Leave policy", ["Employees get twenty five days of paid leave."]),
    "guide.md": b"# Setup\n\nInstall the package with pip.\n\n## Running\n\nStart the server with make run.\n",
    "page.html": b"<html><body><h1>FAQ</h1><p>The office opens at nine.</p><script>x()</script></body></html>",
    "notes.txt": b"The backup runs every night at two.\n\nRestores take an hour.",
    "caps.csv": b"city,nightly cap\nLondon,220 GBP\nBerlin,160 EUR\n",
}


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_upload_reaches_ready_with_vectors(worker, collection_a, name):
    """Every supported type goes from upload to ready through the real worker, with stored vectors."""
    document, created = upload(collection_a, name, SAMPLES[name])
    assert created and document.status == "queued"
    document = wait_done(document.id)
    assert document.status == "ready", document.error
    assert document.progress == 1.0 and document.chunk_count >= 1
    chunks = list(Chunk.objects.filter(document=document))
    assert len(chunks) == document.chunk_count
    for chunk in chunks:
        assert chunk.embedding.shape == (384,)
        assert abs(np.linalg.norm(chunk.embedding) - 1.0) < 1e-3
        assert chunk.embedding_model == get_embedder().model_name
        assert chunk.collection_id == collection_a.id


def test_pdf_chunks_keep_pages(db, collection_a):
    document, _ = upload(collection_a, "r.pdf", SAMPLES["report.pdf"], enqueue=False)
    services.documents_ingest(document_ids=[document.id])
    assert sorted(Chunk.objects.filter(document=document).values_list("page", flat=True)) == [1, 2]


def test_same_bytes_same_collection_returns_existing(db, collection_a):
    first, created = upload(collection_a, "a.txt", b"same content", enqueue=False)
    again, created_again = upload(collection_a, "b.txt", b"same content", enqueue=False)
    assert created and not created_again and again.id == first.id
    assert Document.objects.count() == 1


def test_duplicate_content_is_not_embedded_again(db, collection_a, collection_b):
    """A second copy of a document reuses the vectors the same model already made."""
    text = "\n\n".join(
        f"Paragraph {i} describes the rollout plan for region {i}." for i in range(40)
    ).encode()
    one, _ = upload(collection_a, "plan.txt", text, enqueue=False)
    stats = services.documents_ingest(document_ids=[one.id])
    assert stats.embedded > 0 and stats.reused == 0
    two, _ = upload(collection_b, "plan-copy.txt", text, enqueue=False)
    stats = services.documents_ingest(document_ids=[two.id])
    assert stats.embedded == 0 and stats.reused == stats.chunks > 0
    a = list(Chunk.objects.filter(document=one).order_by("ordinal").values_list("embedding", flat=True))
    b = list(Chunk.objects.filter(document=two).order_by("ordinal").values_list("embedding", flat=True))
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))


def test_rerun_leaves_no_duplicate_chunks(db, collection_a):
    """Ingesting the same document again (a redelivered task) replaces its chunks."""
    document, _ = upload(collection_a, "notes.txt", SAMPLES["notes.txt"], enqueue=False)
    services.documents_ingest(document_ids=[document.id])
    n = Chunk.objects.filter(document=document).count()
    services.documents_ingest(document_ids=[document.id], force=True)
    assert Chunk.objects.filter(document=document).count() == n


HOSTILE = {
    "bomb.pdf": files.pdf_decompression_bomb,
    "loop.pdf": files.pdf_circular_xref,
    "bomb.docx": files.docx_zip_bomb,
    "bad.txt": lambda: b"valid start \xff\xfe\xfd invalid utf-8",
}


@pytest.mark.slow
def test_hostile_files_fail_alone_and_worker_keeps_going(worker, collection_a):
    """Each hostile file fails its own document with a readable reason; the next one still ingests."""
    hostile = [upload(collection_a, name, make())[0] for name, make in HOSTILE.items()]
    good, _ = upload(collection_a, "good.md", b"# Fine\n\nThis one is fine.")
    for document in hostile:
        document = wait_done(document.id, timeout=120)
        assert document.status == "failed"
        assert document.error and len(document.error) < 400 and "Traceback" not in document.error
        assert not Chunk.objects.filter(document=document).exists()
    assert wait_done(good.id).status == "ready"


def test_delete_removes_chunks_and_file(db, collection_a, settings):
    from pathlib import Path

    document, _ = upload(collection_a, "notes.txt", SAMPLES["notes.txt"], enqueue=False)
    services.documents_ingest(document_ids=[document.id])
    path = Path(settings.MEDIA_ROOT) / document.file.name
    assert path.exists()
    with pytest.MonkeyPatch.context():
        from django.db import transaction

        with transaction.atomic():
            services.document_delete(document=document)
    assert not Chunk.objects.filter(document_id=document.id).exists()
    assert not Document.objects.filter(id=document.id).exists()


def test_model_change_is_detected_and_reindexed(db, collection_a):
    """Documents embedded by another model are re-queued and re-embedded by `reindex`."""
    document, _ = upload(collection_a, "notes.txt", SAMPLES["notes.txt"], enqueue=False)
    services.documents_ingest(document_ids=[document.id])
    Chunk.objects.filter(document=document).update(embedding_model="old-model")
    Document.objects.filter(id=document.id).update(embedding_model="old-model")
    assert services.documents_reindex() == 1
    assert Document.objects.get(id=document.id).status == "queued"
    stats = services.documents_ingest(document_ids=[document.id])
    assert stats.embedded == stats.chunks > 0  # old-model vectors are not reused
    assert set(Chunk.objects.filter(document=document).values_list("embedding_model", flat=True)) == {
        get_embedder().model_name
    }


def test_sweep_requeues_stuck_and_gives_up_eventually(db, collection_a):
    from django.utils import timezone

    document, _ = upload(collection_a, "n.txt", b"text", enqueue=False)
    old = timezone.now() - timezone.timedelta(hours=1)
    Document.objects.filter(id=document.id).update(status="processing", heartbeat_at=old, attempts=1)
    assert services.documents_sweep_stuck(stuck_after_s=60, max_attempts=3, broker_backlog=5) == [document.id]
    assert Document.objects.get(id=document.id).status == "queued"
    # A queued document behind a busy queue is left alone; with an empty queue it is re-sent.
    Document.objects.filter(id=document.id).update(heartbeat_at=old)
    assert services.documents_sweep_stuck(stuck_after_s=60, max_attempts=3, broker_backlog=5) == []
    assert services.documents_sweep_stuck(stuck_after_s=60, max_attempts=3, broker_backlog=0) == [document.id]
    Document.objects.filter(id=document.id).update(status="processing", heartbeat_at=old, attempts=3)
    assert services.documents_sweep_stuck(stuck_after_s=60, max_attempts=3, broker_backlog=0) == []
    document.refresh_from_db()
    assert document.status == "failed" and "gave up" in document.error
