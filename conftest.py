"""Fixtures shared by every test: the real embedded services come from assistant.settings.test."""

from __future__ import annotations

import asyncio
import inspect
import itertools
import uuid

import pytest
import pytest_asyncio

_counter = itertools.count(1)


_worker_thread_running = False


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_teardown(item, nextitem):
    """Before any fixture's teardown: a task the session's worker thread is running or about to run
    (a browser test's uploads being read as the test ends) takes row locks that the database
    flush's TRUNCATE also takes, in another order: PostgreSQL ends one as a deadlock. While that
    worker runs, let its queue drain first (at most 30 s)."""
    if _worker_thread_running:
        import time

        from celery.worker import state

        from assistant.celery import queue_depth

        deadline = time.monotonic() + 30
        while (state.reserved_requests or queue_depth() > 0) and time.monotonic() < deadline:
            time.sleep(0.05)
    yield


@pytest.fixture(scope="session", autouse=True)
def _clean_redis():
    import redis
    from django.conf import settings

    redis.Redis.from_url(settings.REDIS_URL).flushdb()


@pytest.fixture
def rate_limits(settings):
    """`rate_limits(search="2/d", ...)` sets this test's rates (the rest off); its counters, in the
    real Redis, start at zero. Use day-long windows: django-ratelimit's windows are fixed, and a
    minute's can end in the middle of a test and start the count again."""
    settings.RATELIMIT_CACHE_PREFIX = f"rl-{uuid.uuid4().hex}:"

    def set_rates(**rates: str) -> None:
        settings.DOCENT_RATE_LIMITS = rates

    return set_rates


@pytest.fixture(autouse=True)
def _fresh_moderation():
    """Moderation checkers (and the rules they cache) are built per process from settings; a test's
    rules vanish with its database flush, which sends no signal, so each test starts without them."""
    from chat.moderation import get_checkers

    get_checkers.cache_clear()
    yield
    get_checkers.cache_clear()


@pytest.fixture(autouse=True)
def _fresh_channel_layer():
    """Each async test runs on a new event loop; a channel layer keeps Redis connections bound to the
    loop that made them, so every test gets its own layer instead of inheriting a dead loop's."""
    from channels.layers import channel_layers

    channel_layers.backends.clear()
    yield
    channel_layers.backends.clear()


@pytest_asyncio.fixture
async def _close_channel_layer():
    """After an async test, while its loop still runs: the channel layer's Redis connections closed
    (within 5 s), so that no consumer task is left blocked on one of them. Otherwise the loop's
    teardown cancels such a task and waits for it, and a redis-py read that does not end on
    cancellation has held a full run for pytest-timeout's 300 s (three times in about forty)."""
    yield
    from channels.layers import channel_layers

    for layer in list(channel_layers.backends.values()):
        if hasattr(layer, "close_pools"):
            try:
                await asyncio.wait_for(layer.close_pools(), 5)
            except Exception:  # best effort: a layer already closed, or Redis gone with the test
                pass


def pytest_collection_modifyitems(items):
    for item in items:  # async tests only: a sync test has no loop to close the layer on
        if inspect.iscoroutinefunction(getattr(item, "obj", None)):
            item.fixturenames.append("_close_channel_layer")


@pytest.fixture(scope="session", autouse=True)
def _end_stray_connections(django_db_setup, django_db_blocker):
    """Connections opened by worker and executor threads outlive them; end them so the test database drops."""
    yield
    from django.db import connection

    with django_db_blocker.unblock(), connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )


@pytest.fixture(scope="session")
def fake_openai_server():
    from tests.support.fake_openai import FakeOpenAI

    server = FakeOpenAI().start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def fake_oidc_server():
    from tests.support.fake_oidc import FakeOidc

    server = FakeOidc().start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def fake_site_server():
    from tests.support.fake_site import FakeSite

    server = FakeSite().start()
    yield server
    server.stop()


@pytest.fixture
def fake_site(settings, fake_site_server):
    """The site, empty, with loopback allowed to web sources (only public addresses are, by default)."""
    fake_site_server.reset()
    settings.DOCENT_WEB_PRIVATE_HOSTS = ["127.0.0.1"]
    yield fake_site_server
    fake_site_server.reset()


@pytest.fixture
def fake_oidc(settings, fake_oidc_server):
    """Single sign-on on, with the fake provider on loopback (who signs in: its `claims`)."""
    from retrieval import sso

    fake_oidc_server.reset()
    settings.DOCENT_OIDC_ISSUER = fake_oidc_server.issuer
    settings.OIDC_RP_CLIENT_ID = fake_oidc_server.client_id
    settings.OIDC_RP_CLIENT_SECRET = fake_oidc_server.client_secret
    settings.DOCENT_OIDC_NAME = "Acme SSO"
    sso.forget_provider()
    yield fake_oidc_server
    sso.forget_provider()
    fake_oidc_server.reset()


@pytest.fixture
def fake_openai(fake_openai_server):
    fake_openai_server.reset()
    yield fake_openai_server
    fake_openai_server.reset()


@pytest.fixture
def reranker(settings, fake_openai):
    """Reranking on, at the fake server's /rerank (its `rerank_favour` word goes first); yields the
    fake server."""
    from retrieval import reranking

    settings.DOCENT_RERANK_MODEL = "fake-reranker"
    settings.DOCENT_RERANK_URL = fake_openai.base_url + "/rerank"
    settings.DOCENT_RERANK_API_KEY = "sk-rerank"
    settings.DOCENT_RERANK_TIMEOUT_S = 1.0
    reranking.get_reranker.cache_clear()
    yield fake_openai
    reranking.get_reranker.cache_clear()


@pytest.fixture(scope="session")
def celery_worker_thread(django_db_setup, django_db_blocker):
    """A real Celery worker (solo pool, in a thread) consuming the real Redis broker."""
    from celery.contrib.testing.worker import start_worker

    from assistant.celery import app

    with django_db_blocker.unblock():
        app.control.purge()
        with start_worker(
            app, pool="solo", perform_ping_check=False, shutdown_timeout=30, loglevel="WARNING"
        ) as w:
            global _worker_thread_running
            _worker_thread_running = True
            yield w
            _worker_thread_running = False


@pytest.fixture
def worker(transactional_db, celery_worker_thread):
    yield celery_worker_thread


@pytest.fixture
def make_user(db):
    from django.contrib.auth import get_user_model

    def make(username: str | None = None, password: str = "pw-12345-secret", **extra):
        username = username or f"user{next(_counter)}"
        return get_user_model().objects.create_user(username=username, password=password, **extra)

    return make


@pytest.fixture
def make_team(db):
    from retrieval import services

    def make(name: str | None = None, members=(), role="member"):
        team = services.team_get_or_create(name=name or f"Team {next(_counter)}")
        for user in members:
            services.membership_set(team=team, user=user, role=role)
        return team

    return make


@pytest.fixture
def make_collection(db):
    from retrieval import services

    def make(team, name: str | None = None):
        return services.collection_create(team=team, name=name or f"collection-{next(_counter)}")

    return make


@pytest.fixture
def alice(make_user):
    return make_user("alice")


@pytest.fixture
def bob(make_user):
    return make_user("bob")


@pytest.fixture
def team_a(make_team, alice):
    return make_team("Team A", members=[alice])


@pytest.fixture
def team_b(make_team, bob):
    return make_team("Team B", members=[bob])


@pytest.fixture
def collection_a(make_collection, team_a):
    return make_collection(team_a, "handbook")


@pytest.fixture
def collection_b(make_collection, team_b):
    return make_collection(team_b, "secrets")
