"""Celery tasks: take ids, call services. Idempotent, so acks_late and redelivery are safe."""

import logging
import smtplib

from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded
from celery.signals import worker_init
from django.conf import settings
from django.db import InterfaceError, OperationalError

from assistant import metrics
from assistant.celery import queue_depth

from . import audit, services
from .embeddings import TransientEmbeddingError

log = logging.getLogger(__name__)

TRANSIENT = (TransientEmbeddingError, OperationalError, InterfaceError, ConnectionError, TimeoutError)


@worker_init.connect
def _import_embedder(**_) -> None:
    """In the worker's main process, before its pool forks: imports only (no model loaded, no torch op run)."""
    if settings.DOCENT_EMBEDDING_BACKEND == "local":
        from .embeddings.local import import_runtime

        import_runtime()


@shared_task(
    bind=True,
    acks_late=True,
    reject_on_worker_lost=True,
    max_retries=3,
    soft_time_limit=1200,
    time_limit=1500,
)
def ingest_documents(self, document_ids: list[int]) -> dict:
    try:
        stats = services.documents_ingest(document_ids=document_ids)
    except TRANSIENT as exc:
        reason = f"{type(exc).__name__}: {exc}"[:300]
        if self.request.retries >= self.max_retries:
            services.documents_fail(document_ids=document_ids, reason=f"gave up after retries ({reason})")
            metrics.record_ingest("gave_up", failed=len(document_ids))
            return {"failed": len(document_ids)}
        services.documents_mark_retrying(document_ids=document_ids, reason=reason)
        metrics.record_ingest("retry")
        raise self.retry(exc=exc, countdown=min(300, 5 * 4**self.request.retries)) from exc
    except SoftTimeLimitExceeded:
        if len(document_ids) > 1:
            # Too slow as a batch (long scans read by OCR, say): each document gets a task of its own.
            requeued = services.documents_requeue_alone(document_ids=document_ids)
            metrics.record_ingest("split")
            return {"requeued": len(requeued)}
        services.documents_fail(document_ids=document_ids, reason="ingestion took longer than its time limit")
        metrics.record_ingest("time_limit", failed=len(document_ids))
        return {"failed": len(document_ids)}
    metrics.record_ingest("done", stats)
    return {"ready": stats.ready, "failed": stats.failed, "chunks": stats.chunks}


@shared_task(acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def purge_collection(collection_id: int) -> int:
    # Each batch commits whole, so a purge cut short by its time limit or a dead worker is simply
    # queued again by the sweep and goes on from there.
    return services.collection_purge(collection_id=collection_id)


@shared_task(
    acks_late=True, reject_on_worker_lost=True, ignore_result=True, soft_time_limit=1200, time_limit=1500
)
def rekey_collection(collection_id: int) -> bool:
    # One transaction: a rebuild cut short leaves the old index whole, and the sweep queues it again.
    return services.collection_rekey(collection_id=collection_id)


@shared_task(acks_late=True, ignore_result=True)
def sweep_stuck_documents() -> list[int]:
    services.collections_purge_stuck(stuck_after_s=settings.DOCENT_STUCK_AFTER_S)
    services.collections_rekey_stuck()
    return services.documents_sweep_stuck(
        stuck_after_s=settings.DOCENT_STUCK_AFTER_S,
        max_attempts=settings.DOCENT_INGEST_MAX_ATTEMPTS,
        broker_backlog=queue_depth(),
    )


# Email goes out from the worker: a mail server down or refusing is retried with backoff.
_EMAIL = {
    "acks_late": True,
    "autoretry_for": (smtplib.SMTPException, OSError),
    "retry_backoff": 30,
    "retry_backoff_max": 600,
    "max_retries": 5,
    "soft_time_limit": 60,
    "time_limit": 90,
}


@shared_task(**_EMAIL)
def password_reset_send_later(user_id: int, base_url: str) -> bool:
    # The link is made here, from the id: no token waits in the broker. A redelivery sends a second
    # link, which works as well as the first.
    return services.password_reset_send(user_id=user_id, base_url=base_url)


@shared_task(**_EMAIL)
def web_source_failing_send(source_id: int) -> int:
    return services.web_source_failing_notify(source_id=source_id)


@shared_task(
    acks_late=True, reject_on_worker_lost=True, ignore_result=True, soft_time_limit=600, time_limit=900
)
def sync_web_source(source_id: int, reading: str | None = None) -> None:
    # One slice of a reading (DOCENT_WEB_SLICE_S), well inside these limits; it queues the next. A
    # slice lost with its worker is taken again by the schedule, from where the reading stood.
    source = services.web_source_sync(source_id=source_id, reading=reading)
    if source is not None and source.tally is not None:
        metrics.record_web_reading(source.status, source.tally)


@shared_task(acks_late=True, ignore_result=True)
def refresh_web_sources() -> list[int]:
    return services.web_sources_due()


@shared_task(acks_late=True, ignore_result=True)
def purge_audit_events() -> int:
    return audit.purge_old()
