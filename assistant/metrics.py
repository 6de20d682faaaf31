"""Prometheus metrics of the web process."""

from prometheus_client import Gauge, Histogram

DOCUMENTS = Gauge("docent_documents", "Documents by ingestion status", ["status"])
SEARCH_SECONDS = Histogram("docent_search_seconds", "Hybrid search latency (SQL and embedding)", ["mode"])


def refresh_document_gauges(counts: dict[str, int]) -> None:
    for status in ("queued", "processing", "ready", "failed"):
        DOCUMENTS.labels(status=status).set(counts.get(status, 0))
