"""Async orchestration of one answer: retrieve -> prompt -> stream -> check citations -> persist.

An answer runs as its own task in the server process, independent of the socket that asked: it
writes every event to the message's Redis stream (see streams.py), checkpoints its text to the
database while it streams and stores the final state at the end. Closing the tab changes nothing;
any socket can follow the stream again with `resume`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
import weakref
from dataclasses import dataclass

from channels.db import DatabaseSyncToAsync, database_sync_to_async
from django.conf import settings
from django.db import DatabaseError, transaction
from redis.exceptions import RedisError

from assistant import metrics
from retrieval.embeddings import EmbeddingError, count_tokens
from retrieval.selectors import asearch, collection_instructions, keyword_terms

from . import citations, moderation, prompts, selectors, services, streams
from .loops import per_loop
from .models import Message
from .providers import Delta, Finish, ProviderError, StreamInterrupted, get_chat_model

log = logging.getLogger(__name__)


def is_id_list(value) -> bool:
    """Whether a client's `collections` or `documents` is a list of ids (a boolean is no id)."""
    return isinstance(value, list) and all(isinstance(i, int) and not isinstance(i, bool) for i in value)


_tasks: dict[str, asyncio.Task] = {}
_stopping: set[str] = set()
_listeners: weakref.WeakSet = weakref.WeakSet()  # event loops with a stop listener
_background: set[asyncio.Task] = set()

_OPEN_TAIL = re.compile(r"\[[\d,\s]{0,20}$")


class CitationFilter:
    """Checks [n] markers as the text streams: numbers that name no given passage are removed
    before the user ever sees them. A marker split across deltas is held back until it closes."""

    def __init__(self, valid: set[int]):
        self.valid = valid
        self.pending = ""
        self.cited: list[int] = []
        self.dropped: list[int] = []

    def _check(self, match: re.Match) -> str:
        kept = []
        for raw in match.group(1).split(","):
            n = int(raw)
            if n in self.valid:
                kept.append(n)
                if n not in self.cited:
                    self.cited.append(n)
            else:
                self.dropped.append(n)
        return "".join(f"[{n}]" for n in kept)

    def feed(self, text: str) -> str:
        text = self.pending + text
        tail = _OPEN_TAIL.search(text)
        if tail:
            text, self.pending = text[: tail.start()], text[tail.start() :]
        else:
            self.pending = ""
        return citations.CITATION.sub(self._check, text)

    def flush(self) -> str:
        text, self.pending = self.pending, ""
        return citations.CITATION.sub(self._check, text)


def _ensure_stop_listener() -> None:
    loop = asyncio.get_running_loop()
    if loop not in _listeners:
        _listeners.add(loop)
        task = loop.create_task(streams.listen_for_stops(_on_stop_request), name="chat-stop-listener")
        _background.add(task)  # the loop keeps only a weak reference to its tasks
        task.add_done_callback(lambda t: (_listeners.discard(loop), _background.discard(t)))


def _on_stop_request(message_id: str) -> None:
    task = _tasks.get(message_id)
    if task is not None and not task.done():
        _stopping.add(message_id)
        task.cancel()


def _exchange_start(*, check=None, admit=None, **kwargs) -> tuple[dict, dict | None]:
    """Run the caller's permission check, store the exchange and read what its answer needs: one hop
    to the database thread. `admit` (rate and quota) runs only for a new exchange, in its transaction:
    a client repeating a request_id gets the first exchange back, however busy it has been."""
    if check is not None:
        check()
    with transaction.atomic():
        ids = services.exchange_start(**kwargs)
        if ids["created"] and admit is not None:
            admit()  # raising undoes the exchange just stored
    if not ids["created"]:
        return ids, None
    if ids["new_conversation"]:
        context = selectors.question_context(
            user=kwargs["user"],
            question=kwargs["content"],
            collection_ids=ids["collection_ids"],
            document_ids=kwargs.get("document_ids"),
            model=kwargs.get("model") or "",
            folder_id=kwargs.get("folder_id"),
        )
    else:
        context = selectors.generation_context(message_id=ids["message_id"])
    return ids, context


async def ask(
    *,
    user,
    conversation_id,
    request_id: str,
    content: str,
    collection_ids,
    document_ids=None,
    model: str | None = None,
    folder_id: int | None = None,
    check=None,
    admit=None,
) -> dict:
    ids, context = await database_sync_to_async(_exchange_start)(
        check=check,
        admit=admit,
        user=user,
        conversation_id=conversation_id,
        request_id=request_id,
        content=content,
        collection_ids=collection_ids,
        document_ids=document_ids,
        model=model,
        folder_id=folder_id,
    )
    if ids["created"]:
        start(ids["message_id"], context=context)
    return ids


async def regenerate(*, user, message_id, request_id: str = "", admit=None) -> dict:
    ids = await database_sync_to_async(services.answer_regenerate)(
        user=user, message_id=message_id, request_id=request_id, admit=admit
    )
    if ids["created"]:
        start(ids["message_id"])
    return ids


async def edit(*, user, message_id, content: str, request_id: str = "", admit=None) -> dict:
    ids = await database_sync_to_async(services.question_edit)(
        user=user, message_id=message_id, content=content, request_id=request_id, admit=admit
    )
    if ids["created"]:
        start(ids["message_id"])
    return ids


def start(message_id: str, *, context: dict | None = None) -> asyncio.Task:
    _ensure_stop_listener()
    generation = Generation(message_id, context=context)
    task = asyncio.get_running_loop().create_task(generation.run(), name=f"answer-{message_id}")
    _tasks[message_id] = task
    task.add_done_callback(lambda _t: (_tasks.pop(message_id, None), _stopping.discard(message_id)))
    return task


async def stop(message_id: str) -> None:
    _on_stop_request(message_id)  # local generation: cancelled at once
    try:
        await streams.request_stop(message_id)  # elsewhere, or not started yet
    except RedisError:
        if message_id not in _tasks:
            raise
        log.warning("stop of %s: Redis unreachable; stopped here only", message_id)


async def _stop_requested(message_id: str) -> bool:
    try:
        return await streams.stop_requested(message_id)
    except RedisError:  # no Redis, no stop request from elsewhere to honour
        return False


@dataclass(frozen=True)
class Retrieved:
    query: str
    passages: list[prompts.Passage]
    retrieval_ms: float


@dataclass(frozen=True)
class Text:
    text: str  # citations already checked


@dataclass(frozen=True)
class Finished:
    finish_reason: str  # stop, length or refused


def relevant(passages, query: str) -> bool:
    """The relevance gate with the settings' bars: whether `passages`, found for `query`, are worth
    answering from (the chat and the answers benchmark both ask here)."""
    return prompts.relevant(
        passages,
        settings.DOCENT_MIN_RELEVANCE,
        settings.DOCENT_RERANK_MIN_SCORE,
        settings.DOCENT_AGREED_MIN_RELEVANCE,
        query,
    )


class Pipeline:
    """One answer: retrieve -> relevance gate -> prompt -> provider stream with checked citations.

    Shared by the websocket answers (which add persistence and resumable streams) and the
    OpenAI-compatible API. `usage`, `passages` and `citations` describe the answer so far, also
    after it was cancelled.
    """

    def __init__(
        self,
        *,
        user,
        question: str,
        history,
        collection_ids,
        document_ids=None,
        max_tokens: int | None = None,
        screen_history: bool = False,
        model: str | None = None,
        instructions: str = "",
    ):
        self.user = user
        self.question = question
        self.history = list(history)
        # What moderation reads: the question, and the history too when the client supplied it
        # (/v1) rather than the database (whose questions were screened when asked).
        texts = [text for _role, text in self.history] if screen_history else []
        # The person's own instructions reach the model with every question: screened with it.
        self.instructions = instructions
        self.screened_text = "\n\n".join([*texts, *([instructions] if instructions else []), question])
        self.collection_ids = collection_ids
        self.document_ids = document_ids
        self.max_tokens = min(
            max_tokens or settings.DOCENT_MAX_ANSWER_TOKENS, settings.DOCENT_MAX_ANSWER_TOKENS
        )
        self.model = get_chat_model(model)
        self.passages: list[prompts.Passage] = []
        self.citations = CitationFilter(set())
        self.usage = {"prompt_tokens": 0, "completion_tokens": 0}
        self.text = ""
        self.provider_ms: float | None = None
        self._screened = False

    def cited_sources(self) -> list[dict]:
        return [p.source() for p in self.passages if p.n in self.citations.cited]

    def citation_checks(self, text: str | None = None, *, source: str = "chat") -> list[dict]:
        """The answer's (`text`, else this pipeline's) citations whose passage lacks a figure stated
        before them; counted in /metrics, so call it once, when the answer has ended."""
        cited = self.cited_sources()
        if not cited:
            return []
        text = self.text if text is None else text
        checks = citations.unsupported(text, citations.passages_by_number(cited), self.question)
        metrics.record_citations(source=source, markers=citations.marker_count(text), to_check=len(checks))
        return checks

    def spent(self, text: str | None = None) -> dict:
        """Tokens used so far: as the provider reported them, the answer's (`text`, else this
        pipeline's) counted offline when it reported none."""
        usage, text = dict(self.usage), self.text if text is None else text
        if not usage["completion_tokens"] and text:
            usage["completion_tokens"] = count_tokens(text)
        return usage

    async def screen(self) -> None:
        """Moderate the question (once): moderation.Blocked when it may not be answered."""
        if self._screened:
            return
        verdict = await moderation.screen(self.screened_text)
        self._screened = True
        if verdict is not None:
            raise moderation.Blocked(verdict)

    async def keywords(self, query: str) -> dict[str, tuple[frozenset[str], frozenset[str]]]:
        """The question's keyword terms in the languages of the passages other than English (whose
        stop words the offline answerer knows), read by the database as keyword search reads them."""
        languages = {p.language for p in self.passages} - {"english"}
        if not languages:
            return {}
        read = database_sync_to_async(keyword_terms)
        asked = await read(text=query, languages=languages)
        # A first question is searched as asked: one read serves both.
        own = asked if query == self.question else await read(text=self.question, languages=languages)
        return {language: (asked[language], own[language]) for language in languages}

    async def run(self):
        # The question is moderated while the search runs, and always before a model sees it (the
        # rewrite of a follow-up sends it to the provider, so that waits for the verdict).
        screening = asyncio.get_running_loop().create_task(self.screen())
        reply = prompts.small_talk(self.question)
        try:
            if reply is not None:  # "hi", "thanks": answered in kind, nothing to search
                await screening
                self.text = reply
                yield Retrieved(self.question, [], 0.0)
                yield Text(reply)
                yield Finished("stop")
                return
            query = self.question
            if self.history:
                await screening
                rewritten = await self.model.rewrite(prompts.rewrite_messages(self.question, self.history))
                query = rewritten or prompts.standalone_query(self.question, self.history)
            t0 = time.perf_counter()
            hits = await asearch(
                user=self.user,
                query=query,
                collection_ids=self.collection_ids,
                document_ids=self.document_ids,
                k=settings.DOCENT_PROMPT_PASSAGES,
            )
            await screening
        finally:
            if not screening.done():
                screening.cancel()
            elif not screening.cancelled():
                screening.exception()  # retrieved: it was raised above whenever it mattered
        self.passages = prompts.Passage.numbered(hits)
        yield Retrieved(query, self.passages, round((time.perf_counter() - t0) * 1000, 2))
        if not relevant(self.passages, query):
            self.text = prompts.REFUSAL
            yield Text(prompts.REFUSAL)
            yield Finished("refused")
            return
        instructions = await database_sync_to_async(collection_instructions)(
            collection_ids=[p.collection_id for p in self.passages]
        )
        prompt = prompts.build(
            question=self.question,
            passages=self.passages,
            history=self.history,
            count_tokens=count_tokens,
            context_tokens=settings.DOCENT_CONTEXT_TOKENS,
            max_answer_tokens=self.max_tokens,
            query=query,
            instructions=instructions,
            personal=self.instructions,
            keywords=await self.keywords(query),
        )
        self.usage["prompt_tokens"] = prompt.prompt_tokens
        self.citations = CitationFilter({p.n for p in self.passages})
        # Only while admins keep rules for answers: text is shown once checked (moderation.Blocked
        # stops the answer, and closing the stream below stops the model).
        gate = await moderation.answer_gate()
        finish_reason = "stop"
        started = time.perf_counter()
        async with contextlib.aclosing(self.model.stream(prompt, max_tokens=self.max_tokens)) as stream:
            async for event in stream:
                if isinstance(event, Delta):
                    text = self.citations.feed(event.text)
                    if text and gate is not None:
                        try:
                            text = gate.feed(text)
                        except moderation.Blocked as exc:  # the words generated, shown or not, were paid for
                            self.usage["completion_tokens"] = count_tokens(exc.verdict.text or "")
                            raise
                    if text:
                        self.text += text
                        yield Text(text)
                elif isinstance(event, Finish):
                    finish_reason = event.finish_reason
                    self.usage = {
                        "prompt_tokens": event.prompt_tokens or prompt.prompt_tokens,
                        "completion_tokens": event.completion_tokens or count_tokens(self.text),
                    }
        self.provider_ms = round((time.perf_counter() - started) * 1000, 2)
        tail = self.citations.flush()
        if gate is not None:
            tail = gate.feed(tail) + gate.flush()
        if tail:
            self.text += tail
            yield Text(tail)
        if self.citations.dropped:
            log.warning("an answer cited passages that were not given: %s", self.citations.dropped)
        yield Finished("refused" if self.text.strip().startswith(prompts.REFUSAL) else finish_reason)


COALESCE_S = 0.015
# A provider stream read from a full buffer never suspends: the generator yields to the loop this
# often, so the frames its followers wrote go out and other sockets are served meanwhile.
YIELD_S = 0.002
HEARTBEAT_S = 15.0
# While Redis is unreachable, a generator tries its stream again after this long, doubling up to the max.
REDIS_RETRY_S = 0.25
REDIS_RETRY_MAX_S = 5.0
# An answer's final save that the database refused is retried this often (doubling), for this long.
STORE_RETRY_S, STORE_RETRY_MAX_S, STORE_RETRY_FOR_S = 0.5, 10.0, 600.0


async def _retry(attempt, errors, first: float, most: float, deadline: float) -> bool:
    """Await `attempt()` after `first` seconds, then again after doubling waits (at most `most`) while
    it raises one of `errors`, until the monotonic `deadline`. True once an attempt succeeded."""
    delay = first
    while time.monotonic() < deadline:
        await asyncio.sleep(delay)
        try:
            await attempt()
            return True
        except errors:
            delay = min(delay * 2, most)
    return False


def _coalesce_interval() -> float:
    """Deltas closer together than this go out as one event. Under load (many answers streaming in
    this process) the events get fewer and larger, so the per-event cost stays bounded."""
    return max(COALESCE_S, len(_tasks) / 2000)


class Checkpoints:
    """Saves, for every answer streaming in this process, its text so far and a heartbeat: one
    batched UPDATE per round instead of one commit per answer, run off the event loop."""

    def __init__(self):
        self.live: dict[str, Generation] = {}
        self.saved: dict[str, int] = {}  # message id -> length of the text last saved
        self.runner: asyncio.Task | None = None

    def add(self, generation: Generation) -> None:
        self.live[generation.message_id] = generation
        if self.runner is None or self.runner.done():
            self.runner = asyncio.get_running_loop().create_task(self._run(), name="chat-checkpoints")
            _background.add(self.runner)
            self.runner.add_done_callback(_background.discard)

    def discard(self, generation: Generation) -> None:
        self.live.pop(generation.message_id, None)
        self.saved.pop(generation.message_id, None)

    async def _run(self) -> None:
        save = DatabaseSyncToAsync(services.messages_checkpoint, thread_sensitive=False)
        last_heartbeat = time.monotonic()
        while self.live:
            await asyncio.sleep(settings.DOCENT_CHECKPOINT_S)
            texts = {
                mid: g.text
                for mid, g in self.live.items()
                if g.streaming and len(g.text) != self.saved.get(mid)
            }
            alive = []
            if time.monotonic() - last_heartbeat >= HEARTBEAT_S:
                alive, last_heartbeat = list(self.live), time.monotonic()
            if not texts and not alive:
                continue
            prompts = {mid: self.live[mid].prompt_tokens() for mid in texts}
            try:
                await save(texts=texts, alive=alive, prompt_tokens=prompts)
            except Exception:  # a failed round is retried by the next one
                log.warning("checkpoint of %d answers failed", len(texts), exc_info=True)
                continue
            for mid, text in texts.items():
                if mid in self.live:
                    self.saved[mid] = len(text)


_checkpointer = per_loop(Checkpoints)


class Generation:
    def __init__(self, message_id: str, *, context: dict | None = None):
        self.message_id = message_id
        self.context = context
        self.recording: asyncio.Task | None = None
        self.seq = 0
        self.text = ""
        self.pipeline: Pipeline | None = None
        self.started = time.perf_counter()
        self.timings: dict[str, float | None] = {"retrieval_ms": None, "ttft_ms": None, "provider_ms": None}
        self.model_name = ""
        # Deltas that arrive faster than COALESCE_S apart are sent together: fewer events, same text.
        self.pending = ""
        self.last_flush = 0.0
        self.flush_timer: asyncio.TimerHandle | None = None
        self.lock = asyncio.Lock()
        self.streaming = False  # the text is worth checkpointing only once the model streams
        self.last_yield = 0.0
        self.sent_text = ""  # the text of the deltas published so far
        self.backlog: list[dict] | None = None  # events Redis has not taken yet (None: all taken)
        self.catching_up: asyncio.Task | None = None

    def prompt_tokens(self) -> int:
        return self.pipeline.usage["prompt_tokens"] if self.pipeline is not None else 0

    async def emit(self, event: dict, *, final: bool = False) -> None:
        async with self.lock:
            if event["type"] != "delta" and self.pending:
                await self._send_pending()
            self.seq += 1
            await self._publish({**event, "message_id": self.message_id, "seq": self.seq}, final=final)

    async def _publish(self, event: dict, *, final: bool = False) -> None:
        """Into the answer's Redis stream and to this process's followers. While Redis cannot take
        events, they still reach this process's followers and wait in a backlog, which a background
        task writes once Redis is back (the generator never waits for Redis to return)."""
        if event["type"] == "delta":
            self.sent_text += event["text"]
        if self.backlog is None:
            try:
                await streams.append(self.message_id, event, final=final)
                return
            except RedisError as exc:
                log.warning(
                    "answer %s: Redis unreachable (%s); followers here fed directly", self.message_id, exc
                )
                metrics.STREAM_REDIS_ERRORS.inc()
                self.backlog = []
                streams.hold(self.message_id, self._replay)
        self.backlog.append(event)
        streams.publish_local(self.message_id, event)
        if self.catching_up is None or self.catching_up.done():
            self.catching_up = asyncio.get_running_loop().create_task(self._catch_up())
            _background.add(self.catching_up)
            self.catching_up.add_done_callback(_background.discard)

    def _replay(self, backlog: list[dict] | None = None) -> list[dict]:
        """The backlog as one event holding the whole text so far (`replace`: right for a follower
        at any point, also when Redis came back empty), then the events after the text."""
        backlog = self.backlog if backlog is None else backlog
        deltas = [e for e in backlog if e["type"] == "delta"]
        events = []
        if self.sent_text:
            # Its seq is that of the last delta (text events precede sources, done and error).
            seq = deltas[-1]["seq"] if deltas else (backlog[0]["seq"] - 1 if backlog else self.seq)
            events.append(
                {
                    "type": "delta",
                    "text": self.sent_text,
                    "replace": True,
                    "message_id": self.message_id,
                    "seq": seq,
                }
            )
        return events + [e for e in backlog if e["type"] != "delta"]

    async def _catch_up(self) -> None:
        """Write the backlog to Redis (see `_replay`) once Redis takes writes again."""

        async def write() -> None:
            taken = self.backlog[:]
            await streams.append_many(self.message_id, self._replay(taken), final=True)
            del self.backlog[: len(taken)]  # events added meanwhile wait for the next round

        deadline = time.monotonic() + streams.STREAM_TTL_S
        while self.backlog:
            if not await _retry(write, RedisError, REDIS_RETRY_S, REDIS_RETRY_MAX_S, deadline):
                log.error(
                    "answer %s: Redis never came back; its stream lacks %d events",
                    self.message_id,
                    len(self.backlog),
                )
                break
            log.info("answer %s: Redis is back; its stream caught up", self.message_id)
        self.backlog = None
        streams.release(self.message_id)

    async def _send_pending(self) -> None:
        text, self.pending = self.pending, ""
        if self.flush_timer is not None:
            self.flush_timer.cancel()
            self.flush_timer = None
        self.last_flush = time.perf_counter()
        if not text:
            return
        self.seq += 1
        await self._publish({"type": "delta", "text": text, "message_id": self.message_id, "seq": self.seq})

    def _schedule_flush(self) -> None:
        task = asyncio.get_running_loop().create_task(self._flush_later())
        _background.add(task)
        task.add_done_callback(_background.discard)

    async def _flush_later(self) -> None:
        async with self.lock:
            if self.pending:
                await self._send_pending()

    def _ms(self, since: float) -> float:
        return round((time.perf_counter() - since) * 1000, 2)

    async def run(self) -> None:
        streams.producing(self.message_id)
        checkpoints = _checkpointer()
        checkpoints.add(self)
        try:
            await self._answer()
        except asyncio.CancelledError:
            stopped = self.message_id in _stopping
            await asyncio.shield(self._end("stopped" if stopped else "interrupted"))
            if not stopped:
                raise
        except StreamInterrupted as exc:
            log.warning("answer %s interrupted: %s", self.message_id, exc)
            await self._end("interrupted")
        except ProviderError as exc:
            await self._fail("provider_unavailable", str(exc), retry_after=exc.retry_after)
        except EmbeddingError as exc:  # the query could not be embedded (an embedding provider away)
            log.warning("answer %s: %s", self.message_id, exc)
            await self._fail(
                "provider_unavailable", "the embedding provider is not answering; please try again"
            )
        except moderation.Blocked as exc:
            # A stopped answer had cost its prompt and the words generated; a refused question nothing.
            spent = exc.verdict.subject == "answer" and self.pipeline is not None
            usage = self.pipeline.spent(self.text) if spent else None
            await self._fail("moderation_blocked", str(exc), verdict=exc.verdict, usage=usage)
        except moderation.Unavailable as exc:
            await self._fail("provider_unavailable", str(exc))
        except Exception:
            log.exception("answer %s failed", self.message_id)
            await self._fail("internal", "the answer failed; please try again")
        finally:
            checkpoints.discard(self)
            streams.produced(self.message_id)
            if self.flush_timer is not None:
                self.flush_timer.cancel()

    async def _answer(self) -> None:
        if await _stop_requested(self.message_id):
            _stopping.add(self.message_id)
            raise asyncio.CancelledError
        ctx = self.context or await database_sync_to_async(selectors.generation_context)(
            message_id=self.message_id
        )
        self.pipeline = Pipeline(
            user=ctx["user"],
            question=ctx["question"],
            history=ctx["history"],
            collection_ids=ctx["collection_ids"],
            document_ids=ctx.get("document_ids"),
            model=ctx.get("model") or None,
            instructions=ctx.get("instructions", ""),
        )
        self.model_name = self.pipeline.model.name
        finish_reason = "stop"
        async for event in self.pipeline.run():
            if isinstance(event, Text):
                self.streaming = True
                await self._delta(event.text)
            elif isinstance(event, Retrieved):
                self.timings["retrieval_ms"] = event.retrieval_ms
                # Recorded while the provider starts: nothing waits for it but the final save.
                record = DatabaseSyncToAsync(services.message_progress, thread_sensitive=False)
                self.recording = asyncio.get_running_loop().create_task(
                    record(
                        message_id=self.message_id,
                        status=Message.Status.STREAMING,
                        model=self.model_name,
                        search_query=event.query,
                        sources=[p.source() for p in event.passages],
                        retrieval_ms=event.retrieval_ms,
                    )
                )
            elif isinstance(event, Finished):
                finish_reason = event.finish_reason
        self.timings["provider_ms"] = self.pipeline.provider_ms
        await self._end(finish_reason)

    async def _delta(self, text: str) -> None:
        if not text:
            return
        first = self.timings["ttft_ms"] is None
        if first:
            self.timings["ttft_ms"] = self._ms(self.started)
        self.text += text
        self.pending += text
        interval = _coalesce_interval()
        now = time.perf_counter()
        if first or now - self.last_flush >= interval:
            async with self.lock:
                await self._send_pending()
        else:
            if self.flush_timer is None:
                loop = asyncio.get_running_loop()
                self.flush_timer = loop.call_later(interval, self._schedule_flush)
            if now - self.last_yield >= YIELD_S:
                self.last_yield = now
                await asyncio.sleep(0)

    async def _end(self, finish_reason: str) -> None:
        pipeline = self.pipeline
        tail = pipeline.citations.flush() if pipeline else ""
        if tail:
            self.text += tail
            self.pending += tail
        cited = pipeline.cited_sources() if pipeline else []
        checks = pipeline.citation_checks(self.text) if pipeline else []
        usage = pipeline.spent(self.text) if pipeline else {"prompt_tokens": 0, "completion_tokens": 0}
        status = {
            "stop": Message.Status.COMPLETE,
            "length": Message.Status.COMPLETE,
            "refused": Message.Status.REFUSED,
            "stopped": Message.Status.STOPPED,
            "interrupted": Message.Status.INTERRUPTED,
        }[finish_reason]
        self.streaming = False  # no checkpoint after this: the final save is the one below
        if self.recording is not None:
            await asyncio.gather(self.recording, return_exceptions=True)
        await self._store(
            text=self.text,
            status=status,
            finish_reason=finish_reason,
            citations=cited,
            checks=checks,
            prompt_tokens=usage["prompt_tokens"],
            completion_tokens=usage["completion_tokens"],
            total_ms=self._ms(self.started),
            model=self.model_name,
            **{k: v for k, v in self.timings.items() if k != "retrieval_ms" and v is not None},
        )
        self._observe(finish_reason, usage)
        await self.emit({"type": "sources", "sources": cited, "checks": checks})
        done = {"type": "done", "finish_reason": finish_reason, "usage": usage, "model": self.model_name}
        await self.emit(done, final=True)

    def _observe(self, outcome: str, usage: dict) -> None:
        ttft = self.timings["ttft_ms"]
        metrics.record_answer(
            source="chat",
            outcome=outcome,
            ttft_s=None if ttft is None else ttft / 1000,
            total_s=time.perf_counter() - self.started,
            usage=usage,
        )

    async def _store(self, **fields) -> None:
        """Save the answer's final state. When the database cannot take it (restarting, failing
        over), the answer still ends for its followers and the save is retried in the background:
        the text is in memory."""
        save = database_sync_to_async(services.message_finish)
        try:
            await save(message_id=self.message_id, **fields)
            return
        except DatabaseError as exc:
            log.warning("answer %s: final save failed (%s); retrying in the background", self.message_id, exc)

        async def retry() -> None:
            deadline = time.monotonic() + STORE_RETRY_FOR_S
            stored = await _retry(
                lambda: save(message_id=self.message_id, **fields),
                DatabaseError,
                STORE_RETRY_S,
                STORE_RETRY_MAX_S,
                deadline,
            )
            if stored:
                log.info("answer %s: final state stored after a retry", self.message_id)
            else:
                log.error(
                    "answer %s: final state not stored; the sweep will mark it interrupted", self.message_id
                )

        task = asyncio.get_running_loop().create_task(retry(), name=f"store-{self.message_id}")
        _background.add(task)
        task.add_done_callback(_background.discard)

    async def _fail(
        self,
        code: str,
        message: str,
        *,
        retry_after: float | None = None,
        verdict: moderation.Verdict | None = None,
        usage: dict | None = None,
    ) -> None:
        await self._store(
            text=self.text,
            status=Message.Status.FAILED,
            error_code=code,
            finish_reason="",
            total_ms=self._ms(self.started),
            flag=verdict,
            **({"model": self.model_name, **usage} if usage else {}),
        )
        self._observe(code, usage or {})
        event = {"type": "error", "code": code, "message": message}
        if verdict is not None:
            event["categories"] = list(verdict.categories)
        if retry_after is not None:
            event["retry_after"] = retry_after
        await self.emit(event, final=True)
