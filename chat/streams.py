"""Answer events in Redis: one stream per message, so an answer outlives the socket that asked for it.

The generating task appends every event (sources, deltas, done, error) with its `seq`; any socket on
any server process replays a stream from a given seq and then follows it live. Stop requests travel
on a pub/sub channel to whichever process is generating, and are also left as a key in case the
generation has not started yet.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import weakref
from collections.abc import AsyncIterator

import redis.asyncio as aioredis
from django.conf import settings

log = logging.getLogger(__name__)

STREAM_TTL_S = 3600
BLOCK_MS = 5000
STOP_CHANNEL = "docent:chat:stop"
TERMINAL = ("done", "error")
_clients: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def client() -> aioredis.Redis:
    """One client (and pool) per event loop: redis connections cannot cross loops."""
    loop = asyncio.get_running_loop()
    if loop not in _clients:
        # The socket timeout must outlast XREAD's block time (redis-py's default is 5 s).
        _clients[loop] = aioredis.Redis.from_url(
            settings.REDIS_URL,
            max_connections=2000,
            health_check_interval=30,
            socket_timeout=BLOCK_MS / 1000 + 10,
        )
    return _clients[loop]


def stream_key(message_id) -> str:
    return f"docent:chat:events:{message_id}"


def stop_key(message_id) -> str:
    return f"docent:chat:stop:{message_id}"


async def append(message_id, event: dict, *, final: bool = False) -> None:
    redis = client()
    key = stream_key(message_id)
    async with redis.pipeline(transaction=False) as pipe:
        pipe.xadd(key, {"e": json.dumps(event, separators=(",", ":"))})
        if final or event.get("seq") == 1:
            pipe.expire(key, STREAM_TTL_S)
        await pipe.execute()


async def exists(message_id) -> bool:
    return bool(await client().exists(stream_key(message_id)))


async def follow_batches(message_id, *, after: int = 0, block_ms: int = 0) -> AsyncIterator[list[dict]]:
    """Events with seq > after, then live ones, in the batches Redis returns them, until a terminal
    event. Ends early when the stream does not exist (the caller then falls back to the database)."""
    redis = client()
    key = stream_key(message_id)
    last_id = "0-0"
    while True:
        response = await redis.xread({key: last_id}, count=500, block=block_ms or BLOCK_MS)
        if not response:
            if not await redis.exists(key):
                return
            continue
        batch = []
        for _key, entries in response:
            for entry_id, fields in entries:
                last_id = entry_id
                event = json.loads(fields[b"e"])
                if event.get("seq", 0) > after:
                    batch.append(event)
                    if event["type"] in TERMINAL:
                        yield batch
                        return
        if batch:
            yield batch


async def follow(message_id, *, after: int = 0) -> AsyncIterator[dict]:
    """follow_batches, one event at a time."""
    async with contextlib.aclosing(follow_batches(message_id, after=after)) as batches:
        async for batch in batches:
            for event in batch:
                yield event


async def request_stop(message_id) -> None:
    redis = client()
    await redis.set(stop_key(message_id), "1", ex=STREAM_TTL_S)
    await redis.publish(STOP_CHANNEL, str(message_id))


async def stop_requested(message_id) -> bool:
    return bool(await client().exists(stop_key(message_id)))


async def listen_for_stops(on_stop) -> None:
    """Run forever in each server process: call on_stop(message_id) for every stop request."""
    while True:
        try:
            # A subscriber waits for as long as it takes: no socket timeout.
            listener = aioredis.Redis.from_url(
                settings.REDIS_URL, socket_timeout=None, health_check_interval=30
            )
            pubsub = listener.pubsub()
            await pubsub.subscribe(STOP_CHANNEL)
            async for message in pubsub.listen():
                if message.get("type") == "message":
                    on_stop(message["data"].decode())
        except asyncio.CancelledError:
            raise
        except Exception:  # Redis restarted: resubscribe after a pause
            log.warning("stop listener lost Redis; resubscribing", exc_info=True)
            await asyncio.sleep(1)
