"""OpenAI-compatible endpoints (/v1/models, /v1/chat/completions) over the same answer pipeline.

Any OpenAI client works with `base_url=<docent>/v1` and a Docent API key. Answers are grounded and
cite [n]; the cited passages come in a top-level `sources` list (on the last chunk when streaming).
These calls are stateless, like OpenAI's: nothing is added to the caller's conversations.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import re
import time
import uuid

from asgiref.sync import sync_to_async
from django.db import DatabaseError, DataError
from django.http import JsonResponse, StreamingHttpResponse
from django.utils.text import slugify
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from assistant import metrics
from retrieval import limits
from retrieval import selectors as retrieval_selectors
from retrieval.embeddings import EmbeddingError

from . import moderation, services
from .answering import Finished, Pipeline, Text, is_id_list
from .providers import ProviderError, StreamInterrupted

MODEL = "docent"
# One model per readable collection, so that a client with a model picker (Open WebUI, LibreChat...)
# chooses the knowledge base: "docent/12-ops-runbooks"; the number decides, the words are for people.
_COLLECTION_MODEL = re.compile(r"^docent/(\d+)(?:-[a-z0-9-]*)?$")
log = logging.getLogger(__name__)


def _collection_model(collection) -> dict:
    return {
        "id": f"{MODEL}/{collection.id}-{slugify(f'{collection.team.name} {collection.name}')}",
        "object": "model",
        "created": int(collection.created_at.timestamp()) if collection.created_at else 0,
        "owned_by": "docent",
        "name": f"Docent · {collection.team.name} / {collection.name}",
    }


def error(
    status: int,
    message: str,
    code: str,
    kind: str = "invalid_request_error",
    retry_after: int | None = None,
    param: str | None = None,
) -> JsonResponse:
    response = JsonResponse(
        {"error": {"message": message, "type": kind, "param": param, "code": code}}, status=status
    )
    if retry_after is not None:
        response["Retry-After"] = str(retry_after)
    return response


def _json_errors(view):
    """Errors in OpenAI's shape, never Django's HTML page: the database away is a 503 to retry."""

    @functools.wraps(view)
    async def wrapped(request, *args, **kwargs):
        try:
            return await view(request, *args, **kwargs)
        except DataError as exc:  # the request's doing (see assistant.api_urls): no retry helps
            log.error("/v1 request held a value the database refused: %s", exc)
            return error(400, "the request holds a value that cannot be stored", "invalid_value")
        except DatabaseError as exc:
            log.warning("/v1 request failed on the database: %s", exc)
            return error(
                503,
                "the database is not answering; please try again",
                "unavailable",
                "api_error",
                retry_after=5,
            )

    return wrapped


def _model_not_found(model: str) -> JsonResponse:
    return error(
        404, f"The model `{model}` does not exist or you do not have access to it.", "model_not_found"
    )


def _admit_and_check(user, collections, model: str | None = None, documents=None) -> JsonResponse | None:
    """The caller's collections (those of `model`, when it names one) and documents, rate and quota
    (in the websocket's order), in one trip to a thread; an error response, or None."""
    if collections is not None:
        if not is_id_list(collections):
            return error(400, "collections must be a list of ids", "invalid_collections")
        readable = set(retrieval_selectors.collection_ids_for_user(user=user))
        if not set(collections) <= readable:
            return _model_not_found(model) if model else error(404, "no such collection", "not_found")
    if documents is not None:
        if not is_id_list(documents):
            return error(400, "documents must be a list of ids", "invalid_documents")
        if not retrieval_selectors.documents_readable(user=user, ids=documents):
            return error(404, "no such document", "not_found")
    try:
        services.ask_admit(user=user)
    except limits.RateLimited as exc:
        return error(429, str(exc), "rate_limited", "rate_limit_exceeded", exc.retry_after)
    except services.QuotaExceeded as exc:
        return error(429, str(exc), "quota_exceeded", "insufficient_quota", exc.retry_after)
    return None


_recording: set[asyncio.Task] = set()


class _Timing:
    """When the call started and its text first went out; the call's outcome for /metrics."""

    def __init__(self):
        self.started = time.perf_counter()
        self.first_text: float | None = None
        self.outcome = "interrupted"  # until the answer ends otherwise (a client that left)
        self.flag = None  # a moderation verdict met while streaming, recorded when the stream ends

    def text(self) -> None:
        if self.first_text is None:
            self.first_text = time.perf_counter()


async def _record_usage(user, pipeline: Pipeline, timing: _Timing) -> None:
    """Put the call's tokens in the ledger (these calls store no conversation), and in /metrics."""
    try:
        await _ledger(user, pipeline, timing)
    except DatabaseError as exc:  # the answer was given; losing its ledger row must not break it
        log.warning("/v1 usage of user %s not ledgered: %s", user.pk, exc)


async def _ledger(user, pipeline: Pipeline, timing: _Timing) -> None:
    usage = pipeline.spent()
    metrics.record_answer(
        source="api",
        outcome=timing.outcome,
        ttft_s=None if timing.first_text is None else timing.first_text - timing.started,
        total_s=time.perf_counter() - timing.started,
        usage=usage,
    )
    if usage["prompt_tokens"] or usage["completion_tokens"]:
        await sync_to_async(services.usage_record)(
            user_id=user.pk,
            source="api",
            model=pipeline.model.name,
            prompt_tokens=usage["prompt_tokens"],
            completion_tokens=usage["completion_tokens"],
        )


async def _flag(user, verdict, timing: _Timing, text: str | None = None) -> None:
    timing.outcome = "moderation_blocked"
    await sync_to_async(services.moderation_flag_record)(
        user_id=user.pk, source="api", text=verdict.text if text is None else text, verdict=verdict
    )


async def _user(request):
    header = request.headers.get("Authorization", "")
    if not header.lower().startswith("bearer "):
        return None
    return await sync_to_async(retrieval_selectors.api_key_user)(raw=header[7:].strip())


@require_GET
@_json_errors
async def models(request):
    user = await _user(request)
    if user is None:
        return error(
            401, "send Authorization: Bearer <Docent API key>", "invalid_api_key", "authentication_error"
        )
    return JsonResponse({"object": "list", "data": await _models_for(user)})


@require_GET
@_json_errors
async def model(request, model_id: str):
    """One model, as `client.models.retrieve(...)` asks for it."""
    user = await _user(request)
    if user is None:
        return error(
            401, "send Authorization: Bearer <Docent API key>", "invalid_api_key", "authentication_error"
        )
    match = _COLLECTION_MODEL.match(model_id)
    for listed in await _models_for(user):
        if listed["id"] == model_id or (match and listed["id"].startswith(f"{MODEL}/{match.group(1)}-")):
            return JsonResponse(listed)
    return _model_not_found(model_id)


async def _models_for(user) -> list[dict]:
    collections = await sync_to_async(
        lambda: list(retrieval_selectors.collections_for_user(user=user, counted=False))
    )()
    return [
        {"id": MODEL, "object": "model", "created": 0, "owned_by": "docent", "name": "Docent"},
        *(_collection_model(c) for c in collections),
    ]


def _content(message: dict) -> str:
    content = message.get("content")
    if isinstance(content, list):  # content parts: keep the text ones
        texts = (p.get("text") for p in content if isinstance(p, dict) and p.get("type") == "text")
        return " ".join(t for t in texts if isinstance(t, str))
    return content if isinstance(content, str) else ""


# Fields read from the body, with the type each must have when given: the wrong type is OpenAI's 400
# `invalid_type` naming the field, not a 500 or a value silently ignored.
_TYPED = {
    "model": (str, "a string"),
    "stream": (bool, "a boolean"),
    "stream_options": (dict, "an object"),
    "max_tokens": (int, "a positive integer"),
    "max_completion_tokens": (int, "a positive integer"),
}


def _mistyped(body: dict) -> JsonResponse | None:
    for name, (kind, described) in _TYPED.items():
        value = body.get(name)
        if value is None:
            continue
        wrong = not isinstance(value, kind) or (kind is int and (isinstance(value, bool) or value < 1))
        if wrong:
            return error(400, f"`{name}` must be {described}", "invalid_type", param=name)
    return None


@csrf_exempt
@require_POST
@_json_errors
async def chat_completions(request):
    user = await _user(request)
    if user is None:
        return error(
            401, "send Authorization: Bearer <Docent API key>", "invalid_api_key", "authentication_error"
        )
    try:
        body = json.loads(request.body or b"{}")
    except ValueError:
        body = None
    if not isinstance(body, dict):
        return error(400, "the request body must be a JSON object", "invalid_json")
    messages = body.get("messages")
    if not (
        isinstance(messages, list)
        and messages
        and all(isinstance(m, dict) for m in messages)
        and messages[-1].get("role") == "user"
    ):
        return error(400, "messages must be a list ending with a user message", "invalid_messages")
    mistyped = _mistyped(body)
    if mistyped is not None:
        return mistyped
    if body.get("n") not in (None, 1):  # one grounded answer per question; a silent single one would mislead
        return error(400, "n must be 1: Docent gives one answer per question", "invalid_n")
    question = _content(messages[-1]).strip()
    if not question:
        return error(400, "the last user message is empty", "invalid_messages")
    history = [(m["role"], _content(m)) for m in messages[:-1] if m.get("role") in ("user", "assistant")]
    # An empty list narrows nothing, as in the chat: every readable collection (or document).
    collections = None if body.get("collections") == [] else body.get("collections")
    model = body.get("model") or MODEL  # a string when given (_mistyped)
    named = None  # the model, when it names a collection
    if model.startswith(f"{MODEL}/"):
        match = _COLLECTION_MODEL.match(model)
        if match is None:
            return _model_not_found(model)
        # The model's collection; `collections`, when also given, must include it.
        chosen = int(match.group(1))
        if collections is not None and (not isinstance(collections, list) or chosen not in collections):
            return error(
                400, f"`collections` does not include the collection of `{model}`", "invalid_collections"
            )
        collections, named = [chosen], model
    else:
        model = MODEL  # any other name asks Docent over every readable collection
    timing = _Timing()
    documents = None if body.get("documents") == [] else body.get("documents")
    refusal = await sync_to_async(_admit_and_check)(user, collections, named, documents)
    if refusal is not None:
        return refusal
    max_tokens = body.get("max_completion_tokens") or body.get("max_tokens")
    pipeline = Pipeline(
        user=user,
        question=question,
        history=history,
        collection_ids=collections,
        document_ids=documents,
        max_tokens=max_tokens,  # checked by _mistyped: a positive integer or None
        screen_history=True,  # the earlier messages come from the client: they reach the model too
    )
    try:
        await pipeline.screen()  # before any response starts, so that a refusal is a plain 400
    except moderation.Blocked as exc:
        await _flag(user, exc.verdict, timing, text=pipeline.screened_text)
        await _record_usage(user, pipeline, timing)
        return error(400, str(exc), "moderation_blocked")
    except moderation.Unavailable as exc:
        timing.outcome = "provider_unavailable"
        await _record_usage(user, pipeline, timing)  # no tokens spent; counted in /metrics
        return error(503, str(exc), "provider_unavailable", "api_error")
    head = {"id": f"chatcmpl-{uuid.uuid4().hex}", "created": int(time.time()), "model": model}
    if body.get("stream"):
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        return StreamingHttpResponse(
            _sse(user, pipeline, timing, head, include_usage),
            content_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )
    finish = "stop"
    try:
        async for event in pipeline.run():
            if isinstance(event, Text):
                timing.text()
            elif isinstance(event, Finished):
                finish = timing.outcome = event.finish_reason
    except (ProviderError, StreamInterrupted, EmbeddingError) as exc:
        timing.outcome = "provider_unavailable"
        return error(503, str(exc), "provider_unavailable", "api_error")
    except moderation.Blocked as exc:  # the answer went against an answer rule
        await _flag(user, exc.verdict, timing)
        return error(400, str(exc), "moderation_blocked")
    finally:
        await _record_usage(user, pipeline, timing)
    usage = pipeline.spent()
    return JsonResponse(
        {
            "id": head["id"],
            "object": "chat.completion",
            "created": head["created"],
            "model": head["model"],
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": pipeline.text},
                    "finish_reason": "length" if finish == "length" else "stop",
                }
            ],
            "usage": {**usage, "total_tokens": usage["prompt_tokens"] + usage["completion_tokens"]},
            "sources": pipeline.cited_sources(),
            "docent": {"finish_reason": finish, "checks": pipeline.citation_checks(source="api")},
        }
    )


def _chunk(head: dict, delta: dict, finish: str | None = None, **extra) -> str:
    payload = {
        "id": head["id"],
        "object": "chat.completion.chunk",
        "created": head["created"],
        "model": head["model"],
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        **extra,
    }
    return f"data: {json.dumps(payload, separators=(',', ':'))}\n\n"


async def _sse(user, pipeline: Pipeline, timing: _Timing, head: dict, include_usage: bool):
    recorded = False
    try:
        async for frame in _frames(pipeline, timing, head, include_usage):
            yield frame
        await _settle(user, pipeline, timing)
        recorded = True
    finally:
        if not recorded:
            # The client went away mid-stream (perhaps right after an answer rule stopped it): what
            # it received still counts, and the flag is still raised. A task, since a closed
            # generator cannot wait.
            task = asyncio.get_running_loop().create_task(_settle(user, pipeline, timing))
            _recording.add(task)
            task.add_done_callback(_recording.discard)


async def _settle(user, pipeline: Pipeline, timing: _Timing) -> None:
    """After a streamed call: the moderation flag it met, if any (once), then its usage."""
    flag, timing.flag = timing.flag, None
    if flag is not None:
        await _flag(user, flag, timing)
    await _record_usage(user, pipeline, timing)


async def _frames(pipeline: Pipeline, timing: _Timing, head: dict, include_usage: bool):
    yield _chunk(head, {"role": "assistant", "content": ""})
    finish = "stop"
    try:
        async for event in pipeline.run():
            if isinstance(event, Text):
                timing.text()
                yield _chunk(head, {"content": event.text})
            elif isinstance(event, Finished):
                finish = timing.outcome = event.finish_reason
    except (ProviderError, StreamInterrupted, EmbeddingError, moderation.Blocked) as exc:
        if isinstance(exc, moderation.Blocked):  # the answer went against an answer rule
            timing.flag = exc.verdict
            code, kind = "moderation_blocked", "invalid_request_error"
        else:
            timing.outcome, code, kind = "provider_unavailable", "provider_unavailable", "api_error"
        error = {"error": {"message": str(exc), "type": kind, "param": None, "code": code}}
        yield f"data: {json.dumps(error)}\n\n"
        yield "data: [DONE]\n\n"
        return
    yield _chunk(
        head,
        {},
        "length" if finish == "length" else "stop",
        sources=pipeline.cited_sources(),
        docent={"finish_reason": finish, "checks": pipeline.citation_checks(source="api")},
    )
    if include_usage:
        usage = pipeline.spent()
        payload = {
            "id": head["id"],
            "object": "chat.completion.chunk",
            "created": head["created"],
            "model": head["model"],
            "choices": [],
            "usage": {**usage, "total_tokens": usage["prompt_tokens"] + usage["completion_tokens"]},
        }
        yield f"data: {json.dumps(payload)}\n\n"
    yield "data: [DONE]\n\n"
