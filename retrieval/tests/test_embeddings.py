import numpy as np
import pytest

from retrieval.embeddings import EmbeddingError, TransientEmbeddingError
from retrieval.embeddings.local import LocalEmbedder, batches_by_length
from retrieval.embeddings.openai import OpenAIEmbedder


def openai_embedder(fake, **kw):
    return OpenAIEmbedder(
        model_name="text-embedding-3-small",
        dimensions=384,
        api_key="test",
        base_url=fake.base_url,
        batch_size=kw.pop("batch_size", 4),
        timeout=5,
        max_retries=kw.pop("max_retries", 2),
        retry_after_cap=2,
        **kw,
    )


def test_openai_batches_and_asks_for_fixed_dimensions(fake_openai):
    vectors = openai_embedder(fake_openai).embed([f"text {i}" for i in range(10)])
    assert vectors.shape == (10, 384) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    calls = fake_openai.requests_to("/embeddings")
    assert [len(c["body"]["input"]) for c in calls] == [4, 4, 2]
    assert all(c["body"]["dimensions"] == 384 for c in calls)


def test_openai_retries_429_honouring_retry_after(fake_openai):
    import time

    fake_openai.add_fault(path="/embeddings", status=429, retry_after=1)
    fake_openai.add_fault(path="/embeddings", status=503)
    started = time.monotonic()
    vectors = openai_embedder(fake_openai).embed(["hello"])
    assert vectors.shape == (1, 384)
    assert time.monotonic() - started >= 1.0  # waited as told
    assert len(fake_openai.requests_to("/embeddings")) == 3


def test_openai_gives_up_as_transient_after_retries(fake_openai):
    for _ in range(3):
        fake_openai.add_fault(path="/embeddings", status=500)
    with pytest.raises(TransientEmbeddingError):
        openai_embedder(fake_openai, max_retries=2).embed(["hello"])


def test_openai_client_errors_are_final(fake_openai):
    fake_openai.add_fault(path="/embeddings", status=400)
    with pytest.raises(EmbeddingError) as info:
        openai_embedder(fake_openai).embed(["hello"])
    assert not isinstance(info.value, TransientEmbeddingError)
    assert len(fake_openai.requests_to("/embeddings")) == 1


def test_local_embedder_is_normalised_and_semantic():
    embedder = LocalEmbedder(model_name="sentence-transformers/all-MiniLM-L6-v2")
    a, b, c = embedder.embed(
        ["How do I reset my password?", "Steps to change a forgotten password", "Tomato soup recipe"]
    )
    assert np.isclose(np.linalg.norm(a), 1.0, atol=1e-4)
    assert a @ b > a @ c + 0.2


def test_local_embedder_refuses_other_models():
    with pytest.raises(EmbeddingError):
        LocalEmbedder(model_name="bge-large")


def test_texts_of_unlike_lengths_are_batched_apart():
    """A batch is padded to its longest text: one long sentence among short ones goes alone, rather
    than making the short ones cost as much as it; texts of like lengths fill batches of `most`."""
    batches = batches_by_length([30, 250, 28, 31, 29], most=64)
    assert batches == [[1], [3, 0, 4, 2]]
    even = batches_by_length([200 + i % 7 for i in range(150)], most=64)
    assert [len(b) for b in even] == [64, 64, 22]
    assert sorted(i for b in even for i in b) == list(range(150))
    assert batches_by_length([], most=64) == []


def test_local_embedder_returns_each_texts_vector_in_its_place():
    embedder = LocalEmbedder(model_name="sentence-transformers/all-MiniLM-L6-v2")
    texts = [
        "Leave requests go to your manager.",
        " ".join(["The sweep re-queues stuck documents."] * 20),
        "Hi",
    ]
    together = embedder.embed(texts)
    alone = np.vstack([embedder.embed([t]) for t in texts])
    assert together.shape == (3, 384) and together.dtype == np.float32
    assert np.allclose(together, alone, atol=1e-4)
    assert embedder.embed([]).shape == (0, 384)
