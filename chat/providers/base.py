"""The chat-model interface: an async stream of text deltas ending with a finish event."""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator
from dataclasses import dataclass

from chat.prompts import Prompt


@dataclass(frozen=True)
class Delta:
    text: str


@dataclass(frozen=True)
class Finish:
    finish_reason: str  # "stop" or "length"
    prompt_tokens: int = 0
    completion_tokens: int = 0


class ProviderError(RuntimeError):
    """The provider could not start an answer (after the retries allowed before the first token)."""

    def __init__(self, message: str, *, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after


class StreamInterrupted(RuntimeError):
    """The answer had started but the stream broke, stalled, ended early or sent garbage."""


class ChatModel(abc.ABC):
    name: str

    @abc.abstractmethod
    def stream(self, prompt: Prompt, *, max_tokens: int) -> AsyncIterator[Delta | Finish]:
        """Yield Delta events, then exactly one Finish; raise ProviderError or StreamInterrupted."""

    async def rewrite(self, messages: list[dict], *, max_tokens: int = 64) -> str | None:
        """A short non-streamed completion (query rewriting); None when the backend has no model."""
        return None
