"""The API keys page in real headless Chromium (and under the app's Content-Security-Policy)."""

import pytest
from playwright.sync_api import expect

from .test_library_browser import sign_in

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_a_key_is_made_shown_once_and_revoked(page, live_url, make_user, make_team):
    make_team("Ops", members=[make_user("jo", password="pw-jo-123456")])
    sign_in(page, live_url, "jo", "pw-jo-123456")
    page.get_by_role("link", name="API keys").click()
    page.fill("#key-name", "ci runner")
    page.get_by_role("button", name="Create a key").click()
    raw = page.locator("#new-key").inner_text()
    assert raw.startswith("dk_")
    models = page.request.get(f"{live_url}/v1/models", headers={"Authorization": f"Bearer {raw}"})
    assert models.ok and "docent" in models.text()
    page.get_by_role("button", name="Revoke ci runner").click()
    expect(page.locator("table.key-list")).to_contain_text("revoked")
    expect(page.locator("#new-key")).to_have_count(0)  # never shown again
    again = page.request.get(f"{live_url}/v1/models", headers={"Authorization": f"Bearer {raw}"})
    assert again.status == 401


def test_the_api_explorer_is_served_by_the_app_itself(page, live_url, make_user, make_team):
    """/api/v1/docs works offline and under the app's policy: Swagger UI from the app's own static
    files (it came from a CDN, which the policy blocked and an offline machine cannot reach)."""
    make_team("Ops", members=[make_user("jo", password="pw-jo-123456")])
    sign_in(page, live_url, "jo", "pw-jo-123456")
    elsewhere = []
    page.on("request", lambda r: elsewhere.append(r.url) if not r.url.startswith(live_url) else None)
    page.goto(f"{live_url}/api/v1/docs")
    expect(page.locator(".opblock").first).to_be_visible()
    expect(page.locator(".opblock-summary-path", has_text="/api/v1/search")).to_have_count(1)
    assert elsewhere == []
