"""Ingestion of the SciFact corpus: end-to-end chunks/s against the embedder alone on the same texts,
the time split by stage, the insert path against langchain-postgres's PGVectorStore, and peak memory."""

from __future__ import annotations

import contextlib
import io
import multiprocessing
import os
import time

from .common import SHARED, read_jsonl, result, rss_mb, setup_django, sqlalchemy_url

BATCH_DOCS = 64  # documents per ingestion task, as `manage.py ingest` queues them


def _ingest_child(ids: list[int]) -> dict:
    """Runs in a fresh process, like a worker: returns stage times, wall time and peak RSS."""
    from retrieval import services
    from retrieval.embeddings import get_embedder

    get_embedder().embed(["warm up the model"])  # a worker loads its model once, before its first task
    totals = services.IngestStats()
    started = time.perf_counter()
    for i in range(0, len(ids), BATCH_DOCS):
        stats = services.documents_ingest(document_ids=ids[i : i + BATCH_DOCS], reuse_vectors=False)
        totals.chunks += stats.chunks
        totals.ready += stats.ready
        totals.failed += stats.failed
        for k, v in stats.seconds.items():
            totals.seconds[k] += v
    wall = time.perf_counter() - started
    return {
        "wall": wall,
        "chunks": totals.chunks,
        "ready": totals.ready,
        "failed": totals.failed,
        "seconds": totals.seconds,
        "rss_mb": rss_mb(),
    }


def _new_collection(name: str):
    """A collection in the group's scratch database, which starts empty: nothing older to clear."""
    from retrieval import services
    from retrieval.models import Collection

    return Collection.objects.create(team=services.team_get_or_create(name="Bench"), name=name)


def _upload_corpus(collection, corpus: list[dict]) -> list[int]:
    from retrieval import services

    ids = []
    for doc in corpus:
        data = f"# {doc.get('title') or doc['_id']}\n\n{doc['text']}".encode()
        document, created = services.document_create(
            collection=collection, file=io.BytesIO(data), filename=f"{doc['_id']}.md", enqueue=False
        )
        if created:
            ids.append(document.id)
    return ids


def _embed_only(texts: list[str]) -> float:
    from retrieval.embeddings import get_embedder

    embedder = get_embedder()
    embedder.embed(["warm up the model"])
    started = time.perf_counter()
    for i in range(0, len(texts), 256):
        embedder.embed(texts[i : i + 256])
    return len(texts) / (time.perf_counter() - started)


HNSW_SQL = (
    "CREATE INDEX chunk_embedding_hnsw ON retrieval_chunk USING hnsw (embedding vector_cosine_ops)"
    " WITH (m = 16, ef_construction = 64)"
)


def _insert_rows(collection, n: int) -> list[tuple[str, str, object]]:
    """(heading, text, vector) rows: the real SciFact chunks just ingested, cycled up to n rows."""
    from retrieval.models import Chunk

    chunks = list(
        Chunk.objects.filter(collection=collection)
        .order_by("id")
        .values_list("heading_path", "text", "embedding")[:n]
    )
    return [
        (chunks[i % len(chunks)][0], f"{chunks[i % len(chunks)][1]} ({i})", chunks[i % len(chunks)][2])
        for i in range(n)
    ]


def _docent_insert(rows, *, vector_index: bool = True) -> float:
    """The real write path (delete old chunks, binary COPY, mark ready) for documents being processed."""
    from django.db import connection

    from retrieval.services import _write_chunks
    from tests.support.chunks import MODEL, prepare_chunks

    collection = _new_collection("insert-bench")
    prepared, vectors = prepare_chunks(collection, [(text, heading, v) for heading, text, v in rows])
    if not vector_index:
        with connection.cursor() as cursor:
            cursor.execute("DROP INDEX chunk_embedding_hnsw")
    try:
        started = time.perf_counter()
        _write_chunks(prepared, vectors, MODEL)
        return len(rows) / (time.perf_counter() - started)
    finally:
        with connection.cursor() as cursor:  # the scratch database holds nothing else: start empty again
            cursor.execute("TRUNCATE retrieval_chunk")
        collection.delete()
        if not vector_index:
            with connection.cursor() as cursor:
                cursor.execute(HNSW_SQL)


def _peer_insert(rows, *, vector_index: bool = True) -> float:
    """langchain-postgres PGVectorStore's add path on the same rows, with the same indexes (HNSW, GIN)."""
    from django.db import connection
    from langchain_core.embeddings import Embeddings
    from langchain_postgres import PGEngine, PGVectorStore
    from langchain_postgres.v2.hybrid_search_config import HybridSearchConfig
    from langchain_postgres.v2.indexes import HNSWIndex

    class Precomputed(Embeddings):
        def embed_documents(self, texts):
            raise NotImplementedError

        def embed_query(self, text):
            raise NotImplementedError

    engine = PGEngine.from_connection_string(sqlalchemy_url())
    hybrid = HybridSearchConfig(tsv_column="content_tsv", tsv_lang="pg_catalog.english")
    engine.init_vectorstore_table(
        "bench_langchain", 384, overwrite_existing=True, hybrid_search_config=hybrid
    )
    store = PGVectorStore.create_sync(engine, Precomputed(), "bench_langchain", hybrid_search_config=hybrid)
    if vector_index:
        store.apply_vector_index(HNSWIndex())
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE INDEX IF NOT EXISTS bench_langchain_tsv ON bench_langchain USING gin (content_tsv)"
        )
    texts = [text for _, text, _ in rows]
    embeddings = [vector.tolist() for _, _, vector in rows]
    metadatas = [{"title": heading} for heading, _, _ in rows]
    started = time.perf_counter()
    store.add_embeddings(texts, embeddings, metadatas=metadatas)
    rate = len(rows) / (time.perf_counter() - started)
    engine.drop_table("bench_langchain")
    return rate


def _insert_child(rows) -> dict:
    """Both write paths, each from an empty chunk table (an HNSW graph of the same size, the same
    cache). Runs in its own process."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE retrieval_chunk")
    return {
        "docent": _docent_insert(rows),
        "peer": _peer_insert(rows),
        "docent_bare": _docent_insert(rows, vector_index=False),
        "peer_bare": _peer_insert(rows, vector_index=False),
    }


def _child_setup(url: str) -> None:
    os.environ["DATABASE_URL"] = url
    setup_django()


def _in_child(url: str, function, *args):
    """function(*args) in a fresh process (a worker's memory and caches) on the database at url."""
    context = multiprocessing.get_context("spawn")
    pool = context.Pool(1, initializer=_child_setup, initargs=(url,))
    try:
        return pool.apply(function, args)
    finally:
        pool.close()  # let the child exit on its own: terminating it leaks its semaphores
        pool.join()


@contextlib.contextmanager
def _scratch_database(name: str = "docent_ingest_bench"):
    """The group runs in a database made for it: what the other benchmarks keep in the bench database
    (100k synthetic chunks and their HNSW graph) would otherwise slow every insert measured here, and
    by how much would depend on which benchmarks ran before."""
    from django.core.management import call_command
    from django.db import connection

    from tests.support.processes import database_url

    with connection.cursor() as cursor:
        cursor.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        cursor.execute(f"CREATE DATABASE {name}")
    original = connection.settings_dict["NAME"]
    connection.close()
    connection.settings_dict["NAME"] = name
    try:
        call_command("migrate", verbosity=0)
        yield database_url(connection.settings_dict)
    finally:
        connection.close()
        connection.settings_dict["NAME"] = original
        with connection.cursor() as cursor:
            cursor.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def _remove_files(collection) -> None:
    from pathlib import Path

    from django.conf import settings

    from retrieval.models import Document

    for file_name in Document.objects.filter(collection=collection).values_list("file", flat=True):
        (Path(settings.MEDIA_ROOT) / file_name).unlink(missing_ok=True)


def run() -> list[dict]:
    with _scratch_database() as url:
        return _run(url)


def _run(url: str) -> list[dict]:
    from retrieval.models import Chunk

    corpus = read_jsonl(SHARED / "scifact" / "corpus.jsonl.gz")
    limit = int(os.environ.get("BENCH_INGEST_DOCS") or 0) or len(corpus)
    collection = _new_collection("ingest-bench")
    ids = _upload_corpus(collection, corpus[:limit])
    print(f"   {len(ids)} SciFact documents uploaded; ingesting in a fresh worker-like process", flush=True)
    e2e = _in_child(url, _ingest_child, ids)
    e2e_rate = e2e["chunks"] / e2e["wall"]
    texts = [
        f"{h}\n{t}" if h else t
        for h, t in Chunk.objects.filter(collection=collection)
        .order_by("id")
        .values_list("heading_path", "text")
    ]
    embed_rate = _embed_only(texts)
    rows = _insert_rows(collection, int(os.environ.get("BENCH_INSERT_ROWS") or 5_000))
    print(f"   insert paths compared on the same {len(rows)} rows, each from an empty table", flush=True)
    _remove_files(collection)
    rates = _in_child(url, _insert_child, rows)
    docent_rate, peer_rate = rates["docent"], rates["peer"]
    docent_bare, peer_bare = rates["docent_bare"], rates["peer_bare"]
    ratio = e2e_rate / embed_rate
    return [
        result("ingest.documents", e2e["ready"], "docs", failed=e2e["failed"]),
        result("ingest.chunks", e2e["chunks"], "chunks"),
        result(
            "ingest.chunks_per_s",
            e2e_rate,
            "chunks/s",
            peer="embedder alone, same texts",
            peer_value=round(embed_rate, 1),
            ratio=ratio,
            target=">= 0.9",
            met=ratio >= 0.9,
        ),
        result("ingest.embed_only_chunks_per_s", embed_rate, "chunks/s"),
        *[result(f"ingest.{stage}_s", seconds, "s") for stage, seconds in e2e["seconds"].items()],
        result("ingest.wall_s", e2e["wall"], "s"),
        result(
            "ingest.insert_rows_per_s",
            docent_rate,
            "rows/s",
            peer="langchain-postgres PGVectorStore",
            peer_value=round(peer_rate, 1),
            ratio=docent_rate / peer_rate,
            target=">= 20",
            met=docent_rate / peer_rate >= 20,
        ),
        result(
            "ingest.insert_rows_per_s_without_vector_index",
            docent_bare,
            "rows/s",
            peer="langchain-postgres PGVectorStore",
            peer_value=round(peer_bare, 1),
            ratio=docent_bare / peer_bare,
            target=">= 20",
            met=docent_bare / peer_bare >= 20,
        ),
        result("ingest.worker_peak_rss_mb", e2e["rss_mb"], "MB"),
    ]
