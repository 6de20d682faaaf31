import signal
import time
import urllib.request

import psutil
import pytest
from django.db.models import Count

from retrieval import services
from retrieval.models import Chunk, Document
from retrieval.tasks import ingest_documents
from tests.support.processes import free_port, start_worker, stop

from .helpers import upload, wait_done

BIG = "\n\n".join(
    f"Section {i}. The turbine model {i} needs inspection every {i % 9 + 1} months." for i in range(1000)
)
# About 90 chunks: a worker embedding 32 at a time can be stopped between its batches.
SMALL_BATCHES = {"DOCENT_EMBEDDING_BATCH": "8"}


def wait_embedding(document_id: int, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        document = Document.objects.get(id=document_id)
        if document.status == "processing" and document.progress > 0.15:
            return
        assert document.status != "ready", "finished before it could be interrupted"
        time.sleep(0.05)
    raise AssertionError("the worker never started embedding")


def assert_clean_chunks(document: Document) -> None:
    assert document.status == "ready", document.error
    ordinals = list(Chunk.objects.filter(document=document).values_list("ordinal", flat=True))
    assert sorted(ordinals) == list(range(document.chunk_count))
    dupes = (
        Chunk.objects.filter(document=document).values("content_hash").annotate(n=Count("id")).filter(n__gt=1)
    )
    # Overlap can repeat text legitimately only with different neighbours; identical hashes here mean a double insert.
    assert dupes.count() == 0


@pytest.mark.slow
def test_worker_killed_mid_task_recovers_without_duplicates(worker, collection_a, tmp_path):
    """SIGKILL of the whole worker mid-embedding: the sweep re-queues, another worker finishes cleanly."""
    document, _ = upload(collection_a, "manual.txt", BIG.encode(), enqueue=False)
    proc = start_worker("doomed", tmp_path / "worker.log", **SMALL_BATCHES)
    try:
        ingest_documents.apply_async([[document.id]], queue="doomed")
        wait_embedding(document.id)
        stop(proc, signal.SIGKILL)
    finally:
        stop(proc, signal.SIGKILL)
    assert Document.objects.get(id=document.id).status == "processing"
    time.sleep(5.5)  # DOCENT_STUCK_AFTER_S in test settings: the heartbeat goes quiet
    assert services.documents_sweep_stuck(stuck_after_s=5, max_attempts=4, broker_backlog=0) == [document.id]
    document = wait_done(document.id, timeout=180)  # the session's worker picks up the re-queued task
    assert_clean_chunks(document)
    assert document.attempts == 2


@pytest.mark.slow
def test_pool_child_killed_is_redelivered(transactional_db, collection_a, tmp_path):
    """A killed pool process makes Celery reject and redeliver the task (acks_late + reject_on_worker_lost).

    Its replacement begins with the embedder's libraries imported, not ten seconds of imports into
    the redelivered task: the worker's main process imports them before its pool forks (it never
    runs a task itself, so a library mapped in it was imported there)."""
    document, _ = upload(collection_a, "manual.txt", BIG.encode(), enqueue=False)
    proc = start_worker("survivor", tmp_path / "worker.log", **SMALL_BATCHES)
    try:
        ingest_documents.apply_async([[document.id]], queue="survivor")
        wait_embedding(document.id)
        assert any("libtorch" in m.path for m in psutil.Process(proc.pid).memory_maps())
        children = psutil.Process(proc.pid).children()
        assert children, "the prefork pool has a child"
        for child in children:
            child.send_signal(signal.SIGKILL)
        document = wait_done(document.id, timeout=180)
    finally:
        stop(proc)
    assert_clean_chunks(document)
    assert document.attempts == 2


def test_limits_sit_below_the_brokers_visibility_timeout(settings):
    """An ingestion task ends, or is killed, before Redis would hand it to a second worker; it is
    acknowledged only when done, and given back when its worker dies."""
    from retrieval.tasks import ingest_documents

    visibility = settings.CELERY_BROKER_TRANSPORT_OPTIONS["visibility_timeout"]
    assert ingest_documents.soft_time_limit < ingest_documents.time_limit < visibility
    assert ingest_documents.acks_late and ingest_documents.reject_on_worker_lost
    assert 0 < ingest_documents.max_retries <= 5


def test_a_web_readings_slice_ends_inside_its_tasks_limits_and_the_schedule_names_real_tasks(settings):
    from assistant.celery import app
    from retrieval.tasks import sync_web_source

    visibility = settings.CELERY_BROKER_TRANSPORT_OPTIONS["visibility_timeout"]
    # A slice stops taking pages after DOCENT_WEB_SLICE_S; its last page may take four timeouts.
    assert (
        settings.DOCENT_WEB_SLICE_S + 4 * settings.DOCENT_WEB_TIMEOUT_S
        < sync_web_source.soft_time_limit
        < sync_web_source.time_limit
        < visibility
    )
    app.loader.import_default_modules()
    for entry in settings.CELERY_BEAT_SCHEDULE.values():
        assert entry["task"] in app.tasks, entry


def test_transient_errors_are_retried_then_succeed(db, collection_a, monkeypatch):
    """A provider outage during embedding is retried (with backoff when run by a worker); once it
    passes, the document ends ready."""
    from retrieval.embeddings import TransientEmbeddingError

    document, _ = upload(collection_a, "note.md", b"# Note\n\nRotas change on Mondays.", enqueue=False)
    real, calls = services.documents_ingest, []

    def flaky(*, document_ids):
        calls.append(Document.objects.get(id=document_ids[0]).status)
        if len(calls) < 3:
            raise TransientEmbeddingError("provider answered 503")
        return real(document_ids=document_ids)

    monkeypatch.setattr(services, "documents_ingest", flaky)
    ingest_documents.apply(args=[[document.id]])
    assert len(calls) == 3
    assert Document.objects.get(id=document.id).status == "ready"


def test_transient_errors_fail_for_good_after_the_retries(db, collection_a, monkeypatch):
    """A provider that stays down fails the document after a bounded number of tries, with the reason."""
    from retrieval.embeddings import TransientEmbeddingError

    document, _ = upload(collection_a, "note.md", b"# Note\n\nRotas change on Mondays.", enqueue=False)
    calls = []

    def down(*, document_ids):
        calls.append(1)
        raise TransientEmbeddingError("provider answered 503")

    monkeypatch.setattr(services, "documents_ingest", down)
    ingest_documents.apply(args=[[document.id]])
    assert len(calls) == ingest_documents.max_retries + 1
    document.refresh_from_db()
    assert document.status == "failed"
    assert "gave up after retries" in document.error and "provider answered 503" in document.error


def test_a_batch_out_of_time_goes_again_one_document_a_task_and_one_alone_fails(
    db, collection_a, monkeypatch
):
    """Eight failed scans retried at once can outlast the task's time limit together, though each
    fits alone: the batch is queued again as one task per document (a file the batch already
    failed stays failed). A single document out of time fails, with the reason."""
    from celery.exceptions import SoftTimeLimitExceeded

    slow = [
        upload(collection_a, f"scan{n}.md", f"# Scan {n}\n\nPage {n}.".encode(), enqueue=False)[0]
        for n in range(2)
    ]
    broken, _ = upload(collection_a, "broken.md", b"# Broken\n\nText.", enqueue=False)
    services.document_fail(document=broken, reason="the file is damaged")
    queued = []
    monkeypatch.setattr(services, "documents_enqueue", lambda **kw: queued.append(kw))

    def out_of_time(*, document_ids):
        Document.objects.filter(id__in=document_ids).exclude(status="failed").update(status="processing")
        raise SoftTimeLimitExceeded()

    monkeypatch.setattr(services, "documents_ingest", out_of_time)
    ids = [d.id for d in slow] + [broken.id]
    assert ingest_documents.apply(args=[ids]).get() == {"requeued": 2}
    assert [(sorted(q["document_ids"]), q["batch_size"]) for q in queued] == [(sorted(d.id for d in slow), 1)]
    assert {d.id: d.status for d in Document.objects.filter(id__in=ids)} == {
        slow[0].id: "queued",
        slow[1].id: "queued",
        broken.id: "failed",
    }
    assert ingest_documents.apply(args=[[slow[0].id]]).get() == {"failed": 1}
    slow[0].refresh_from_db()
    assert slow[0].status == "failed" and "longer than its time limit" in slow[0].error


def test_an_upload_while_the_broker_is_down_is_kept_and_ingested_later(
    worker, client, alice, collection_a, monkeypatch
):
    """Queueing fails (the broker is away): the upload still answers 202 queued with the file kept,
    and the sweep queues it once the broker is back, so it reaches ready."""
    from django.core.files.uploadedfile import SimpleUploadedFile
    from django.utils import timezone
    from kombu.exceptions import OperationalError

    def broker_down(*args, **kwargs):
        raise OperationalError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    monkeypatch.setattr(ingest_documents, "delay", broker_down)
    file = SimpleUploadedFile(
        "notes.md", b"# Notes\n\nThe boiler is serviced every May.", content_type="text/markdown"
    )
    key = {"HTTP_AUTHORIZATION": f"Bearer {services.api_key_create(user=alice)[1]}"}
    response = client.post(f"/api/v1/collections/{collection_a.id}/documents", {"file": file}, **key)
    assert response.status_code == 202 and response.json()["status"] == "queued"
    document_id = response.json()["id"]
    monkeypatch.undo()
    Document.objects.filter(id=document_id).update(
        heartbeat_at=timezone.now() - timezone.timedelta(minutes=10)
    )
    assert services.documents_sweep_stuck(stuck_after_s=60, max_attempts=4, broker_backlog=0) == [document_id]
    assert wait_done(document_id).status == "ready"


def _sample(name: str, **labels) -> float:
    from prometheus_client import REGISTRY

    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_ingestion_is_counted_by_outcome_and_stage(worker, collection_a):
    """A task's documents count by outcome, its chunks and the time of each stage add up."""
    ready = _sample("docent_worker_documents_total", outcome="ready")
    failed = _sample("docent_worker_documents_total", outcome="failed")
    chunks = _sample("docent_worker_chunks_total", vector="embedded")
    embed = _sample("docent_worker_stage_seconds_total", stage="embed")
    done = _sample("docent_worker_tasks_total", outcome="done")
    good, _ = upload(collection_a, "notes.md", b"# Notes\n\nThe boiler is serviced every May.")
    bad, _ = upload(collection_a, "broken.pdf", b"%PDF-1.4\n1 0 obj << /Type /Catalog >> garbage")
    assert wait_done(good.id).status == "ready" and wait_done(bad.id).status == "failed"
    # The task counts after its documents' statuses are written: the counts may lag them a moment.
    deadline = time.monotonic() + 20
    while _sample("docent_worker_tasks_total", outcome="done") < done + 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _sample("docent_worker_documents_total", outcome="ready") == ready + 1
    assert _sample("docent_worker_documents_total", outcome="failed") == failed + 1
    assert _sample("docent_worker_chunks_total", vector="embedded") >= chunks + 1
    assert _sample("docent_worker_stage_seconds_total", stage="embed") > embed


@pytest.mark.slow
def test_a_worker_processes_metrics_reach_the_web_metrics(
    transactional_db, client, collection_a, tmp_path, settings, fake_openai
):
    """A real worker (prefork) writes its metrics to the shared directory; the web process's /metrics
    serves them, next to its own and without duplicating any, and so does the worker's own port."""
    directory = tmp_path / "metrics"
    directory.mkdir()
    settings.DOCENT_WORKER_METRICS_DIR = directory
    port = free_port()
    proc = start_worker(
        "metrics-q",
        tmp_path / "worker.log",
        PROMETHEUS_MULTIPROC_DIR=str(directory),
        DOCENT_WORKER_METRICS_PORT=str(port),
        # Embedding at the loopback provider: the worker starts without the local model's libraries.
        DOCENT_EMBEDDING_BACKEND="openai",
        DOCENT_EMBEDDING_MODEL="fake-embed",
        OPENAI_BASE_URL=fake_openai.base_url,
        OPENAI_API_KEY="test",
    )
    try:
        document, _ = upload(
            collection_a, "notes.md", b"# Notes\n\nThe boiler is serviced every May.", enqueue=False
        )
        ingest_documents.apply_async(args=[[document.id]], queue="metrics-q")
        done = wait_done(document.id)
        assert done.status == "ready" and done.embedding_model == "fake-embed"
        # The worker's own endpoint, for a host without a web process: its metrics only (the count
        # may lag the status, as above).
        ready = 'docent_worker_documents_total{outcome="ready"} 1.0'
        deadline = time.monotonic() + 20
        own = ""
        while ready not in own and time.monotonic() < deadline:
            time.sleep(0.1)
            own = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
        assert ready in own
        assert "docent_http_requests" not in own
    finally:
        stop(proc)
    text = client.get("/metrics").content.decode()
    assert ready in text
    assert 'docent_worker_tasks_total{outcome="done"} 1.0' in text
    names = [line.split(" ")[2] for line in text.splitlines() if line.startswith("# TYPE")]
    assert len(names) == len(set(names))  # each metric once: the web's own and the worker's apart


def test_a_deleted_collection_is_purged_by_the_worker(worker, collection_a, settings):
    """The purge queued by a deletion runs on the real worker: rows, passages and files go."""
    from pathlib import Path

    from retrieval.models import Collection

    document, _ = upload(collection_a, "notes.txt", b"The backup runs every night at two.", enqueue=False)
    services.documents_ingest(document_ids=[document.id])
    stored = Path(settings.MEDIA_ROOT) / Document.objects.get(id=document.id).file.name
    services.collection_delete(collection=collection_a)  # autocommit here: queued at once
    deadline = time.monotonic() + 60
    while Collection.objects.filter(id=collection_a.id).exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not Collection.objects.filter(id=collection_a.id).exists()
    assert not Chunk.objects.filter(document_id=document.id).exists() and not stored.exists()
