import pytest

from assistant.settings.base import env_rate
from retrieval import limits


def test_past_the_rate_is_refused_with_retry_after(rate_limits):
    """The fourth search in a day is refused, and says when to try again."""
    rate_limits(search="3/d")
    for _ in range(3):
        limits.limit_hit(action="search", key=7)
    with pytest.raises(limits.RateLimited) as refused:
        limits.limit_hit(action="search", key=7)
    assert 1 <= refused.value.retry_after <= 86400
    assert "too many searches" in str(refused.value)


def test_counts_are_per_key_and_per_action(rate_limits):
    """One user's flood does not limit another user, nor the same user's other actions."""
    rate_limits(search="1/d", upload="1/d")
    limits.limit_hit(action="search", key=1)
    with pytest.raises(limits.RateLimited):
        limits.limit_hit(action="search", key=1)
    limits.limit_hit(action="search", key=2)
    limits.limit_hit(action="upload", key=1)


def test_an_action_without_a_rate_is_not_limited(rate_limits):
    rate_limits(search="")
    for _ in range(50):
        limits.limit_hit(action="search", key=1)


def test_limits_open_when_redis_is_down(rate_limits, settings):
    """A cache that cannot count lets requests through (readyz reports Redis) rather than refusing all."""
    rate_limits(search="1/d")
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": "redis://127.0.0.1:1/0",  # nothing listens on port 1
        }
    }
    for _ in range(3):
        limits.limit_hit(action="search", key=1)


@pytest.mark.parametrize("value, expected", [("30/m", "30/m"), ("5/10s", "5/10s"), ("0", ""), ("off", "")])
def test_rates_from_the_environment(monkeypatch, value, expected):
    monkeypatch.setenv("DOCENT_RATE_X", value)
    assert env_rate("DOCENT_RATE_X", "1/m") == expected


@pytest.mark.parametrize("value", ["30", "30/minute", "-1/m", "x/m"])
def test_a_malformed_rate_stops_the_start(monkeypatch, value):
    monkeypatch.setenv("DOCENT_RATE_X", value)
    with pytest.raises(ValueError, match="DOCENT_RATE_X"):
        env_rate("DOCENT_RATE_X", "1/m")
