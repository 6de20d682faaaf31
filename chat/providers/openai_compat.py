"""Any OpenAI-compatible server through the official client, streamed.

Retries happen only before the first token and only for 429, 5xx and connection failures, honouring
Retry-After up to a cap: once text has reached the user, a retry would repeat or contradict it. After
the first token, a broken, stalled, truncated or malformed stream becomes StreamInterrupted and the
caller keeps the partial text.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator

import httpx
import openai

from chat.prompts import Prompt
from retrieval.embeddings.openai import retry_delay

from .base import ChatModel, Delta, Finish, ProviderError, StreamInterrupted

log = logging.getLogger(__name__)
RETRYABLE = (
    openai.RateLimitError,
    openai.InternalServerError,
    openai.APIConnectionError,
    openai.APITimeoutError,
)


async def sse_chunks(response: httpx.Response) -> AsyncIterator[dict]:
    """The JSON objects of a chat-completions event stream, until [DONE]. A chunk that is not JSON
    raises ValueError; an error event raises openai.APIError."""
    data: list[str] = []
    async for line in response.aiter_lines():
        if line:
            field, _, value = line.partition(":")
            if field == "data":
                data.append(value[1:] if value.startswith(" ") else value)
            continue  # comments (":"), event names and ids carry nothing for chat completions
        if data:
            payload, data = "\n".join(data), []
            if payload.startswith("[DONE]"):
                return
            yield _chunk(payload, response)
    if data and not data[0].startswith("[DONE]"):  # a last event without its blank line
        yield _chunk("\n".join(data), response)


def _chunk(payload: str, response: httpx.Response) -> dict:
    chunk = json.loads(payload)
    if not isinstance(chunk, dict):
        raise ValueError("a stream chunk is not a JSON object")
    if chunk.get("error"):
        error = chunk["error"]
        message = error.get("message") if isinstance(error, dict) else None
        raise openai.APIError(
            message or "the provider reported an error mid-stream", response.request, body=error
        )
    return chunk


class OpenAIChatModel(ChatModel):
    def __init__(
        self,
        *,
        model: str,
        api_key: str,
        base_url: str | None,
        connect_timeout: float = 5.0,
        first_token_timeout: float = 30.0,
        total_timeout: float = 120.0,
        max_retries: int = 3,
        retry_after_cap: float = 20.0,
    ):
        self.name = model
        self.first_token_timeout = first_token_timeout
        self.total_timeout = total_timeout
        self.max_retries = max_retries
        self.retry_after_cap = retry_after_cap
        self.client = openai.AsyncOpenAI(
            api_key=api_key,
            base_url=base_url,
            max_retries=0,  # retries are ours: only before the first token
            timeout=httpx.Timeout(total_timeout, connect=connect_timeout),
        )

    def _delay(self, exc: Exception, attempt: int) -> float:
        return retry_delay(exc, attempt, cap=self.retry_after_cap)

    async def stream(self, prompt: Prompt, *, max_tokens: int) -> AsyncIterator[Delta | Finish]:
        started = time.monotonic()
        attempt = 0
        while True:
            response = None
            try:
                # The raw streamed response: the client still sends the request and turns error
                # statuses into its exceptions, but the chunks are read as plain JSON (building the
                # client's models for every chunk was a quarter of the server's time at 500 streams).
                raw = await asyncio.wait_for(
                    self.client.chat.completions.with_raw_response.create(
                        model=self.name,
                        messages=prompt.messages,
                        max_tokens=max_tokens,
                        stream=True,
                        stream_options={"include_usage": True},
                        temperature=0.2,
                    ),
                    self.first_token_timeout,
                )
                response = raw.http_response
                iterator = sse_chunks(response)
                first = await asyncio.wait_for(iterator.__anext__(), self._left(started, first=True))
                break
            except (*RETRYABLE, httpx.TransportError, TimeoutError, StopAsyncIteration) as exc:
                if response is not None:
                    await response.aclose()
                if attempt >= self.max_retries or time.monotonic() - started > self.total_timeout:
                    retry_after = (
                        self._delay(exc, attempt) if isinstance(exc, openai.RateLimitError) else None
                    )
                    raise ProviderError(
                        f"the model provider is unavailable ({type(exc).__name__})", retry_after=retry_after
                    ) from exc
                delay = self._delay(exc, attempt)
                log.warning(
                    "provider call failed (%s); retry %d in %.1fs", type(exc).__name__, attempt + 1, delay
                )
                attempt += 1
                await asyncio.sleep(delay)
            except openai.APIStatusError as exc:
                raise ProviderError(f"the model provider refused the request ({exc.status_code})") from exc
            except (openai.APIError, ValueError) as exc:
                # Malformed data before any text: nothing shown yet, so not retried.
                if response is not None:
                    await response.aclose()
                raise ProviderError(f"the model provider sent an invalid response ({exc})") from exc

        finish_reason = None
        prompt_tokens = completion_tokens = 0
        chunk = first
        try:
            while True:
                usage = chunk.get("usage")
                if usage:
                    prompt_tokens = usage.get("prompt_tokens") or 0
                    completion_tokens = usage.get("completion_tokens") or 0
                for choice in chunk.get("choices") or ():
                    content = (choice.get("delta") or {}).get("content")
                    if content:
                        yield Delta(str(content))
                    if choice.get("finish_reason"):
                        finish_reason = choice["finish_reason"]
                try:
                    # A timeout context, not wait_for: no task per chunk. Never around the yield above,
                    # where a deadline would cancel the caller's code instead of this read.
                    async with asyncio.timeout(self._left(started, first=False)):
                        chunk = await iterator.__anext__()
                except StopAsyncIteration:
                    break
        except (TimeoutError, openai.APIError, httpx.HTTPError, ValueError, AttributeError, TypeError) as exc:
            raise StreamInterrupted(f"the answer stream broke ({type(exc).__name__})") from exc
        finally:
            await response.aclose()
        if finish_reason is None:
            raise StreamInterrupted("the answer stream ended before the model finished")
        yield Finish("length" if finish_reason == "length" else "stop", prompt_tokens, completion_tokens)

    def _left(self, started: float, *, first: bool) -> float:
        total = self.total_timeout - (time.monotonic() - started)
        left = min(total, self.first_token_timeout) if first else total
        if left <= 0:
            raise TimeoutError
        return left

    async def rewrite(self, messages: list[dict], *, max_tokens: int = 64) -> str | None:
        try:
            response = await asyncio.wait_for(
                self.client.chat.completions.create(
                    model=self.name, messages=messages, max_tokens=max_tokens, temperature=0
                ),
                self.first_token_timeout,
            )
        except (openai.APIError, TimeoutError) as exc:
            log.info("query rewrite failed (%s); using the question as it is", type(exc).__name__)
            return None
        text = (response.choices[0].message.content or "").strip() if response.choices else ""
        return text.strip('"') or None
