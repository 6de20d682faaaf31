"""The API keys and password pages in real headless Chromium (and under the app's Content-Security-Policy)."""

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


def test_a_person_changes_their_password_from_their_name(page, live_url, make_user, make_team):
    """The user name at the top opens the account page, and its link the password form; the new
    password then signs in."""
    make_team("Ops", members=[make_user("jo", password="pw-jo-123456")])
    sign_in(page, live_url, "jo", "pw-jo-123456")
    page.get_by_role("link", name="jo", exact=True).click()
    page.get_by_role("link", name="Change your password").click()
    page.get_by_label("Old password").fill("pw-jo-123456")
    page.get_by_label("New password", exact=True).fill("jo-second-pw-77")
    page.get_by_label("New password confirmation").fill("jo-second-pw-77")
    page.get_by_role("button", name="Change password").click()
    expect(page.get_by_role("status")).to_contain_text("Your new password is in use")
    page.get_by_role("button", name="Sign out").click()
    page.goto(f"{live_url}/")
    page.fill("input[name=username]", "jo")
    page.fill("input[name=password]", "jo-second-pw-77")
    page.click("button[type=submit]")
    expect(page.locator("#question")).to_be_enabled()
