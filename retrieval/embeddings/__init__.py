"""Embedders behind one small interface, chosen by settings.DOCENT_EMBEDDING_BACKEND."""

from __future__ import annotations

import functools

from .base import Embedder, EmbeddingError, TransientEmbeddingError


@functools.cache
def get_embedder() -> Embedder:
    from django.conf import settings

    backend = settings.DOCENT_EMBEDDING_BACKEND
    if backend == "local":
        from .local import LocalEmbedder

        return LocalEmbedder(
            model_name=settings.DOCENT_EMBEDDING_MODEL,
            batch_size=settings.DOCENT_EMBEDDING_BATCH,
        )
    if backend == "openai":
        from .openai import OpenAIEmbedder

        return OpenAIEmbedder(
            model_name=settings.DOCENT_EMBEDDING_MODEL,
            dimensions=settings.DOCENT_EMBEDDING_DIMENSIONS,
            api_key=settings.OPENAI_API_KEY or "not-needed",
            base_url=settings.OPENAI_BASE_URL or None,
            batch_size=settings.DOCENT_EMBEDDING_BATCH,
            timeout=settings.DOCENT_PROVIDER_TIMEOUT_S,
            max_retries=settings.DOCENT_PROVIDER_MAX_RETRIES,
            retry_after_cap=settings.DOCENT_RETRY_AFTER_CAP_S,
        )
    raise ValueError(f"unknown DOCENT_EMBEDDING_BACKEND {backend!r} (expected 'local' or 'openai')")


__all__ = ["Embedder", "EmbeddingError", "TransientEmbeddingError", "get_embedder"]


def count_tokens(text: str) -> int:
    """Tokens in text by the local WordPiece tokenizer: offline, and close to BPE counts for prose."""
    from .base import wordpiece_offsets

    return len(wordpiece_offsets(text))
