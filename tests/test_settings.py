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


def _start(script: str = CHECK, **env):
    """`script` in a process with production settings and only `env` of what they read."""
    base = {k: v for k, v in os.environ.items() if k not in REQUIRED and not k.startswith("DJANGO_SECURE_")}
    base.update(DJANGO_SETTINGS_MODULE="assistant.settings.production", **env)
    return subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=base, capture_output=True, text=True, timeout=60
    )


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


def test_earlier_secret_keys_are_read_for_rotation():
    script = "import django; django.setup(); from django.conf import settings; print(settings.SECRET_KEY_FALLBACKS)"
    started = _start(script, **REQUIRED, DJANGO_SECRET_KEY_FALLBACKS="old-1,old-2")
    assert started.returncode == 0, started.stderr
    assert started.stdout.strip() == "['old-1', 'old-2']"


REQUESTS = """
import django; django.setup()
from django.test import Client
client = Client()
for path in ("/accounts/login/", "/healthz", "/metrics"):
    response = client.get(path, HTTP_HOST="localhost")
    print(path, response.status_code, response.get("Location", "-"), response.get("Strict-Transport-Security", "-"))
print("https", Client().get("/healthz", HTTP_HOST="localhost", secure=True).get("Strict-Transport-Security", "-"))
"""
SCRAPE = """
import django; django.setup()
from django.test import Client
scrape = Client().get("/metrics", HTTP_HOST="localhost").content.decode().splitlines()
print(*[line for line in scrape if line.startswith(("docent_database_up", "docent_ingest_queue_depth"))])
"""


def _requests(script: str = REQUESTS, **env) -> list[list[str]]:
    ran = _start(script, **{**REQUIRED, **env})
    assert ran.returncode == 0, ran.stderr[-2000:]
    return [line.split() for line in ran.stdout.splitlines()]


def test_production_sends_browsers_to_https_but_not_the_probes():
    """Pages redirect to HTTPS and HTTPS answers carry HSTS; health probes and the metrics scraper,
    which call over plain HTTP inside the network, are answered where they are."""
    login, health, metrics, https = _requests()
    assert login == ["/accounts/login/", "301", "https://localhost/accounts/login/", "-"]
    assert health[:3] == ["/healthz", "200", "-"] and metrics[:3] == ["/metrics", "200", "-"]
    assert https == ["https", "max-age=60"]
    login, _, _, https = _requests(
        DJANGO_SECURE_SSL_REDIRECT="0",
        DJANGO_SECURE_HSTS_SECONDS="31536000",
        DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS="1",
    )
    assert login[1] == "200"
    assert https == ["https", "max-age=31536000;", "includeSubDomains"]


def test_metrics_are_served_while_the_database_and_broker_are_down():
    """The process's own counters are what an outage is read from: the scrape answers, saying the
    database did not (nothing listens at the URLs REQUIRED names)."""
    (gauges,) = _requests(SCRAPE)
    assert gauges == ["docent_database_up", "0.0", "docent_ingest_queue_depth", "-1.0"]


def test_a_database_that_never_answers_fails_the_connection_in_seconds():
    """A host that takes the connection and says nothing (a hung server, a half-open proxy) costs
    each request the connection timeout, 5 s, not TCP's minutes."""
    import socket
    import time

    silent = socket.create_server(("127.0.0.1", 0))
    port = silent.getsockname()[1]
    try:
        started = time.monotonic()
        (gauges,) = _requests(SCRAPE, DATABASE_URL=f"postgres://u:p@127.0.0.1:{port}/docent")
        took = time.monotonic() - started
    finally:
        silent.close()
    assert gauges[:2] == ["docent_database_up", "0.0"]
    assert took < 20  # the start and one connection attempt of 5 s


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
