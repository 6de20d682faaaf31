from __future__ import annotations

import logging
import time
from collections.abc import Sequence

import numpy as np

from .base import Embedder, EmbeddingError, TransientEmbeddingError

log = logging.getLogger(__name__)


def retry_delay(exc: Exception, attempt: int, *, cap: float) -> float:
    """Seconds to wait before retrying an OpenAI-compatible call: the server's Retry-After when it
    sent one, else exponential backoff; never more than cap."""
    response = getattr(exc, "response", None)
    header = response.headers.get("retry-after") if response is not None else None
    try:
        delay = float(header) if header else 0.5 * 2**attempt
    except ValueError:
        delay = 0.5 * 2**attempt
    return min(max(delay, 0.0), cap)


class OpenAIEmbedder(Embedder):
    """/v1/embeddings at any OpenAI-compatible server, batched, retried on 429/5xx honouring Retry-After."""

    max_input_tokens = 8000

    def __init__(
        self,
        *,
        model_name: str,
        dimensions: int,
        api_key: str,
        base_url: str | None,
        batch_size: int = 64,
        timeout: float = 60.0,
        max_retries: int = 3,
        retry_after_cap: float = 20.0,
    ):
        import openai

        self.model_name = model_name
        self.dimensions = dimensions
        self.batch_size = batch_size
        self.max_retries = max_retries
        self.retry_after_cap = retry_after_cap
        # The client's own retries are off: ours honour Retry-After with a cap and say what happened.
        self.client = openai.OpenAI(api_key=api_key, base_url=base_url, timeout=timeout, max_retries=0)

    def _retry_delay(self, exc, attempt: int) -> float:
        return retry_delay(exc, attempt, cap=self.retry_after_cap)

    def _embed_batch(self, batch: list[str]) -> np.ndarray:
        import openai

        for attempt in range(self.max_retries + 1):
            try:
                response = self.client.embeddings.create(
                    model=self.model_name, input=batch, dimensions=self.dimensions
                )
                break
            except (openai.RateLimitError, openai.InternalServerError, openai.APIConnectionError) as exc:
                if attempt == self.max_retries:
                    raise TransientEmbeddingError(f"embedding provider unavailable: {exc}") from exc
                delay = self._retry_delay(exc, attempt)
                log.warning("embedding call failed (%s); retrying in %.1fs", type(exc).__name__, delay)
                time.sleep(delay)
            except openai.APIStatusError as exc:
                raise EmbeddingError(f"embedding provider refused the request: {exc}") from exc
        data = sorted(response.data, key=lambda d: d.index)
        vectors = np.asarray([d.embedding for d in data], dtype=np.float32)
        if vectors.shape != (len(batch), self.dimensions):
            raise EmbeddingError(
                f"embedding provider returned vectors of shape {vectors.shape}, expected {self.dimensions} dimensions"
            )
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        return vectors / np.where(norms == 0, 1, norms)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimensions), dtype=np.float32)
        parts = [
            self._embed_batch(list(texts[i : i + self.batch_size]))
            for i in range(0, len(texts), self.batch_size)
        ]
        return np.vstack(parts)

    def check(self) -> None:
        self._embed_batch(["ping"])
