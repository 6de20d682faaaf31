"""Liveness, readiness and metrics endpoints: wiring over the apps' own health checks."""

import logging
import time

import redis
from django.conf import settings
from django.db import DatabaseError, connection
from django.http import HttpResponse, JsonResponse
from prometheus_client import CONTENT_TYPE_LATEST

from assistant.celery import app, queue_depth
from retrieval.embeddings import get_embedder
from retrieval.reranking import get_reranker
from retrieval.selectors import collections_purging_count, document_status_counts, stale_document_count

logger = logging.getLogger(__name__)


def healthz(request):
    return JsonResponse({"status": "ok"})


def _check(fn) -> dict:
    started = time.perf_counter()
    try:
        fn()
    except Exception as exc:  # readiness reports any failure, whatever its kind
        return {"status": "down", "error": f"{type(exc).__name__}: {exc}"[:300]}
    return {"status": "up", "ms": round((time.perf_counter() - started) * 1000, 1)}


def _database() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")


def _redis() -> None:
    redis.Redis.from_url(settings.REDIS_URL, socket_timeout=2).ping()


def _broker() -> None:
    with app.connection_for_write() as conn:
        conn.ensure_connection(max_retries=1, timeout=2)


def readyz(request):
    components = {
        "database": _check(_database),
        "redis": _check(_redis),
        "broker": _check(_broker),
        "embeddings": _check(lambda: get_embedder().check()),
    }
    ok = all(c["status"] == "up" for c in components.values())
    body = {"status": "ok" if ok else "unavailable", "components": components}
    if components["database"]["status"] == "up":
        # Not a readiness failure, but worth saying: vectors from another model search poorly.
        stale = stale_document_count(model_name=get_embedder().model_name)
        body["index"] = {"stale_documents": stale, **({"hint": "run manage.py reindex"} if stale else {})}
    if (reranker := get_reranker()) is not None:
        # Not a readiness failure either: without it searches keep the fused order.
        body["reranker"] = {
            "model": reranker.model_name,
            **_check(lambda: reranker.rerank("ready", ["ready"])),
        }
    return JsonResponse(body, status=200 if ok else 503)


def metrics(request):
    from assistant import metrics as m

    # An outage is when the process's own counters matter most: the scrape must not fail with it.
    try:
        m.refresh_document_gauges(document_status_counts())
        m.COLLECTIONS_PURGING.set(collections_purging_count())
    except DatabaseError:
        logger.warning("metrics: the database did not answer; its gauges keep their last values")
        m.DATABASE_UP.set(0)
    else:
        m.DATABASE_UP.set(1)
    m.INGEST_QUEUE.set(queue_depth())
    return HttpResponse(m.exposition(settings.DOCENT_WORKER_METRICS_DIR), content_type=CONTENT_TYPE_LATEST)
