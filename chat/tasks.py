import json

import redis
from celery import shared_task
from django.conf import settings

from . import services, streams


@shared_task(acks_late=True, ignore_result=True)
def sweep_interrupted_answers() -> list[str]:
    """Answers whose server process died mid-stream end as interrupted, with the text they had;
    their followers get a final `done` so no browser waits forever."""
    ids = services.messages_sweep_interrupted(stale_after_s=settings.DOCENT_INTERRUPTED_AFTER_S)
    if ids:
        client = redis.Redis.from_url(settings.REDIS_URL)
        for message_id in ids:
            key = streams.stream_key(message_id)
            last = client.xrevrange(key, count=1)
            seq = json.loads(last[0][1][b"e"])["seq"] if last else 0
            for event in (
                {"type": "sources", "sources": []},
                {
                    "type": "done",
                    "finish_reason": "interrupted",
                    "usage": {"prompt_tokens": 0, "completion_tokens": 0},
                },
            ):
                seq += 1
                client.xadd(key, {"e": json.dumps({**event, "message_id": message_id, "seq": seq})})
            client.expire(key, streams.STREAM_TTL_S)
    return ids


@shared_task(acks_late=True, ignore_result=True)
def expire_conversations() -> int:
    return services.conversations_expire()
