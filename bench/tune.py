"""How the retrieval defaults were chosen: a small grid on the SciFact *train* queries, through the
same search the chat uses, on the collection `manage.py evaluate` loaded. Run: python -m bench.tune"""

from __future__ import annotations

import itertools
import sys

from .common import SHARED, setup_django


def main() -> int:
    setup_django()
    from django.test import override_settings

    from retrieval import evaluation, selectors, services
    from retrieval.models import Collection, Document

    scifact = SHARED / "scifact"
    user = services.user_provision(username="evaluator", team_name="Evaluation")
    collection = Collection.objects.get(team__name="Evaluation", name="beir-scifact")
    names = dict(Document.objects.filter(collection=collection).values_list("id", "original_name"))
    judged = evaluation.read_qrels(scifact / "qrels" / "train.tsv")
    queries = [q for q in evaluation.read_jsonl(scifact / "queries.jsonl") if q["_id"] in judged]

    def ndcg(mode: str) -> float:
        total = 0.0
        for q in queries:
            hits = selectors.search(
                user=user, query=q["text"], collection_ids=[collection.id], k=100, depth=300, mode=mode
            )
            ranked = evaluation.dedupe(names[h.document_id].removesuffix(".md") for h in hits)
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
    return 0


if __name__ == "__main__":
    sys.exit(main())
