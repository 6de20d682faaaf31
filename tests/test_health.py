def test_healthz(client):
    response = client.get("/healthz")
    assert response.status_code == 200 and response.json() == {"status": "ok"}


def test_readyz_all_up(client, db):
    response = client.get("/readyz")
    assert response.status_code == 200
    assert {name: c["status"] for name, c in response.json()["components"].items()} == {
        "database": "up",
        "redis": "up",
        "broker": "up",
        "embeddings": "up",
    }


def test_readyz_names_what_is_down(client, db, settings):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens on port 1
    response = client.get("/readyz")
    assert response.status_code == 503
    components = response.json()["components"]
    assert components["redis"]["status"] == "down" and components["database"]["status"] == "up"


def test_readyz_reports_the_reranker_without_failing_for_it(client, db, settings, reranker):
    from retrieval import reranking

    up = client.get("/readyz")
    reranker.add_fault(path="/rerank", status=500)
    down = client.get("/readyz")
    settings.DOCENT_RERANK_MODEL = ""
    reranking.get_reranker.cache_clear()
    off = client.get("/readyz")
    assert up.status_code == 200 and up.json()["reranker"]["status"] == "up"
    assert down.status_code == 200 and down.json()["reranker"]["status"] == "down"
    assert "500" in down.json()["reranker"]["error"] and down.json()["reranker"]["model"] == "fake-reranker"
    assert "reranker" not in off.json()  # none configured


def test_metrics_is_prometheus_text(client, db, collection_a):
    from retrieval import services

    response = client.get("/metrics")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    assert 'docent_documents{status="ready"}' in response.content.decode()
    assert "docent_collections_purging 0.0" in response.content.decode()
    assert "docent_database_up 1.0" in response.content.decode()
    services.collection_delete(collection=collection_a)  # in the test's transaction: no purge runs
    assert "docent_collections_purging 1.0" in client.get("/metrics").content.decode()


def test_readyz_reports_vectors_from_another_model(client, db, collection_a):
    from retrieval.models import Document

    Document.objects.create(
        collection=collection_a,
        title="old",
        original_name="old.txt",
        file="x",
        content_hash="h",
        kind="text",
        size=1,
        status="ready",
        embedding_model="some-older-model",
    )
    body = client.get("/readyz").json()
    assert body["index"] == {"stale_documents": 1, "hint": "run manage.py reindex"}


def test_metrics_count_searches_and_refusals(client, alice, collection_a, rate_limits):
    """A search shows in the latency histogram; a search refused by its rate, in the refusal counter."""
    from prometheus_client import REGISTRY

    def sample(name, **labels):
        return REGISTRY.get_sample_value(name, labels) or 0.0

    searches = sample("docent_search_seconds_count", mode="hybrid")
    refused = sample("docent_rate_limited_total", action="search")
    rate_limits(search="1/d")
    client.force_login(alice)
    for _ in range(2):
        client.post("/api/v1/search", {"query": "leave"}, content_type="application/json")
    assert sample("docent_search_seconds_count", mode="hybrid") == searches + 1
    assert sample("docent_rate_limited_total", action="search") == refused + 1
    text = client.get("/metrics").content.decode()
    assert 'docent_search_seconds_bucket{le="0.03",mode="hybrid"}' in text
    assert 'docent_rate_limited_total{action="search"}' in text


def _sample(name, **labels) -> float:
    from prometheus_client import REGISTRY

    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_metrics_count_requests_by_route_pattern(client, alice, collection_a):
    """Requests are counted by their route pattern and status (bounded labels), and the ingestion
    queue's depth is read from the broker at each scrape."""
    route = "api/v1/documents/<document_id>"
    before = _sample("docent_http_requests_total", method="GET", route=route, status="404")
    client.force_login(alice)
    for missing in (987654, 987655):
        assert client.get(f"/api/v1/documents/{missing}").status_code == 404
    assert _sample("docent_http_requests_total", method="GET", route=route, status="404") == before + 2
    assert _sample("docent_http_request_seconds_count", route=route) >= 2
    text = client.get("/metrics").content.decode()
    # The path itself is never a label (the id's digits may turn up in a timestamp's value).
    labels = [line.split("}")[0] for line in text.splitlines() if "{" in line and not line.startswith("#")]
    assert labels and not any("987654" in label for label in labels)
    assert "docent_ingest_queue_depth " in text and "docent_ingest_queue_depth -1" not in text


def test_queue_depth_is_minus_one_soon_when_the_broker_is_away(client, db, monkeypatch):
    """A broker that refuses connections gives an unknown depth (-1) at once, on
    /metrics too, instead of hanging the scrape (or the sweep, which then re-queues nothing queued)."""
    import time

    from assistant.celery import app, queue_depth

    monkeypatch.setattr(app.conf, "broker_read_url", "redis://127.0.0.1:1/0")  # nothing listens on 1
    started = time.monotonic()
    assert queue_depth() == -1
    assert time.monotonic() - started < 1.5  # one attempt, no retry pause
    assert "docent_ingest_queue_depth -1.0" in client.get("/metrics").content.decode()


def test_favicon_requests_find_the_apps_icon(client, db):
    response = client.get("/favicon.ico")
    assert response.status_code == 301 and response["Location"].endswith("/favicon.svg")
