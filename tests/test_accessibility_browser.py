"""Every page a user reaches, checked by axe-core (Deque's rules for WCAG 2 A and AA that a program can
decide: contrast, labels, names that say what a control shows, landmarks, headings) in real
headless Chromium, in the light scheme at desktop width and the dark one at phone width."""

import pytest
from axe_playwright_python.sync_playwright import Axe
from django.utils import timezone
from playwright.sync_api import expect

from chat.models import Conversation, SavedPrompt
from retrieval import services
from retrieval.models import WebSource
from retrieval.tests.helpers import upload

from .test_library_browser import sign_in

pytestmark = [pytest.mark.browser, pytest.mark.slow]

# axe's default rules, and WCAG 2.5.3 "label in name" (a control's name holds the words it shows),
# which the bundled axe still counts as experimental.
AXE_OPTIONS = {"resultTypes": ["violations"], "rules": {"label-content-name-mismatch": {"enabled": True}}}
HANDBOOK = "# Handbook\n\n## Leave\n\nEmployees get 25 days of paid annual leave per year.\n"


@pytest.fixture
def handbook(make_user, make_team, make_collection):
    """A team admin's collection with one document, ingested before the browser starts (the progress
    events it sends cannot run inside Playwright's event loop)."""
    user = make_user("erin", password="pw-erin-12345")
    collection = make_collection(make_team("People", members=[user], role="admin"), "handbook")
    document, _ = upload(collection, "handbook.md", HANDBOOK.encode(), enqueue=False)
    services.documents_ingest(document_ids=[document.id])
    return document


@pytest.mark.parametrize(("scheme", "width"), [("light", 1200), ("dark", 390)])
def test_the_pages_pass_axe(handbook, browser, csp_violations, live_url, scheme, width):
    # Reduced motion: a control caught half-way through a fade would be judged at half its contrast.
    context = browser.new_context(
        viewport={"width": width, "height": 850}, color_scheme=scheme, reduced_motion="reduce"
    )
    page = context.new_page()
    page.on(
        "console", lambda m: csp_violations.append(m.text) if "Content Security Policy" in m.text else None
    )
    axe, found = Axe(), {}

    def check(name: str) -> None:
        violations = axe.run(page, options=AXE_OPTIONS).response["violations"]
        found[name] = [
            f"{v['id']} ({v['impact']}): {[n['target'] for n in v['nodes'][:3]]}" for v in violations
        ]

    page.goto(f"{live_url}/accounts/login/")
    check("sign-in")
    SavedPrompt.objects.create(
        user=handbook.collection.team.members.get(), name="leave", text="How much leave?"
    )
    SavedPrompt.objects.create(team=handbook.collection.team, name="lending", text="Who lends laptops?")
    sign_in(page, live_url, "erin", "pw-erin-12345")
    check("chat, empty")
    page.fill("#question", "/")
    expect(page.locator("#prompt-menu [role=option]")).to_have_count(2)  # one the team's
    check("chat, saved prompts offered")
    page.fill("#question", "")
    page.locator("#attach summary").click()
    expect(page.locator("#attach-url")).to_be_visible()
    check("chat, attach menu")
    page.locator("#attach summary").click()
    page.fill("#question", "How many days of paid leave do employees get?")
    page.keyboard.press("Enter")
    answer = page.locator("article.msg.assistant").first
    expect(answer).to_have_attribute("data-status", "stop", timeout=30_000)
    check("chat, answered")
    answer.hover()  # its tools (copy, regenerate, rate) show on hover and focus
    expect(answer.locator(".tools")).to_have_css("opacity", "1")
    # Asked for less motion, nothing fades or moves (the tools fade in over .15 s otherwise).
    expect(answer.locator(".tools")).to_have_css("transition-duration", "0s")
    check("chat, an answer's tools")
    page.locator("article.msg.user").first.hover()
    check("chat, a question's tools")
    answer.hover()
    answer.get_by_role("button", name="Regenerate the answer").click()
    expect(answer.locator(".versions .count")).to_have_text("2 / 2", timeout=30_000)
    expect(answer).to_have_attribute("data-status", "stop", timeout=30_000)
    check("chat, an answer's versions")
    answer.hover()
    answer.get_by_role("button", name="Mark the answer not helpful").click()
    expect(answer.locator("form.feedback-form")).to_be_visible()
    check("chat, what was wrong")
    answer.locator("button.cite").first.click()
    expect(page.locator("#source-panel")).to_be_visible()
    check("chat, source open")
    page.locator("#share summary").click()
    check("chat, share menu")
    page.locator("#share-create").click()
    expect(page.locator("#share-made")).to_be_visible()
    check("chat, shared")
    page.locator("#share summary").click()
    page.locator("#folder summary").click()
    page.locator("#folder-new input").fill("HR")
    page.get_by_role("button", name="Make it and move here").click()
    expect(page.locator("#folder summary")).to_have_text("Folder: HR")
    page.locator("#folder summary").click()
    expect(page.locator("#folder-form")).to_be_visible()
    check("chat, folder menu")
    page.locator("#folder summary").click()
    check("chat, in a folder")
    page.goto(page.locator("#share-url").input_value())
    expect(page.locator("article.msg.assistant")).to_have_count(1)
    check("a shared conversation")
    WebSource.objects.create(
        collection=handbook.collection,
        url="https://intranet.example.org/handbook/",
        crawl=True,
        status="failed",
        error="the server answered 503",
        synced_at=timezone.now(),
        skipped=[{"url": "https://intranet.example.org/handbook/old", "reason": "the server answered 500"}],
    )
    page.goto(f"{live_url}/library/")
    check("library")
    page.locator("details.web-sources > summary").click()
    expect(page.locator("li.source")).to_have_count(1)
    page.locator("li.source details.skipped > summary").click()
    page.locator("li.source details.source-settings > summary").click()  # its settings form
    page.locator("details.activity > summary").click()  # the team's activity (erin is its admin)
    expect(page.locator(".activity .events li").first).to_be_visible()
    check("library, web sources and activity")
    page.get_by_placeholder("Search passages…").fill("annual leave")
    page.keyboard.press("Enter")
    expect(page.locator("mark").first).to_be_visible()
    check("library, search results")
    page.goto(f"{live_url}/library/documents/{handbook.id}/")
    check("a document's passages")
    page.goto(f"{live_url}/keys/")
    check("API keys")
    Conversation.objects.update(archived_at=timezone.now())  # the account page lists it
    page.goto(f"{live_url}/account/")
    expect(page.locator("ul.archived li")).to_have_count(1)
    expect(page.locator("ul.prompts .team")).to_have_text("People")
    expect(page.locator("#prompt-team")).to_be_visible()
    check("account")
    page.goto(f"{live_url}/accounts/password/")
    check("password")
    context.close()
    assert found == {name: [] for name in found}
