"""Chunks with given vectors, through the real write path (COPY, triggers) but without parsing or
embedding: for tests and benchmarks that need many chunks fast."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

MODEL = "sentence-transformers/all-MiniLM-L6-v2"


def prepare_chunks(collection, rows: Iterable[tuple[str, str, np.ndarray]], *, per_doc: int = 50):
    """(prepared, vectors) for `services._write_chunks`: the rows (text, heading path, vector) as
    documents of `per_doc` chunks each, created in `processing` as ingestion leaves them."""
    from retrieval.chunking import ChunkSpec
    from retrieval.models import Document

    rows = list(rows)
    prepared, vectors = [], {}
    for start in range(0, len(rows), per_doc):
        document = Document.objects.create(
            collection=collection,
            title=f"{collection.name} {start}",
            original_name=f"{start}.md",
            file=f"generated/{collection.id}/{start}",
            content_hash=f"{collection.id}-{start}",
            kind="markdown",
            size=1,
            status="processing",
        )
        specs = []
        for text, heading, vector in rows[start : start + per_doc]:
            spec = ChunkSpec(text, max(1, len(text.split())), heading, None, 0, 0, len(text))
            vectors[spec.content_hash] = vector
            specs.append(spec)
        prepared.append((document, specs))
    return prepared, vectors


def write_chunks(collection, rows, *, per_doc: int = 50) -> None:
    from retrieval.services import _write_chunks

    prepared, vectors = prepare_chunks(collection, rows, per_doc=per_doc)
    _write_chunks(prepared, vectors, MODEL)


def random_unit_vectors(rng, n: int, dims: int = 384) -> np.ndarray:
    v = rng.standard_normal((n, dims)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)
