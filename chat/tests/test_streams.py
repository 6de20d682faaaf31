import asyncio
import contextlib
import uuid

import pytest

from chat import streams


async def _collect(message_id, after=0):
    events = []
    async with contextlib.aclosing(streams.follow_batches(message_id, after=after, block_ms=200)) as batches:
        async for batch in batches:
            events += batch
    return events


def _event(mid, seq, kind="delta", **extra):
    return {
        "type": kind,
        "message_id": mid,
        "seq": seq,
        **({"text": f"t{seq}"} if kind == "delta" else {}),
        **extra,
    }


@pytest.fixture
async def message_id():
    mid = str(uuid.uuid4())
    yield mid
    await streams.client().delete(streams.stream_key(mid))


async def test_a_local_follower_gets_the_replay_then_live_events_once_each(message_id):
    streams.producing(message_id)
    for seq in (1, 2, 3):
        await streams.append(message_id, _event(message_id, seq))
    follower = asyncio.create_task(_collect(message_id, after=1))
    await asyncio.sleep(0.05)  # subscribed and replayed 2..3
    assert message_id in streams._hub().followers  # fed in memory, not by its own Redis read
    for seq in (4, 5):
        await streams.append(message_id, _event(message_id, seq))
    await streams.append(message_id, _event(message_id, 6, "done", finish_reason="stop"), final=True)
    streams.produced(message_id)
    events = await asyncio.wait_for(follower, 5)
    assert [e["seq"] for e in events] == [2, 3, 4, 5, 6]


async def test_a_generator_gone_without_an_ending_hands_its_followers_back_to_redis(message_id):
    """The sweep of a dead answer writes the ending straight to Redis: local followers still get it."""
    streams.producing(message_id)
    await streams.append(message_id, _event(message_id, 1))
    follower = asyncio.create_task(_collect(message_id))
    await asyncio.sleep(0.05)
    assert message_id in streams._hub().followers
    streams.produced(message_id)  # no terminal event from the generator
    await asyncio.sleep(0.05)
    assert not follower.done() and message_id not in streams._hub().followers  # now reading Redis
    await streams.append(message_id, _event(message_id, 2, "done", finish_reason="interrupted"), final=True)
    events = await asyncio.wait_for(follower, 5)
    assert [e["seq"] for e in events] == [1, 2] and events[-1]["finish_reason"] == "interrupted"


async def test_a_follower_elsewhere_reads_redis(message_id):
    """Not produced here (another process generates): the follower reads the Redis stream."""
    await streams.append(message_id, _event(message_id, 1))
    follower = asyncio.create_task(_collect(message_id))
    await asyncio.sleep(0.05)
    await streams.append(message_id, _event(message_id, 2, "done", finish_reason="stop"), final=True)
    events = await asyncio.wait_for(follower, 5)
    assert [e["seq"] for e in events] == [1, 2]


async def test_following_a_stream_that_does_not_exist_ends(message_id):
    assert await asyncio.wait_for(_collect(message_id), 5) == []
