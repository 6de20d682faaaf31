"""How the retrieval defaults were chosen, on the SciFact *train* queries, through the same search the
chat uses, on the collection `manage.py evaluate` loaded.

    python -m bench.tune           BM25 k1/b grid (keyword), then RRF k (hybrid), each a real search
    python -m bench.tune --fusion  fusion functions compared offline on the same two candidate lists
"""

from __future__ import annotations

import itertools
import sys

from .common import SHARED, setup_django


def _setup():
    setup_django()
    from retrieval import evaluation, services
    from retrieval.models import Collection, Document

    scifact = SHARED / "scifact"
    user = services.user_provision(username="evaluator", team_name="Evaluation")
    collection = Collection.objects.get(team__name="Evaluation", name="beir-scifact")
    names = {
        i: n.removesuffix(".md")
        for i, n in Document.objects.filter(collection=collection).values_list("id", "original_name")
    }
    judged = evaluation.read_qrels(scifact / "qrels" / "train.tsv")
    queries = [q for q in evaluation.read_jsonl(scifact / "queries.jsonl") if q["_id"] in judged]
    return user, collection, names, judged, queries


def grid() -> None:
    user, collection, names, judged, queries = _setup()
    from django.test import override_settings

    from retrieval import evaluation, selectors

    def ndcg(mode: str) -> float:
        total = 0.0
        for q in queries:
            hits = selectors.search(
                user=user, query=q["text"], collection_ids=[collection.id], k=100, depth=300, mode=mode
            )
            ranked = evaluation.dedupe(names[h.document_id] for h in hits)
            total += evaluation.ndcg_at_k(ranked, judged[q["_id"]], 10)
        return total / len(queries)

    best = (0.0, None)
    for k1, b in itertools.product((0.9, 1.2, 1.5), (0.5, 0.75, 0.9)):
        with override_settings(DOCENT_BM25_K1=k1, DOCENT_BM25_B=b):
            score = ndcg("keyword")
        print(f"keyword k1={k1} b={b}: nDCG@10 {score:.4f}", flush=True)
        best = max(best, (score, (k1, b)))
    k1, b = best[1]
    for rrf_k in (10, 30, 60, 100):
        with override_settings(DOCENT_BM25_K1=k1, DOCENT_BM25_B=b, DOCENT_RRF_K=rrf_k):
            print(f"hybrid k1={k1} b={b} rrf_k={rrf_k}: nDCG@10 {ndcg('hybrid'):.4f}", flush=True)


def fusion() -> None:
    """Each query's dense and BM25 top 100 (chunk, document, score), fused several ways."""
    user, collection, names, judged, queries = _setup()
    from retrieval import evaluation, selectors

    lists = []
    for q in queries:
        per_mode = []
        for mode in ("dense", "keyword"):
            hits = selectors.search(
                user=user, query=q["text"], collection_ids=[collection.id], k=100, depth=100, mode=mode
            )
            score = (lambda h: 1 - h.dense_distance) if mode == "dense" else (lambda h: h.bm25)
            per_mode.append([(h.chunk_id, names[h.document_id], score(h)) for h in hits])
        lists.append((q["_id"], *per_mode))

    def ndcg(fuse) -> float:
        total = 0.0
        for qid, dense, keyword in lists:
            scores, doc = fuse(dense, keyword), {c: d for c, d, _ in dense + keyword}
            ranked = evaluation.dedupe(doc[c] for c in sorted(scores, key=scores.get, reverse=True))
            total += evaluation.ndcg_at_k(ranked, judged[qid], 10)
        return total / len(lists)

    def rrf(k: int, dense_weight: float = 1.0):
        def fuse(dense, keyword):
            scores: dict[int, float] = {}
            for weight, ranked in ((dense_weight, dense), (1.0, keyword)):
                for r, (c, _, _) in enumerate(ranked, start=1):
                    scores[c] = scores.get(c, 0.0) + weight / (k + r)
            return scores

        return fuse

    def convex(alpha: float):
        """alpha * min-max(dense) + (1 - alpha) * min-max(BM25), over each list's own range."""

        def fuse(dense, keyword):
            scores: dict[int, float] = {}
            for weight, ranked in ((alpha, dense), (1 - alpha, keyword)):
                if ranked:
                    top, bottom = ranked[0][2], ranked[-1][2]
                    for c, _, s in ranked:
                        scores[c] = scores.get(c, 0.0) + weight * (s - bottom) / max(top - bottom, 1e-9)
            return scores

        return fuse

    def floored(fuse, floor: float):
        """BM25 hits under `floor` of the best one's score left out of the keyword list (those that
        hold only the query's commonest words), then fused."""

        def fused(dense, keyword):
            top = keyword[0][2] if keyword else 0.0
            return fuse(dense, [x for x in keyword if x[2] >= floor * top])

        return fused

    for floor in (0.05, 0.1, 0.15, 0.2, 0.3):
        print(f"RRF k=60, BM25 floor {floor}: {ndcg(floored(rrf(60), floor)):.4f}", flush=True)
    for k in (10, 30, 60, 100):
        print(f"RRF k={k}: {ndcg(rrf(k)):.4f}", flush=True)
    for weight in (0.6, 0.8, 1.2, 1.5):
        print(f"RRF k=60, dense weight {weight}: {ndcg(rrf(60, weight)):.4f}", flush=True)
    for alpha in (0.3, 0.4, 0.5, 0.6, 0.7):
        print(f"convex alpha={alpha}: {ndcg(convex(alpha)):.4f}", flush=True)


if __name__ == "__main__":
    fusion() if "--fusion" in sys.argv else grid()
    sys.exit(0)
