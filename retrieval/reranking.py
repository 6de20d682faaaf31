"""The second stage of search: a cross-encoder re-scores the best fused candidates.

Off by default (nothing offline ships one). With `DOCENT_RERANK_MODEL` set, candidates go to a
rerank endpoint in one of two formats (`DOCENT_RERANK_API`):
- `cohere`, which vLLM, llama.cpp's server, Infinity, Jina and Cohere share:
  `POST {"model", "query", "documents": [...], "top_n"}` answered by
  `{"results": [{"index", "relevance_score"}]}`;
- `tei`, Hugging Face's text-embeddings-inference: `POST {"query", "texts": [...], "truncate"}`
  answered by `[{"index", "score"}]`.
A reranker that fails or is slow costs the search its second stage, never its answer: the caller
keeps the fused order.
"""

from __future__ import annotations

import abc
import functools
import time
from collections.abc import Sequence

import httpx

APIS = ("cohere", "tei")


class RerankError(RuntimeError):
    """The reranker gave no usable scores; `reason` is a short label for metrics."""

    def __init__(self, message: str, reason: str):
        super().__init__(message)
        self.reason = reason


class Reranker(abc.ABC):
    model_name: str

    @abc.abstractmethod
    def rerank(self, query: str, texts: Sequence[str]) -> list[float]:
        """One relevance score per text, in the texts' order (higher is more relevant)."""


class HTTPReranker(Reranker):
    """A rerank endpoint over HTTP; one retry after a 429 or 503 whose Retry-After fits the timeout."""

    def __init__(
        self, *, model_name: str, url: str, api_key: str = "", timeout: float = 5.0, api: str = "cohere"
    ):
        if api not in APIS:
            raise ValueError(f"rerank API {api!r}: expected one of {', '.join(APIS)}")
        self.model_name = model_name
        self.url = url
        self.timeout = timeout
        self.api = api
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.client = httpx.Client(headers=headers, timeout=httpx.Timeout(timeout, connect=min(timeout, 2.0)))

    def rerank(self, query: str, texts: Sequence[str]) -> list[float]:
        if self.api == "tei":  # the server holds one model; passages longer than it reads are cut
            body = {"query": query, "texts": list(texts), "truncate": True}
        else:
            body = {"model": self.model_name, "query": query, "documents": list(texts), "top_n": len(texts)}
        deadline = time.monotonic() + self.timeout
        for attempt in range(2):
            try:
                response = self.client.post(self.url, json=body)
            except httpx.TimeoutException as exc:
                raise RerankError(f"no answer within {self.timeout:g} s", "timeout") from exc
            except httpx.HTTPError as exc:
                raise RerankError(f"unreachable: {exc}", "unreachable") from exc
            if response.status_code in (429, 503) and attempt == 0:
                wait = _retry_after(response)
                if wait is not None and time.monotonic() + wait < deadline:
                    time.sleep(wait)
                    continue
            if response.status_code != 200:
                raise RerankError(f"answered {response.status_code}", f"http_{response.status_code}")
            return _scores(response, len(texts))
        raise AssertionError("unreachable")  # the second attempt returns or raises


def _retry_after(response: httpx.Response) -> float | None:
    try:
        return max(0.0, float(response.headers.get("retry-after", "")))
    except ValueError:
        return None


def _scores(response: httpx.Response, n: int) -> list[float]:
    try:
        body = response.json()
        results = body if isinstance(body, list) else body["results"]  # tei's list, or cohere's
        scores: list[float | None] = [None] * n
        for item in results:
            scores[int(item["index"])] = float(
                item["relevance_score"] if "relevance_score" in item else item["score"]
            )
    except (ValueError, KeyError, TypeError, IndexError) as exc:
        raise RerankError(f"unreadable answer: {exc!r}", "malformed") from exc
    if any(s is None for s in scores):
        raise RerankError("the answer left out some passages", "malformed")
    return scores  # type: ignore[return-value]


@functools.lru_cache(maxsize=1)
def get_reranker() -> Reranker | None:
    """The configured reranker, or None when reranking is off."""
    from django.conf import settings

    if not settings.DOCENT_RERANK_MODEL:
        return None
    return HTTPReranker(
        model_name=settings.DOCENT_RERANK_MODEL,
        url=settings.DOCENT_RERANK_URL,
        api_key=settings.DOCENT_RERANK_API_KEY,
        timeout=settings.DOCENT_RERANK_TIMEOUT_S,
        api=settings.DOCENT_RERANK_API,
    )
