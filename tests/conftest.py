import shutil

import pytest

from tests.support.processes import web_server

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]


@pytest.fixture
def browser():
    import os

    from playwright.sync_api import sync_playwright

    # Playwright's sync API keeps an event loop running in this thread while the browser is open
    # (one per test, so later asyncio tests find no loop running); the test's own ORM calls are
    # still synchronous, so Django's async-safety guard is relaxed while it runs.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"

    executable = shutil.which("chromium") or "/usr/bin/chromium"
    with sync_playwright() as p:
        instance = p.chromium.launch(executable_path=executable, headless=True, args=CHROMIUM_ARGS)
        yield instance
        instance.close()
    os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)


@pytest.fixture
def csp_violations():
    """What the browser refused under the Content-Security-Policy (its console says so)."""
    return []


@pytest.fixture
def page(browser, csp_violations):
    """A page whose test fails if any page it visits breaks the app's own Content-Security-Policy."""
    context = browser.new_context(viewport={"width": 1200, "height": 850})
    page = context.new_page()
    page.on(
        "console", lambda m: csp_violations.append(m.text) if "Content Security Policy" in m.text else None
    )
    yield page
    context.close()
    assert not csp_violations, csp_violations


@pytest.fixture
def live_url(transactional_db, _shared_web):
    """The real ASGI app (Uvicorn, Channels, Redis) serving the test database: one process for the
    whole session (starting one, and loading its embedder on the first search, took seconds a test).
    Each test's rows are its own, as the database is emptied after it; what the process keeps across
    requests is keyed by ids that are never reused, but for the moderation rules it caches, which are
    told of the change as an admin's edit would tell them: here, at the start of each test, after the
    test before it was emptied out (its own teardown runs before that)."""
    return _for_this_test(_shared_web)


@pytest.fixture
def provider_url(transactional_db, _shared_provider_web, fake_openai):
    """As `live_url`, for an app whose chat model is the fake OpenAI-compatible server (what it
    answers is set on `fake_openai` by the test)."""
    return _for_this_test(_shared_provider_web)


def _for_this_test(base: str) -> str:
    from chat.moderation import rules_changed

    rules_changed()
    return base


def _shared_server(tmp_path_factory, name: str, **env):
    # Rules are compared with their shared version before every question, not once a second: the
    # test before may have asked with rules of its own a moment ago.
    log_path = tmp_path_factory.mktemp(name) / "web.log"
    # Web sources may be added at the loopback site the tests serve (the worker thread reads them
    # with the `fake_site` fixture's setting), as an intranet's wiki would be.
    env.setdefault("DOCENT_WEB_PRIVATE_HOSTS", "127.0.0.1")
    return web_server(log_path, DOCENT_MODERATION_RULES_RECHECK_S="0", **env)


@pytest.fixture(scope="session")
def _shared_web(django_db_setup, tmp_path_factory):
    with _shared_server(tmp_path_factory, "web") as base:
        yield base


@pytest.fixture
def limited_url(transactional_db, _shared_limited_web):
    """As `live_url`, for an app with one question a day per user and a monthly quota of 100,000
    tokens (each test's users are new, so neither count carries over from the test before)."""
    return _for_this_test(_shared_limited_web)


@pytest.fixture(scope="session")
def _shared_limited_web(django_db_setup, tmp_path_factory):
    env = {"DOCENT_RATE_ASK": "1/d", "DOCENT_MONTHLY_TOKEN_QUOTA": "100000"}
    with _shared_server(tmp_path_factory, "limited-web", **env) as base:
        yield base


@pytest.fixture(scope="session")
def _shared_provider_web(django_db_setup, tmp_path_factory, fake_openai_server):
    env = {
        "OPENAI_BASE_URL": fake_openai_server.base_url,
        "OPENAI_API_KEY": "test",
        "DOCENT_CHAT_MODEL": "fake-chat",
        "DOCENT_CHAT_MODELS": "fake-big",
    }
    with _shared_server(tmp_path_factory, "provider-web", **env) as base:
        yield base


@pytest.fixture
def live_app(transactional_db, tmp_path):
    """Start the app with extra environment (a provider URL, say); yields a starter returning the base URL."""
    import contextlib

    with contextlib.ExitStack() as stack:
        yield lambda **env: stack.enter_context(web_server(tmp_path / f"web-{len(env)}.log", **env))
