"""Prometheus metrics of the web process."""

from prometheus_client import Counter, Gauge, Histogram

DOCUMENTS = Gauge("docent_documents", "Documents by ingestion status", ["status"])
SEARCH_SECONDS = Histogram(
    "docent_search_seconds",
    "Search latency: query embedding (cached) and the one SQL statement",
    ["mode"],
    buckets=(0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.2, 0.5, 1.0, 2.5),
)
RATE_LIMITED = Counter("docent_rate_limited_total", "Requests refused by a rate limit", ["action"])


def refresh_document_gauges(counts: dict[str, int]) -> None:
    for status in ("queued", "processing", "ready", "failed"):
        DOCUMENTS.labels(status=status).set(counts.get(status, 0))


MODERATION_FLAGGED = Counter(
    "docent_moderation_flagged_total", "Questions refused by moderation", ["checker"]
)
MODERATION_ERRORS = Counter(
    "docent_moderation_errors_total", "Moderation checks that failed to answer", ["checker"]
)
