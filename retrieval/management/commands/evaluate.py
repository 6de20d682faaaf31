import io
import json
import time
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from retrieval import evaluation, reranking, selectors, services
from retrieval.models import Collection, Document


class Command(BaseCommand):
    help = (
        "Evaluate retrieval on BEIR-format files: the corpus goes through normal ingestion into a collection "
        "(reused when already loaded), every query runs through the chat's search, documents are scored by "
        "their best chunk; prints nDCG@10, Recall@100, MRR@10 and latency p50/p95."
    )

    def add_arguments(self, parser):
        parser.add_argument("--corpus", required=True)
        parser.add_argument("--queries", required=True)
        parser.add_argument("--qrels", required=True)
        parser.add_argument("--mode", choices=selectors.MODES, default="hybrid")
        parser.add_argument("--json", dest="json_out")
        parser.add_argument("--collection", help="collection name (default: derived from the corpus folder)")
        parser.add_argument("--limit", type=int, default=0, help="evaluate only the first N queries")
        parser.add_argument("--batch", type=int, default=64, help="documents per ingestion batch")
        parser.add_argument(
            "--no-rerank",
            action="store_true",
            help="leave out the reranker (DOCENT_RERANK_MODEL) when one is set",
        )

    def handle(
        self, *args, corpus, queries, qrels, mode, json_out, collection, limit, batch, no_rerank, **options
    ):
        corpus_path = Path(corpus)
        name = collection or f"beir-{corpus_path.resolve().parent.name}"
        user = services.user_provision(username="evaluator", team_name="Evaluation")
        team = user.teams.get(name="Evaluation")
        target, _ = Collection.objects.get_or_create(team=team, name=name, deleted_at=None)
        self._load(target, evaluation.read_jsonl(corpus_path), batch)

        doc_ids = dict(Document.objects.filter(collection=target).values_list("id", "original_name"))
        beir_id = {pk: name.removesuffix(".md") for pk, name in doc_ids.items()}
        judged = evaluation.read_qrels(qrels)
        wanted = [q for q in evaluation.read_jsonl(queries) if q["_id"] in judged]
        if limit:
            wanted = wanted[:limit]
        if not wanted:
            raise CommandError("no query has relevance judgements in the qrels file")

        ndcg, recall, mrr, latencies = [], [], [], []
        for q in wanted:
            started = time.perf_counter()
            hits = selectors.search(
                user=user,
                query=q["text"],
                collection_ids=[target.id],
                k=300,
                depth=300,
                mode=mode,
                rerank=not no_rerank,
            )
            latencies.append((time.perf_counter() - started) * 1000)
            ranked = evaluation.dedupe(beir_id[h.document_id] for h in hits)
            rel = judged[q["_id"]]
            ndcg.append(evaluation.ndcg_at_k(ranked, rel, 10))
            recall.append(evaluation.recall_at_k(ranked, rel, 100))
            mrr.append(evaluation.mrr_at_k(ranked, rel, 10))
        n = len(wanted)
        report = {
            "mode": mode,
            "queries": n,
            "documents": len(doc_ids),
            "ndcg@10": round(sum(ndcg) / n, 4),
            "recall@100": round(sum(recall) / n, 4),
            "mrr@10": round(sum(mrr) / n, 4),
            "latency_ms_p50": round(evaluation.percentile(latencies, 50), 2),
            "latency_ms_p95": round(evaluation.percentile(latencies, 95), 2),
        }
        reranker = None if no_rerank else reranking.get_reranker()
        if reranker is not None:
            report["reranker"] = reranker.model_name
        for key, value in report.items():
            self.stdout.write(f"{key:16} {value}")
        if json_out:
            Path(json_out).write_text(json.dumps(report, indent=2))

    def _load(self, target: Collection, docs: list[dict], batch: int) -> None:
        """Upload what is missing and ingest what is not ready, through the normal ingestion path."""
        have = set(Document.objects.filter(collection=target).values_list("original_name", flat=True))
        for doc in docs:
            filename = f"{doc['_id']}.md"
            if filename in have:
                continue
            body = f"# {doc.get('title') or doc['_id']}\n\n{doc.get('text', '')}".encode()
            services.document_create(
                collection=target, file=io.BytesIO(body), filename=filename, enqueue=False
            )
        pending = list(
            Document.objects.filter(collection=target)
            .exclude(status=Document.Status.READY)
            .values_list("id", flat=True)
        )
        if not pending:
            return
        self.stderr.write(f"ingesting {len(pending)} documents into {target}…")
        started = time.perf_counter()
        for i in range(0, len(pending), batch):
            services.documents_ingest(document_ids=pending[i : i + batch])
            done = min(i + batch, len(pending))
            rate = done / (time.perf_counter() - started)
            self.stderr.write(f"  {done}/{len(pending)} documents ({rate:.1f}/s)")
