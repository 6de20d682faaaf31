"""The chat websocket (/ws/chat/): parse, check, hand over to answering. Protocol in CONTRACT §5."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import DatabaseError, DataError
from redis.exceptions import RedisError

from assistant import logs, metrics
from assistant.text import MESSAGE as UNSTORABLE
from assistant.text import unstorable
from retrieval import limits
from retrieval import selectors as retrieval_selectors

from . import answering, selectors, services, streams
from .models import Message

log = logging.getLogger(__name__)
RELAY_RETRY_S, RELAY_RETRY_MAX_S = 0.25, 5.0


class Refused(Exception):
    def __init__(self, code: str, message: str, *, close: bool = False, **extra):
        super().__init__(message)
        self.code, self.message, self.close, self.extra = code, message, close, extra


def _user_state(user_id: int) -> tuple[bool, set[int]]:
    """(active, readable collection ids), in one query when the user may read something."""
    from django.contrib.auth import get_user_model

    readable = set(retrieval_selectors.collection_ids_for_active_user(user_id=user_id))
    if readable:
        return True, readable
    return get_user_model().objects.filter(id=user_id, is_active=True).exists(), set()


def _conversation_scope(user, conversation_id) -> list[int] | None:
    try:
        conversation = selectors.conversation_get(user=user, conversation_id=conversation_id)
    except (selectors.Conversation.DoesNotExist, ValueError, ValidationError):
        raise Refused("not_found", "no such conversation") from None
    return selectors.conversation_scope(conversation=conversation) or None


def _readable(user_id: int) -> set[int]:
    """The collections the user may read now; Refused (closing the socket) when that is nothing."""
    active, readable = _user_state(user_id)
    if not active:
        raise Refused("invalid", "your account is not active", close=True)
    if not readable:
        raise Refused("not_found", "you are not in a team with documents", close=True)
    return readable


def _admit(user) -> None:
    try:
        services.ask_admit(user=user)
    except limits.RateLimited as exc:
        raise Refused("rate_limited", str(exc), retry_after=exc.retry_after) from None
    except services.QuotaExceeded as exc:
        raise Refused("quota_exceeded", str(exc), retry_after=exc.retry_after) from None


def _may_ask(
    user, collections: list[int] | None, conversation_id, documents: list[int] | None = None
) -> None:
    readable = _readable(user.id)
    if collections is not None and not set(collections) <= readable:
        raise Refused("not_found", "no such collection")
    if documents is not None and not retrieval_selectors.documents_readable(user=user, ids=documents):
        raise Refused("not_found", "no such document")
    if conversation_id is not None:
        scope = _conversation_scope(user, conversation_id)
        if scope and not set(scope) <= readable:
            raise Refused(
                "not_found", "this conversation's collections are no longer yours to read", close=True
            )


def _question_text(text) -> str:
    if not isinstance(text, str) or not text.strip():
        raise Refused("invalid", "content must be a non-empty string")
    if len(text) > settings.DOCENT_MAX_QUESTION_CHARS:
        raise Refused("invalid", f"questions are limited to {settings.DOCENT_MAX_QUESTION_CHARS} characters")
    return text.strip()


def _request_id(content: dict, *, required: bool = False) -> str:
    """The frame's request_id, by which a repeat (after a lost `accepted`) follows the answer the
    first one started instead of starting another: an ask's must be there, a regeneration's or an
    edit's may ("" for none)."""
    request_id = content.get("request_id")
    if request_id is None and not required:
        return ""
    if not isinstance(request_id, str) or not 0 < len(request_id) <= 100:
        raise Refused("invalid", "request_id must be a string of 1 to 100 characters")
    return request_id


def _owned_message(user, message_id) -> Message:
    try:
        return selectors.message_get(user=user, message_id=message_id)
    except (Message.DoesNotExist, ValueError, ValidationError):
        raise Refused("not_found", "no such message") from None


def _merge_deltas(events: list[dict], after: int) -> list[dict]:
    """Consecutive deltas read together go out as one frame carrying the last seq: a client that
    resumes after that seq has everything before it. A `replace` delta (the whole text so far)
    starts a frame of its own, and the deltas after it join that frame, which stays a replacement.
    Each frame names in `prev_seq` the seq it follows (`after` for the first): two readers of one
    answer may merge differently, and a client applies only a frame that continues what it shows."""
    merged: list[dict] = []
    for event in events:
        if merged and event["type"] == "delta" and merged[-1]["type"] == "delta" and not event.get("replace"):
            merged[-1] = {**merged[-1], "text": merged[-1]["text"] + event["text"], "seq": event["seq"]}
        else:
            merged.append({**event, "prev_seq": merged[-1]["seq"] if merged else after})
    return merged


class ChatConsumer(AsyncWebsocketConsumer):
    # No channel layer: answers reach sockets through their Redis streams, not groups, so a socket
    # needs no channel of its own (and no Redis receive waiting on it).
    channel_layer_alias = None

    async def connect(self):
        self.user = self.scope.get("user")
        self.readers: dict[str, asyncio.Task] = {}
        if self.user is None or not self.user.is_authenticated or not self.user.is_active:
            await self.close(code=4401)
            return
        await self.accept()
        metrics.websocket_opened(self, "chat")

    async def disconnect(self, code):
        metrics.websocket_closed(self)
        # Only the socket's readers stop; the answers themselves go on.
        for task in getattr(self, "readers", {}).values():
            task.cancel()

    async def send_json(self, content: dict) -> None:
        await self.send(text_data=json.dumps(content, separators=(",", ":")))

    async def receive(self, text_data=None, bytes_data=None):
        request_id = None
        try:
            if text_data is None or len(text_data) > settings.DOCENT_MAX_FRAME_BYTES:
                raise Refused("invalid", "frames must be JSON text under the size limit")
            try:
                content = json.loads(text_data)
            except ValueError:
                raise Refused("invalid", "frames must be JSON") from None
            if not isinstance(content, dict):
                raise Refused("invalid", "frames must be JSON objects")
            request_id = content.get("request_id")
            if unstorable(content):
                raise Refused("invalid", UNSTORABLE)
            # Log lines about this frame, and about an answer it starts, carry the client's id.
            token = logs.request_id.set(logs.usable_id(request_id if isinstance(request_id, str) else None))
            try:
                kind = content.get("type")
                handler = {
                    "ask": self.ask,
                    "stop": self.stop,
                    "resume": self.resume,
                    "regenerate": self.regenerate,
                    "edit": self.edit,
                }.get(kind)
                if handler is None:
                    raise Refused("invalid", f"unknown frame type {kind!r}")
                await handler(content)
            finally:
                logs.request_id.reset(token)
        except Refused as refusal:
            await self._error(refusal.code, refusal.message, request_id, **refusal.extra)
            if refusal.close:
                await self.close(code=4403)
        except DataError as exc:  # a value the database refuses: sending it again cannot help
            log.error("chat frame held a value the database refused: %s", exc)
            await self._error("invalid", "the request holds a value that cannot be stored", request_id)
        except DatabaseError as exc:
            # The database restarting or failing over: say so and keep the socket; the client may
            # send the same request_id again, which never makes a second question.
            log.warning("chat frame failed on the database: %s", exc)
            await self._error("internal", "Docent's database is not answering; please try again", request_id)
        except Exception:
            log.exception("chat frame failed")
            await self._error("internal", "something went wrong; please try again", request_id)

    async def _error(self, code: str, message: str, request_id, **extra) -> None:
        event = {"type": "error", "code": code, "message": message, **extra}
        if request_id and isinstance(request_id, str):
            event["request_id"] = request_id
        await self.send_json(event)

    async def _check_user(self) -> set[int]:
        return await database_sync_to_async(_readable)(self.user.id)

    async def ask(self, content: dict) -> None:
        request_id = _request_id(content, required=True)
        conversation_id, collections = content.get("conversation_id"), content.get("collections")
        text = _question_text(content.get("content"))
        documents = content.get("documents")
        for name, ids in (("collections", collections), ("documents", documents)):
            if ids is not None and not answering.is_id_list(ids):
                raise Refused("invalid", f"{name} must be a list of ids")
        model = content.get("model")
        if model is not None and not isinstance(model, str):
            raise Refused("invalid", "model must be a model's name")
        folder = content.get("folder")
        if folder is not None and not answering.is_id_list([folder]):
            raise Refused("invalid", "folder must be a folder's id")
        try:
            ids = await answering.ask(
                user=self.user,
                conversation_id=conversation_id,
                request_id=request_id,
                content=text,
                collection_ids=collections,
                document_ids=documents,
                model=model,
                folder_id=folder,
                # Re-checked on every ask, in the same database hop as storing the question.
                check=functools.partial(_may_ask, self.user, collections, conversation_id, documents),
                admit=functools.partial(_admit, self.user),
            )
        except services.NotFound as exc:
            raise Refused("not_found", str(exc)) from None
        except services.UnknownModel as exc:
            raise Refused("invalid", str(exc)) from None
        await self._accepted(request_id, ids)

    async def stop(self, content: dict) -> None:
        message = await database_sync_to_async(_owned_message)(self.user, content.get("message_id"))
        await answering.stop(str(message.id))

    async def resume(self, content: dict) -> None:
        message = await database_sync_to_async(_owned_message)(self.user, content.get("message_id"))
        after = content.get("after", 0)
        if not isinstance(after, int) or after < 0:
            raise Refused("invalid", "after must be a non-negative integer")
        self._follow(str(message.id), after=after)

    async def regenerate(self, content: dict) -> None:
        await self._check_user()
        message = await database_sync_to_async(_owned_message)(self.user, content.get("message_id"))
        if message.role != Message.Role.ASSISTANT or message.status not in Message.FINAL:
            raise Refused("invalid", "only a finished answer can be regenerated")
        ids = await answering.regenerate(
            user=self.user,
            message_id=message.id,
            request_id=_request_id(content),
            admit=functools.partial(_admit, self.user),
        )
        await self._accepted(content.get("request_id"), ids)

    async def edit(self, content: dict) -> None:
        """Reword a question: a new version of it, answered anew (the old one keeps its branch)."""
        text = _question_text(content.get("content"))
        await self._check_user()
        message = await database_sync_to_async(_owned_message)(self.user, content.get("message_id"))
        try:
            ids = await answering.edit(
                user=self.user,
                message_id=message.id,
                content=text,
                request_id=_request_id(content),
                admit=functools.partial(_admit, self.user),
            )
        except services.NotEditable as exc:
            raise Refused("invalid", str(exc)) from None
        except services.NotFound as exc:
            raise Refused("not_found", str(exc)) from None
        await self._accepted(content.get("request_id"), ids)

    async def _accepted(self, request_id, ids: dict) -> None:
        """Announce a new answer (to an ask, a regeneration or an edit) and stream it to this socket."""
        await self.send_json(
            {
                "type": "accepted",
                "request_id": request_id,
                "conversation_id": ids["conversation_id"],
                "user_message_id": ids["user_message_id"],
                "parent": ids["parent_id"],
                "message_id": ids["message_id"],
            }
        )
        self._follow(ids["message_id"], after=0)

    def _follow(self, message_id: str, *, after: int) -> None:
        old = self.readers.pop(message_id, None)
        if old:
            old.cancel()
        self.readers[message_id] = asyncio.get_running_loop().create_task(self._relay(message_id, after))

    async def _relay(self, message_id: str, after: int) -> None:
        """Forward the answer's events from its stream; fall back to the stored message when the
        stream is gone (expired, or the answer ended long ago)."""
        last, delay = after, 0.0
        try:
            while True:
                try:
                    # aclosing: the generator is closed here, in this task, even when the reader is cancelled.
                    async with contextlib.aclosing(streams.follow_batches(message_id, after=last)) as batches:
                        async for batch in batches:
                            delay = 0.0
                            for event in _merge_deltas(batch, last):
                                last = event["seq"]
                                await self.send_json(event)
                                if event["type"] in streams.TERMINAL:
                                    return
                except RedisError as exc:
                    # Redis away: the stored answer is the fallback; otherwise follow again when Redis
                    # is back (the generator writes what Redis missed, see answering.Generation).
                    delay = min(max(delay * 2, RELAY_RETRY_S), RELAY_RETRY_MAX_S)
                    log.warning(
                        "relay of %s: Redis unreachable (%s); retrying in %.1f s", message_id, exc, delay
                    )
                message = await database_sync_to_async(Message.objects.get)(id=message_id)
                if message.status in Message.FINAL:
                    await self._replay_stored(message, last)
                    return
                await asyncio.sleep(delay)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("relay of %s failed", message_id)
        finally:
            self.readers.pop(message_id, None)

    async def _replay_stored(self, message: Message, last: int) -> None:
        mid = str(message.id)
        if message.status == Message.Status.FAILED:
            await self.send_json(
                {
                    "type": "error",
                    "code": message.error_code or "internal",
                    "message": "the answer failed",
                    "message_id": mid,
                    "seq": last + 1,
                    "prev_seq": last,
                }
            )
            return
        events = [
            {"type": "delta", "text": message.text, "replace": True},
            {"type": "sources", "sources": message.citations},
            {
                "type": "done",
                "finish_reason": message.finish_reason or "stop",
                "usage": {
                    "prompt_tokens": message.prompt_tokens,
                    "completion_tokens": message.completion_tokens,
                },
                "model": message.model,
            },
        ]
        for i, event in enumerate(events, start=1):
            await self.send_json({**event, "message_id": mid, "seq": last + i, "prev_seq": last + i - 1})
