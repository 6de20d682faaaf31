"""Single sign-on in a real browser: the sign-in page's button, the provider on loopback, and back
in Docent with the teams the provider's groups name."""

import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import expect

from .test_accessibility_browser import AXE_OPTIONS

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_signing_in_with_the_provider_in_the_browser(page, live_app, fake_oidc, make_team, make_collection):
    env = {
        "DOCENT_OIDC_NAME": "Acme SSO",
        "DOCENT_OIDC_GROUPS_CLAIM": "groups",
        "DOCENT_PASSWORD_SIGN_IN": "0",
    }
    base = live_app(**fake_oidc.env(**env))
    make_collection(make_team("Research"), "lab-notes")
    fake_oidc.claims = {
        "sub": "u-7",
        "email": "dana@example.com",
        "email_verified": True,
        "groups": ["research"],
    }

    # Cancelled at the provider: the sign-in page says so, and no one is signed in.
    fake_oidc.fault = "denied"
    page.goto(base + "/library/")
    page.get_by_role("link", name="Sign in with Acme SSO").click()
    expect(page.get_by_role("alert")).to_contain_text("Single sign-on was cancelled")
    expect(page).to_have_url(base + "/accounts/login/?sso=denied")
    # Passwords are for administrators here: their form is folded away.
    expect(page.get_by_label("Password")).to_be_hidden()
    page.get_by_text("Administrators: sign in with a password").click()
    expect(page.get_by_label("Password")).to_be_visible()
    for scheme in ("light", "dark"):  # the button, the alert and the form pass axe in both schemes
        page.emulate_media(color_scheme=scheme, reduced_motion="reduce")
        assert Axe().run(page, options=AXE_OPTIONS).response["violations"] == [], scheme

    # Then through: back on the page first asked for, in the team the group names.
    fake_oidc.fault = None
    page.goto(base + "/library/")
    page.get_by_role("link", name="Sign in with Acme SSO").click()
    expect(page).to_have_url(base + "/library/")
    expect(page.locator("body")).to_contain_text("lab-notes")
    # The team lists them as given by their groups.
    expect(page.get_by_role("list", name="Members of Research")).to_contain_text("dana (from sign-in groups)")
    page.goto(base + "/account/")
    expect(page.locator("body")).to_contain_text("Signed in as dana")
    expect(page.locator("body")).to_contain_text("Research (member)")
    expect(page.get_by_role("link", name="Change your password")).to_have_count(0)
