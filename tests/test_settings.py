"""Settings per environment: production refuses to start without its secrets and services."""

import os
import subprocess
import sys

import pytest

from tests.support.processes import ROOT

CHECK = "import django; django.setup(); from django.conf import settings; print(settings.DEBUG)"
REQUIRED = {
    "DJANGO_SECRET_KEY": "s" * 50,
    "DATABASE_URL": "postgres://u:p@127.0.0.1:1/docent",
    "REDIS_URL": "redis://127.0.0.1:1/0",
}


def _start(**env):
    base = {
        k: v for k, v in os.environ.items() if k not in ("DJANGO_SECRET_KEY", "DATABASE_URL", "REDIS_URL")
    }
    base.update(DJANGO_SETTINGS_MODULE="assistant.settings.production", **env)
    return subprocess.run([sys.executable, "-c", CHECK], cwd=ROOT, env=base, capture_output=True, text=True)


@pytest.mark.parametrize("missing", ["DJANGO_SECRET_KEY", "DATABASE_URL", "REDIS_URL"])
def test_production_refuses_to_start_without(missing):
    env = dict(REQUIRED)
    del env[missing]
    started = _start(**env)
    assert started.returncode != 0 and f"{missing} must be set in production" in started.stderr


def test_production_starts_with_them_and_without_debug():
    started = _start(**REQUIRED, DJANGO_DEBUG="1")
    assert started.returncode == 0, started.stderr
    assert started.stdout.strip() == "False"


def test_a_malformed_rate_stops_the_start():
    started = _start(**REQUIRED, DOCENT_RATE_ASK="thirty a minute")
    assert started.returncode != 0 and "DOCENT_RATE_ASK" in started.stderr


def test_moderation_checkers_are_checked_at_start():
    """An unknown checker, or the provider's moderation without a provider, stops the start; "off"
    and a list with repeats are read as meant."""
    base = {k: v for k, v in REQUIRED.items()}
    unknown = _start(**base, DOCENT_MODERATION="rules,perspective")
    assert unknown.returncode != 0 and "unknown perspective" in unknown.stderr
    no_provider = _start(**base, DOCENT_MODERATION="openai", OPENAI_API_KEY="", OPENAI_BASE_URL="")
    assert no_provider.returncode != 0 and "needs a provider" in no_provider.stderr
    from assistant.settings.base import env_checks

    os.environ["DOCENT_TEST_CHECKS"] = " Rules, openai ,rules"
    try:
        assert env_checks("DOCENT_TEST_CHECKS", "rules", {"rules", "openai"}) == ("rules", "openai")
        os.environ["DOCENT_TEST_CHECKS"] = "off"
        assert env_checks("DOCENT_TEST_CHECKS", "rules", {"rules", "openai"}) == ()
    finally:
        del os.environ["DOCENT_TEST_CHECKS"]


def test_log_format_is_checked_at_start():
    started = _start(**REQUIRED, DOCENT_LOG_FORMAT="xml")
    assert started.returncode != 0 and "DOCENT_LOG_FORMAT" in started.stderr
    assert _start(**REQUIRED, DOCENT_LOG_FORMAT="json").returncode == 0
