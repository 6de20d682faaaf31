"""Prometheus metrics of the web process (GET /metrics). Counters and histograms are per process;
the document and queue gauges are read from the database and the broker at each scrape."""

from prometheus_client import Counter, Gauge, Histogram

DOCUMENTS = Gauge("docent_documents", "Documents by ingestion status", ["status"])
COLLECTIONS_PURGING = Gauge(
    "docent_collections_purging", "Deleted collections whose documents are still being purged"
)
DATABASE_UP = Gauge(
    "docent_database_up",
    "1 when this scrape read the database; 0 leaves the document and purge gauges at their last values",
)
INGEST_QUEUE = Gauge(
    "docent_ingest_queue_depth", "Tasks waiting in the broker's default queue (-1: the broker cannot say)"
)
SEARCH_SECONDS = Histogram(
    "docent_search_seconds",
    "Search latency: query embedding (cached) and the one SQL statement",
    ["mode"],
    buckets=(0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.2, 0.5, 1.0, 2.5),
)
RERANK_SECONDS = Histogram(
    "docent_rerank_seconds",
    "Second-stage reranking of search candidates at the rerank endpoint",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.2, 0.5, 1.0, 2.5, 5.0, 10.0),
)
RERANK_FAILURES = Counter(
    "docent_rerank_failures_total",
    "Searches that kept the fused order because the reranker failed",
    ["reason"],
)
SSO_SIGN_INS = Counter(
    "docent_sso_sign_ins_total",
    "Sign-ins with the single sign-on provider, by outcome: ok, or why not (failed, unavailable, denied, "
    "no-account, inactive, ambiguous, password-account, not-allowed)",
    ["outcome"],
)
RATE_LIMITED = Counter("docent_rate_limited_total", "Requests refused by a rate limit", ["action"])
MODERATION_FLAGGED = Counter(
    "docent_moderation_flagged_total", "Questions refused by moderation", ["checker"]
)
MODERATION_ERRORS = Counter(
    "docent_moderation_errors_total", "Moderation checks that failed to answer", ["checker"]
)

HTTP_REQUESTS = Counter(
    "docent_http_requests_total", "HTTP requests by route pattern and status", ["method", "route", "status"]
)
HTTP_SECONDS = Histogram(
    "docent_http_request_seconds",
    "HTTP request latency until the response starts (a stream's body is not included)",
    ["route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
WEBSOCKETS = Gauge("docent_websocket_connections", "Open websocket connections", ["path"])


def websocket_opened(consumer, path: str) -> None:
    """Count an accepted socket under `path`; `websocket_closed` uncounts it once, whatever the order."""
    consumer.metrics_path = path
    WEBSOCKETS.labels(path=path).inc()


def websocket_closed(consumer) -> None:
    path = getattr(consumer, "metrics_path", None)
    if path is not None:
        consumer.metrics_path = None
        WEBSOCKETS.labels(path=path).dec()


ANSWERS = Counter(
    "docent_answers_total",
    "Answers ended, by source (chat, api) and outcome: a finish reason (stop, length, refused, "
    "stopped, interrupted) or an error code (moderation_blocked, provider_unavailable, internal)",
    ["source", "outcome"],
)
ANSWER_TTFT = Histogram(
    "docent_answer_ttft_seconds",
    "From the question to the answer's first text (retrieval and the provider's first token)",
    ["source"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 30.0),
)
ANSWER_SECONDS = Histogram(
    "docent_answer_seconds",
    "From the question to the answer's end",
    ["source"],
    buckets=(0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 40.0, 80.0, 160.0),
)
CITATIONS = Counter(
    "docent_citations_total",
    "Citation markers in finished answers, by source and verdict: held (its passages hold every figure "
    "stated before it) or to_check (one is missing)",
    ["source", "verdict"],
)
TOKENS = Counter(
    "docent_tokens_total", "Tokens spent, by source and kind (prompt, completion)", ["source", "kind"]
)
STREAM_REDIS_ERRORS = Counter(
    "docent_stream_redis_errors_total",
    "Answers whose events Redis could not take for a while (they caught up once it was back)",
)


def refresh_document_gauges(counts: dict[str, int]) -> None:
    for status in ("queued", "processing", "ready", "failed"):
        DOCUMENTS.labels(status=status).set(counts.get(status, 0))


def record_citations(*, source: str, markers: int, to_check: int) -> None:
    if markers:
        CITATIONS.labels(source=source, verdict="held").inc(markers - to_check)
    if to_check:
        CITATIONS.labels(source=source, verdict="to_check").inc(to_check)


def record_answer(*, source: str, outcome: str, ttft_s: float | None, total_s: float, usage: dict) -> None:
    ANSWERS.labels(source=source, outcome=outcome).inc()
    if ttft_s is not None:
        ANSWER_TTFT.labels(source=source).observe(ttft_s)
    ANSWER_SECONDS.labels(source=source).observe(total_s)
    for kind in ("prompt", "completion"):
        if usage.get(f"{kind}_tokens"):
            TOKENS.labels(source=source, kind=kind).inc(usage[f"{kind}_tokens"])


# Worker metrics: written by the Celery worker's processes. Where the worker runs with
# PROMETHEUS_MULTIPROC_DIR (make run sets it under the data directory), the web process on the same
# host adds them to /metrics (see `exposition`). Their names all start with docent_worker_.
WORKER_DOCUMENTS = Counter(
    "docent_worker_documents_total",
    "Documents whose ingestion ended, by outcome (ready, failed)",
    ["outcome"],
)
WORKER_CHUNKS = Counter(
    "docent_worker_chunks_total", "Chunks written, by how their vector came (embedded, reused)", ["vector"]
)
WORKER_STAGE_SECONDS = Counter(
    "docent_worker_stage_seconds_total",
    "Time spent ingesting, by stage (parse, chunk, embed, insert)",
    ["stage"],
)
WORKER_WEB_READINGS = Counter(
    "docent_worker_web_readings_total", "Readings of web sources, by outcome (ok, failed)", ["outcome"]
)
WORKER_WEB_PAGES = Counter(
    "docent_worker_web_pages_total",
    "Pages of web sources read, by what became of them (new, unchanged, skipped, deleted)",
    ["outcome"],
)
WORKER_TASKS = Counter(
    "docent_worker_tasks_total",
    "Ingestion tasks ended, by outcome (done, retry, gave_up, time_limit, split)",
    ["outcome"],
)


def record_web_reading(outcome: str, pages: dict[str, int]) -> None:
    WORKER_WEB_READINGS.labels(outcome=outcome).inc()
    for name, n in pages.items():
        if n:
            WORKER_WEB_PAGES.labels(outcome=name).inc(n)


def record_ingest(outcome: str, stats=None, failed: int = 0) -> None:
    """An ingestion task ended (`outcome`), with its statistics when it ran to the end, or the number
    of documents it failed for good."""
    WORKER_TASKS.labels(outcome=outcome).inc()
    if failed:
        WORKER_DOCUMENTS.labels(outcome="failed").inc(failed)
    if stats is None:
        return
    for name, value in (("ready", stats.ready), ("failed", stats.failed)):
        if value:
            WORKER_DOCUMENTS.labels(outcome=name).inc(value)
    for vector, value in (("embedded", stats.embedded), ("reused", stats.reused)):
        if value:
            WORKER_CHUNKS.labels(vector=vector).inc(value)
    for stage, seconds in stats.seconds.items():
        if seconds:
            WORKER_STAGE_SECONDS.labels(stage=stage).inc(seconds)


class _WorkerFamilies:
    """The docent_worker_* families the worker processes wrote to a multiprocess directory."""

    def __init__(self, directory):
        self.directory = str(directory)

    def collect(self):
        from prometheus_client.multiprocess import MultiProcessCollector

        for family in MultiProcessCollector(None, path=self.directory).collect():
            if family.name.startswith("docent_worker_"):
                yield family


def serve_worker_metrics(port: int, directory, addr: str = "127.0.0.1") -> None:
    """An HTTP /metrics of the worker's own, for a worker on a host without a web process."""
    from prometheus_client import CollectorRegistry, start_http_server

    registry = CollectorRegistry()
    registry.register(_WorkerFamilies(directory))
    start_http_server(port, addr=addr, registry=registry)


def exposition(worker_directory) -> bytes:
    """This process's metrics in the text format, with the worker processes' docent_worker_* metrics
    read from `worker_directory` (prometheus_client's multiprocess files) when it holds any: those
    then replace this process's own (empty) families of the same names, so that none is listed twice."""
    from pathlib import Path

    from prometheus_client import REGISTRY, generate_latest

    if not worker_directory or not any(Path(worker_directory).glob("*.db")):
        return generate_latest(REGISTRY)

    class Merged:
        def collect(self):
            for family in REGISTRY.collect():
                if not family.name.startswith("docent_worker_"):
                    yield family
            yield from _WorkerFamilies(worker_directory).collect()

    return generate_latest(Merged())
