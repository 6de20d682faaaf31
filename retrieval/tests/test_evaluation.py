import io
import json
import math

import pytest
from django.core.management import call_command

from retrieval import evaluation


def test_metrics_by_hand():
    ranked = ["d3", "d1", "d9", "d2"]
    relevant = {"d1": 1, "d2": 2}
    dcg = 1 / math.log2(3) + 2 / math.log2(5)
    idcg = 2 / math.log2(2) + 1 / math.log2(3)
    assert evaluation.ndcg_at_k(ranked, relevant, 10) == pytest.approx(dcg / idcg)
    assert evaluation.ndcg_at_k(ranked, relevant, 1) == 0.0
    assert evaluation.recall_at_k(ranked, relevant, 2) == 0.5
    assert evaluation.mrr_at_k(ranked, relevant, 10) == 0.5
    assert evaluation.dedupe(["a", "b", "a", "c"]) == ["a", "b", "c"]
    assert evaluation.percentile([5, 1, 3, 2, 4], 50) == 3


@pytest.fixture
def beir(tmp_path):
    corpus = [
        {"_id": "c1", "title": "Volcanoes", "text": "Magma rises through the crust and erupts as lava."},
        {"_id": "c2", "title": "Glaciers", "text": "Ice sheets carve valleys as glaciers move slowly."},
        {"_id": "c3", "title": "Deserts", "text": "Dunes form where wind moves sand across dry land."},
    ]
    queries = [
        {"_id": "q1", "text": "magma lava erupts"},
        {"_id": "q2", "text": "glaciers carve valleys"},
        {"_id": "q3", "text": "unjudged query"},
    ]
    (tmp_path / "corpus.jsonl").write_text("\n".join(json.dumps(c) for c in corpus))
    (tmp_path / "queries.jsonl").write_text("\n".join(json.dumps(q) for q in queries))
    # q2's relevant documents are the glacier one (graded 2) and the desert one (1), which it will miss.
    (tmp_path / "qrels.tsv").write_text("query-id\tcorpus-id\tscore\nq1\tc1\t1\nq2\tc2\t2\nq2\tc3\t1\n")
    return tmp_path


def test_evaluate_on_tiny_beir_fixture(db, beir):
    """Keyword mode finds c1 for q1 and only c2 for q2; the metrics are the hand-computed ones."""
    out = io.StringIO()
    args = [
        "evaluate",
        "--corpus",
        str(beir / "corpus.jsonl"),
        "--queries",
        str(beir / "queries.jsonl"),
        "--qrels",
        str(beir / "qrels.tsv"),
        "--mode",
        "keyword",
        "--json",
        str(beir / "out.json"),
    ]
    call_command(*args, stdout=out, stderr=io.StringIO())
    report = json.loads((beir / "out.json").read_text())
    ndcg_q2 = (2 / math.log2(2)) / (2 / math.log2(2) + 1 / math.log2(3))
    assert report["queries"] == 2 and report["documents"] == 3
    assert report["ndcg@10"] == round((1.0 + ndcg_q2) / 2, 4)
    assert report["recall@100"] == round((1.0 + 0.5) / 2, 4)
    assert report["mrr@10"] == 1.0
    assert report["latency_ms_p95"] >= report["latency_ms_p50"] > 0
    assert "ndcg@10" in out.getvalue()
    # A second run reuses the loaded collection.
    from retrieval.models import Document

    call_command(*args, stdout=io.StringIO(), stderr=io.StringIO())
    assert Document.objects.count() == 3


def test_evaluate_runs_through_the_reranker_unless_told_not_to(db, beir, reranker):
    """With a reranker configured, every query goes through it and the report names it; with
    --no-rerank neither (the fake reranker puts the desert first for every query: q1's MRR drops)."""
    reranker.rerank_favour = "Dunes"
    args = ["evaluate", "--corpus", str(beir / "corpus.jsonl"), "--queries", str(beir / "queries.jsonl"),
            "--qrels", str(beir / "qrels.tsv"), "--json", str(beir / "out.json")]  # fmt: skip
    call_command(*args, stdout=io.StringIO(), stderr=io.StringIO())
    reranked = json.loads((beir / "out.json").read_text())
    assert len(reranker.requests_to("/rerank")) == 2
    call_command(*args, "--no-rerank", stdout=io.StringIO(), stderr=io.StringIO())
    plain = json.loads((beir / "out.json").read_text())
    assert len(reranker.requests_to("/rerank")) == 2
    assert reranked["reranker"] == "fake-reranker" and "reranker" not in plain
    assert plain["mrr@10"] == 1.0 and reranked["mrr@10"] < 1.0
