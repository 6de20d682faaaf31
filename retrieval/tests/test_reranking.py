"""The reranker, a second stage after fusion, against the loopback fake server's /rerank."""

import time

import pytest

from assistant import metrics
from retrieval import reranking, services
from retrieval.selectors import search

from .test_selectors import ingest

QUERY = "Who approves refunds?"


@pytest.fixture
def refunds(collection_a, collection_b):
    """The fused order puts the finance team's sentence first; the fake reranker is told to favour
    the escalation rule. Another team's passage on refunds must never reach the reranker."""
    return {
        "approved": ingest(
            collection_a, "approved.txt", "Refunds are approved by the finance team within five days."
        ),
        "escalation": ingest(
            collection_a, "escalation.txt", "Refunds over 500 euros need an escalation to the director."
        ),
        "cafeteria": ingest(collection_a, "cafeteria.txt", "The cafeteria opens at noon on weekdays."),
        "theirs": ingest(
            collection_b, "theirs.txt", "Refunds are approved by the other team's escalation desk."
        ),
    }


def _failures(reason: str) -> float:
    return metrics.RERANK_FAILURES.labels(reason=reason)._value.get()


def test_the_reranker_reorders_the_best_candidates(alice, refunds, reranker):
    fused = search(user=alice, query=QUERY, k=3, rerank=False)
    assert [h.document_id for h in fused][:2] == [refunds["approved"].id, refunds["escalation"].id]
    assert all(h.rerank_score is None for h in fused)
    reranker.rerank_favour = "escalation"
    hits = search(user=alice, query=QUERY, k=2)
    assert [h.document_id for h in hits] == [refunds["escalation"].id, refunds["approved"].id]
    assert hits[0].rerank_score > hits[1].rerank_score
    (sent,) = reranker.requests_to("/rerank")
    assert sent["headers"]["Authorization"] == "Bearer sk-rerank"
    assert sent["body"]["model"] == "fake-reranker" and sent["body"]["query"] == QUERY
    # Only passages the user may read are sent, and more than the k asked for (up to the candidates).
    assert len(sent["body"]["documents"]) == 3
    assert not any("other team" in text for text in sent["body"]["documents"])


def test_a_text_embeddings_inference_reranker(alice, refunds, reranker, settings):
    settings.DOCENT_RERANK_API = "tei"
    reranking.get_reranker.cache_clear()
    reranker.rerank_favour = "escalation"
    hits = search(user=alice, query=QUERY, k=2)
    assert [h.document_id for h in hits] == [refunds["escalation"].id, refunds["approved"].id]
    (sent,) = reranker.requests_to("/rerank")
    assert set(sent["body"]) == {"query", "texts", "truncate"} and len(sent["body"]["texts"]) == 3


def test_the_reranker_sees_no_more_than_its_candidates(alice, refunds, reranker, settings):
    settings.DOCENT_RERANK_CANDIDATES = 2
    reranker.rerank_favour = "cafeteria"
    hits = search(user=alice, query=QUERY, k=3)
    (sent,) = reranker.requests_to("/rerank")
    assert len(sent["body"]["documents"]) == 2
    # The third fused candidate stays third: it was never reranked.
    assert [h.document_id for h in hits][2] == refunds["cafeteria"].id and hits[2].rerank_score is None


@pytest.mark.parametrize(
    ("fault", "reason"),
    [({"status": 500}, "http_500"), ({"malformed": True}, "malformed"), ({"stall": 3}, "timeout")],
)
def test_a_failing_reranker_leaves_the_fused_order(alice, refunds, reranker, fault, reason, caplog):
    fused = [h.document_id for h in search(user=alice, query=QUERY, k=3, rerank=False)]
    before = _failures(reason)
    reranker.rerank_favour = "escalation"
    reranker.add_fault(path="/rerank", **fault)
    started = time.monotonic()
    hits = search(user=alice, query=QUERY, k=3)
    assert time.monotonic() - started < 2.5  # the timeout (1 s), not the stall
    assert [h.document_id for h in hits] == fused and all(h.rerank_score is None for h in hits)
    assert _failures(reason) == before + 1
    assert "fused order kept" in caplog.text


def test_a_busy_reranker_is_asked_again_after_its_retry_after(alice, refunds, reranker):
    reranker.rerank_favour = "escalation"
    reranker.add_fault(path="/rerank", status=429, retry_after=0)
    hits = search(user=alice, query=QUERY, k=2)
    assert len(reranker.requests_to("/rerank")) == 2
    assert hits[0].document_id == refunds["escalation"].id


def test_the_search_api_reports_rerank_scores_and_can_skip_the_reranker(client, alice, refunds, reranker):
    reranker.rerank_favour = "escalation"
    headers = {"HTTP_AUTHORIZATION": f"Bearer {services.api_key_create(user=alice)[1]}"}
    found = client.post(
        "/api/v1/search", {"query": QUERY, "k": 2}, content_type="application/json", **headers
    ).json()["results"]
    assert [r["document_id"] for r in found] == [refunds["escalation"].id, refunds["approved"].id]
    assert found[0]["rerank_score"] > found[1]["rerank_score"]
    plain = client.post(
        "/api/v1/search",
        {"query": QUERY, "k": 2, "rerank": False},
        content_type="application/json",
        **headers,
    ).json()["results"]
    assert plain[0]["document_id"] == refunds["approved"].id and plain[0]["rerank_score"] is None


def test_reranking_is_off_without_a_model(settings):
    settings.DOCENT_RERANK_MODEL = ""
    reranking.get_reranker.cache_clear()
    try:
        assert reranking.get_reranker() is None
    finally:
        reranking.get_reranker.cache_clear()
