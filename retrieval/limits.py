"""Per-user rate limits on what costs work (uploads, searches, answers, sign-in attempts).

Counted with django-ratelimit in the default cache, which is Redis, so every web process and every
socket shares one count. Rates come from settings (`DOCENT_RATE_LIMITS`, "count/period" as
django-ratelimit reads it, e.g. "30/m"); an action without a rate is not limited.
"""

from __future__ import annotations

import logging

from django.conf import settings
from django_ratelimit.core import get_usage
from redis.exceptions import RedisError

from assistant import metrics

log = logging.getLogger(__name__)


_NOUNS = {"upload": "uploads", "search": "searches", "ask": "questions", "login": "sign-in attempts"}


# The ASGI scope key under which the web server's wrapper lists the actions it counted already.
COUNTED_SCOPE_KEY = "docent.counted"


class RateLimited(Exception):
    def __init__(self, action: str, retry_after: int):
        self.action, self.retry_after = action, retry_after
        super().__init__(f"too many {_NOUNS.get(action, 'requests')}; try again in {retry_after} s")


def limit_hit(*, action: str, key: str | int) -> None:
    """Count one `action` for `key` (a user id, or a client address); raise RateLimited past its rate.

    A refused attempt counts too: a client that ignores Retry-After stays limited.
    """
    rate = settings.DOCENT_RATE_LIMITS.get(action)
    if not rate:
        return
    try:
        usage = get_usage(
            None, group=f"docent.{action}", key=lambda _group, _request: str(key), rate=rate, increment=True
        )
    except RedisError:
        # Redis down: the limits open rather than take every request with them (readyz reports it).
        log.warning("rate limit for %s not checked: the cache is unavailable", action)
        return
    if usage is not None and usage["should_limit"]:
        metrics.RATE_LIMITED.labels(action=action).inc()
        raise RateLimited(action, max(int(usage["time_left"]), 1))


def counted_upstream(request, action: str) -> bool:
    """Whether this request's `action` was counted before Django read its body (an upload's is, under
    the ASGI server: `assistant.middleware.UploadRateLimit`); the view counts it otherwise."""
    return action in getattr(request, "scope", {}).get(COUNTED_SCOPE_KEY, ())
