"""The chat page in real headless Chromium: ask, watch the answer stream, open a citation, stay safe
against hostile model output, and survive a reload mid-answer."""

import re
import zipfile

import pytest
from playwright.sync_api import expect

from retrieval import services
from retrieval.tests.helpers import upload

from .test_library_browser import sign_in

pytestmark = [pytest.mark.browser, pytest.mark.slow]

HANDBOOK = (
    "# Handbook\n\n## Leave\n\nEmployees get 25 days of paid annual leave per year.\n\n"
    "## Expenses\n\nTravel expenses are reimbursed within 30 days of the receipt being uploaded.\n"
)


@pytest.fixture
def member(make_user, make_team, make_collection):
    user = make_user("erin", password="pw-erin-12345")
    collection = make_collection(make_team("People", members=[user]), "handbook")
    document, _ = upload(collection, "handbook.md", HANDBOOK.encode(), enqueue=False)
    services.documents_ingest(document_ids=[document.id])
    return user


def answered_by_model(page, provider_url, fake, reply: str):
    """Sign in to an app whose provider replies `reply`, ask, and wait for the answer to finish."""
    fake.reply = reply
    sign_in(page, provider_url, "erin", "pw-erin-12345")
    answer = ask(page, "How many days of paid leave do employees get?")
    expect(answer).to_have_attribute("data-status", "stop", timeout=30_000)
    return answer


def scope_to(page, collection_id: int):
    """Narrow the conversation to one collection with the scope menu."""
    page.locator("#scope summary").click()
    page.locator(f"#scope input[value='{collection_id}']").check()
    page.locator("#scope summary").click()


def drop_file(page, target: str, name: str, text: str) -> bool:
    """Drop a Markdown file on the element `target` selects; whether the page took the drop."""
    return page.evaluate(
        """([target, name, text]) => {
        const files = new DataTransfer();
        files.items.add(new File([text], name, { type: "text/markdown" }));
        return !document.querySelector(target).dispatchEvent(
            new DragEvent("drop", { dataTransfer: files, bubbles: true, cancelable: true }));
        }""",
        [target, name, text],
    )


def ask(page, question: str):
    """Type the question and send it; the first answer's article."""
    page.fill("#question", question)
    page.keyboard.press("Enter")
    return page.locator("article.msg.assistant").first


def test_ask_streams_and_citation_opens(page, live_url, member):
    """Offline answerer: the answer streams in, cites [1], the chip opens the passage with the quoted
    sentence marked, and the answer can be rated."""
    sign_in(page, live_url, "erin", "pw-erin-12345")
    expect(page.locator("#empty-state")).to_contain_text("handbook")
    answer = ask(page, "How many days of paid leave do employees get?")
    expect(answer).to_have_attribute("data-status", "stop", timeout=30_000)
    expect(answer.locator(".body")).to_contain_text("25 days")
    chip = answer.locator("button.cite").first
    expect(chip).to_have_class("cite known")
    expect(chip).to_have_attribute("title", "handbook · Handbook > Leave")  # where it is, on hover
    expect(chip).to_have_accessible_name("Source 1: handbook · Handbook > Leave")
    chip.click()
    expect(page.locator("#source-panel")).to_be_visible()
    expect(page.locator("#source-text")).to_contain_text("25 days of paid annual leave")
    expect(page.locator("#source-text mark")).to_have_text(
        "Employees get 25 days of paid annual leave per year"
    )
    # Under the answer, the source it cites, which opens the same passage.
    page.locator("#source-close").click()
    listed = answer.locator(".source-list button")
    expect(listed).to_have_count(1)
    expect(listed).to_have_accessible_name("Source 1: handbook")
    expect(listed).to_have_attribute("title", "handbook · Handbook > Leave")
    listed.click()
    expect(page.locator("#source-text mark")).to_have_text(
        "Employees get 25 days of paid annual leave per year"
    )
    page.locator("#source-close").click()
    expect(listed).to_be_focused()
    listed.click()
    # The conversation exports as Markdown from the header.
    export = page.locator("#export")
    expect(export).to_be_visible()
    exported = page.request.get(live_url + export.get_attribute("href")).text()
    assert "25 days of paid annual leave" in exported and "Sources:" in exported
    # The whole document opens from the panel, with the signed-in session.
    whole = page.request.get(live_url + page.locator("#source-open").get_attribute("href"))
    assert whole.ok and whole.text() == HANDBOOK
    # And the passage among the document's others, scrolled to and marked.
    with page.context.expect_page() as opened:
        page.locator("#source-context").click()
    context = opened.value
    expect(context.locator("li.passage:target")).to_contain_text("25 days of paid annual leave")
    context.close()
    expect(page.locator("#conversations li")).to_have_count(1)
    answer.hover()
    meta = answer.locator(".meta").inner_text()
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=live_url)
    answer.get_by_role("button", name="Copy the answer with its sources").click()
    copied = page.evaluate("navigator.clipboard.readText()")
    assert "25 days" in copied and copied.endswith("\n\nSources:\n[1] handbook · Handbook > Leave")
    answer.get_by_role("button", name="Mark the answer helpful").click()
    expect(answer.locator(".meta")).to_have_text("Thanks for the feedback")
    expect(answer.locator(".meta")).to_have_text(meta)  # both notes gone, the answer's own back
    from chat.models import Feedback

    assert list(Feedback.objects.values_list("rating", flat=True)) == [1]


def test_not_helpful_asks_in_place_what_was_wrong(page, live_url, member):
    """ "Not helpful" is stored at the click and opens a form under the answer: reasons to tick and
    words, sent with the rating; Skip closes it. The rating shows pressed, also after a reload, and
    the form opens again with what was said."""
    from chat.models import Feedback

    sign_in(page, live_url, "erin", "pw-erin-12345")
    answer = ask(page, "How many days of paid leave do employees get?")
    expect(answer).to_have_attribute("data-status", "stop", timeout=30_000)
    answer.hover()
    not_helpful = answer.get_by_role("button", name="Mark the answer not helpful")
    expect(not_helpful).to_have_attribute("aria-pressed", "false")
    not_helpful.click()
    form = answer.locator("form.feedback-form")
    expect(form.get_by_role("group", name="What was wrong? (optional)")).to_be_visible()
    expect(form.get_by_role("checkbox")).to_have_count(5)
    expect(form.get_by_role("checkbox").first).to_be_focused()
    expect(not_helpful).to_have_attribute("aria-pressed", "true")
    assert list(Feedback.objects.values_list("rating", "reasons", "comment")) == [(-1, [], "")]
    form.get_by_role("checkbox", name="Wrong or missing sources").check()
    form.get_by_role("checkbox", name="Incomplete").check()
    form.get_by_role("textbox", name="Tell us more (optional)").fill("It leaves out carry-over.")
    with page.expect_response(lambda r: r.url.endswith("/feedback") and r.status == 201):
        form.get_by_role("button", name="Send").click()
    expect(form).to_have_count(0)
    expect(answer.locator(".meta")).to_have_text("Thanks for the feedback")
    assert list(Feedback.objects.values_list("rating", "reasons", "comment")) == [
        (-1, ["incomplete", "sources"], "It leaves out carry-over.")
    ]

    page.reload()
    answer = page.locator("article.msg.assistant").first
    answer.hover()
    not_helpful = answer.get_by_role("button", name="Mark the answer not helpful")
    expect(not_helpful).to_have_attribute("aria-pressed", "true")
    not_helpful.click()
    form = answer.locator("form.feedback-form")
    expect(form.get_by_role("checkbox", name="Incomplete")).to_be_checked()
    expect(form.get_by_role("checkbox", name="Not accurate")).not_to_be_checked()
    expect(form.get_by_role("textbox")).to_have_value("It leaves out carry-over.")
    form.get_by_role("button", name="Skip").click()
    expect(form).to_have_count(0)
    # Changing one's mind: helpful instead.
    answer.get_by_role("button", name="Mark the answer helpful").click()
    expect(answer.get_by_role("button", name="Mark the answer helpful")).to_have_attribute(
        "aria-pressed", "true"
    )
    expect(not_helpful).to_have_attribute("aria-pressed", "false")
    assert Feedback.objects.get().rating == 1


POLICY = (
    "# Travel policy\n\n## Trips\n\n"
    + " ".join(
        f"Rule {i}: staff travelling for work keep every receipt\nand send it to the finance team within a week."
        for i in range(39)
    )
    + " Rule 39: staff travelling for work\nbook second-class train tickets through the travel desk.\n"
)


def test_a_quoted_table_row_is_marked_in_its_source(page, live_url, make_user, make_team, make_collection):
    """Offline, a table row is quoted as 'column: value; ...'; its source shows the table and marks
    the row itself."""
    user = make_user("tom", password="pw-tom-123456")
    collection = make_collection(make_team("Travel", members=[user]), "policy")
    table = (
        "# Travel\n\n## Hotels\n\nCaps as of 2026 [2], field per_diem_rate.\n\n"
        "| city | nightly cap |\n|---|---|\n| London | 220 GBP |\n| Berlin | 160 EUR |\n"
    )
    document, _ = upload(collection, "travel.md", table.encode(), enqueue=False)
    services.documents_ingest(document_ids=[document.id])
    sign_in(page, live_url, "tom", "pw-tom-123456")
    answer = ask(page, "What is the nightly cap for hotels in Berlin?")
    expect(answer).to_have_attribute("data-status", "stop", timeout=30_000)
    expect(answer.locator(".body")).to_contain_text("city: Berlin; nightly cap: 160 EUR")
    answer.locator("button.cite").first.click()
    # The passage is rendered: its table as a table with the quoted row marked; its own "[2]" and
    # snake_case words stay text.
    expect(page.locator("#source-text tr.cited")).to_have_count(1)
    assert page.locator("#source-text tr.cited td").all_inner_texts() == ["Berlin", "160 EUR"]
    expect(page.locator("#source-text p")).to_have_text("Caps as of 2026 [2], field per_diem_rate.")
    assert page.locator("#source-text button, #source-text em").count() == 0


def test_a_pdf_source_opens_in_the_browser_at_its_page(page, live_url, make_user, make_team, make_collection):
    """A passage from page 2 of a PDF opens the PDF in the browser's viewer at page 2, not a download."""
    from retrieval.tests.files import pdf_bytes

    user = make_user("pia", password="pw-pia-123456")
    collection = make_collection(make_team("Finance", members=[user]), "policies")
    pages = [
        "Travel policy. Employees book trains for trips under four hours.",
        "Expense policy. Meals abroad are refunded up to forty euros per day with receipts.",
    ]
    document, _ = upload(collection, "handbook.pdf", pdf_bytes(pages), enqueue=False)
    services.documents_ingest(document_ids=[document.id])
    sign_in(page, live_url, "pia", "pw-pia-123456")
    answer = ask(page, "How much are meals abroad refunded?")
    expect(answer).to_have_attribute("data-status", "stop", timeout=30_000)
    answer.locator("button.cite").first.click()
    expect(page.locator("#source-where")).to_have_text("page 2")
    link = page.locator("#source-open")
    expect(link).to_have_text("Open the document at page 2")
    downloads = []
    page.context.on("page", lambda opened: opened.on("download", lambda d: downloads.append(d)))
    with page.context.expect_page() as opening:
        link.click()
    viewer = opening.value
    viewer.wait_for_load_state()
    assert viewer.url == f"{live_url}/api/v1/documents/{document.id}/file#page=2"
    assert viewer.evaluate("document.contentType") == "application/pdf"  # the viewer's page
    assert downloads == []
    viewer.close()


def test_a_shared_conversation_opens_for_a_teammate_read_only(page, live_url, member, make_user):
    """The owner creates a link from the header (copied for them); a teammate opening it sees the
    question and the answer as they were when shared, and a citation opens its passage; once sharing
    stops the link is gone."""
    from retrieval.models import Membership

    teammate = make_user("finn", password="pw-finn-123456")
    services.membership_set(team=member.memberships.get().team, user=teammate, role=Membership.Role.MEMBER)
    sign_in(page, live_url, "erin", "pw-erin-12345")
    answer = ask(page, "How many days of paid leave do employees get?")
    expect(answer).to_have_attribute("data-status", "stop", timeout=30_000)
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=live_url)
    page.locator("#share summary").click()
    page.get_by_role("button", name="Create a link").click()
    link = page.locator("#share-url")
    expect(link).to_have_value(re.compile(rf"^{re.escape(live_url)}/shared/[\w-]+/$"))
    url = link.input_value()
    assert page.evaluate("navigator.clipboard.readText()") == url
    expect(page.locator("#share summary")).to_have_text("Shared")
    expect(page.locator("#share-when")).to_contain_text("It shows this conversation as of")
    page.reload()  # the conversation remembers its link
    page.locator("#share summary").click()
    expect(page.locator("#share-url")).to_have_value(url)
    page.locator("#share summary").click()
    follow_up = page.locator("article.msg.assistant").nth(1)
    page.fill("#question", "And how are travel expenses reimbursed?")
    page.keyboard.press("Enter")
    expect(follow_up).to_have_attribute("data-status", "stop", timeout=30_000)
    expect(page.locator("#share summary")).to_have_text("Shared")  # asking on keeps the link shown

    page.context.clear_cookies()
    sign_in(page, live_url, "finn", "pw-finn-123456")
    page.goto(url)
    expect(page.locator("#shared-by")).to_have_text(
        re.compile(r"^Shared by erin · as it stood on \d+ \w+ \d{4}, \d\d:\d\d UTC · read-only$")
    )
    expect(page.locator("article.msg.user")).to_have_text("How many days of paid leave do employees get?")
    shared = page.locator("article.msg.assistant")
    expect(shared.locator(".body")).to_contain_text("25 days")
    assert page.locator("textarea").count() == 0  # nothing to ask here
    shared.locator("button.cite").first.click()
    expect(page.locator("#source-text")).to_contain_text("25 days of paid annual leave")
    page.locator("#source-close").click()
    shared.locator(".source-list button").click()  # the sources listed under it open the same
    expect(page.locator("#source-text")).to_contain_text("25 days of paid annual leave")

    page.context.clear_cookies()
    sign_in(page, live_url, "erin", "pw-erin-12345")
    page.locator("#conversations .open").first.click()
    page.locator("#share summary").click()
    page.get_by_role("button", name="Stop sharing").click()
    expect(page.locator("#share summary")).to_have_text("Share")
    assert page.request.get(url).status == 404


def test_ask_about_one_document_from_the_library(page, live_url, member):
    """The library's Ask opens the chat narrowed to that document: its answer comes from it alone,
    the conversation keeps the narrowing after a reload, and a new conversation searches everything."""
    from retrieval.models import Collection

    contractors, _ = upload(
        Collection.objects.get(name="handbook"),
        "contractors.md",
        b"# Contractors\n\n## Leave\n\nContractors get 10 days of paid annual leave per year.\n",
        enqueue=False,
    )
    services.documents_ingest(document_ids=[contractors.id])
    sign_in(page, live_url, "erin", "pw-erin-12345")
    page.goto(f"{live_url}/library/")
    page.get_by_role("link", name="Ask about contractors").click()
    expect(page.locator("#scope summary")).to_have_text("Document: contractors")
    expect(page.locator("#question")).to_have_attribute("placeholder", "Ask about contractors…")
    answer = ask(page, "How many days of paid annual leave per year?")
    expect(answer).to_have_attribute("data-status", "stop", timeout=30_000)
    expect(answer.locator(".body")).to_contain_text("10 days")
    expect(answer.locator(".body")).not_to_contain_text("25 days")
    page.reload()
    expect(page.locator("#scope summary")).to_have_text("Document: contractors")
    page.locator("#new-chat").click()
    expect(page.locator("#scope summary")).to_have_text("Collections: all")
    answer = ask(page, "How many days of paid annual leave do employees get per year?")
    expect(answer).to_have_attribute("data-status", "stop", timeout=30_000)
    expect(answer.locator(".body")).to_contain_text("25 days")


def test_hash_and_a_name_narrows_the_question_to_documents_chosen_in_the_box(page, live_url, member):
    """ "#" and part of a document's name, typed anywhere in the question, offers the ready documents
    so named (with their collection); the chosen one narrows the conversation and leaves the box,
    another joins it, and the answer comes from them alone."""
    from retrieval.models import Collection

    handbook = Collection.objects.get(name="handbook")
    contractors, _ = upload(
        handbook,
        "contractors.md",
        b"# Contractors\n\n## Leave\n\nContractors get 10 days of paid annual leave per year.\n",
        enqueue=False,
    )
    services.documents_ingest(document_ids=[contractors.id])
    upload(handbook, "contracts draft.md", b"# Draft\n\nNot read yet.\n", enqueue=False)  # not ready
    sign_in(page, live_url, "erin", "pw-erin-12345")
    box, menu = page.locator("#question"), page.locator("#prompt-menu")
    box.fill("How many days of paid annual leave per year? #CONTR")
    expect(menu).to_have_attribute("aria-label", "Documents")
    expect(menu.get_by_role("option")).to_have_text(["contractors handbook"])
    page.keyboard.press("Enter")
    expect(menu).to_be_hidden()
    expect(box).to_have_value("How many days of paid annual leave per year? ")
    expect(page.locator("#scope summary")).to_have_text("Document: contractors")
    expect(page.locator("article.msg")).to_have_count(0)  # chosen, not sent

    # Another joins it; one chosen already is not offered again; Esc closes the list as typed.
    box.press("End")
    page.keyboard.type("#")
    expect(menu.get_by_role("option")).to_have_count(1)
    expect(menu.get_by_role("option")).to_contain_text("handbook")
    page.keyboard.press("Escape")
    expect(menu).to_be_hidden()
    expect(box).to_have_value("How many days of paid annual leave per year? #")
    page.keyboard.press("Backspace")
    page.keyboard.type("#hand")
    menu.get_by_role("option").first.click()
    expect(page.locator("#scope summary")).to_have_text("Documents: contractors, handbook")
    expect(box).to_be_focused()

    page.locator("#scope summary").click()
    page.get_by_role("button", name="Search the collections instead").click()
    expect(page.locator("#scope summary")).to_have_text("Collections: all")
    box.fill("#contr")
    expect(menu.get_by_role("option")).to_have_count(1)
    page.keyboard.press("Tab")
    box.fill("How many days of paid annual leave per year?")
    page.keyboard.press("Enter")
    answer = page.locator("article.msg.assistant").first
    expect(answer).to_have_attribute("data-status", "stop", timeout=30_000)
    expect(answer.locator(".body")).to_contain_text("10 days")
    expect(answer.locator(".body")).not_to_contain_text("25 days")


def test_a_file_attached_in_the_composer_is_read_then_asked_about(page, live_url, member, worker, tmp_path):
    """The composer's attach menu uploads to the chosen collection; the file's row shows its reading
    and then ready, the conversation is narrowed to it, and the answer comes from it. A file that is
    not what its name says fails in words, and asks nothing."""
    from retrieval.models import Collection, Document

    user = member
    notes = Collection.objects.create(team=user.teams.get(), name="notes")
    rota = tmp_path / "rota.md"
    rota.write_text("# Rota\n\nThe on-call rota changes every Tuesday at nine.\n")
    fake = tmp_path / "scan.pdf"
    fake.write_text("not a PDF at all")
    sign_in(page, live_url, "erin", "pw-erin-12345")
    page.locator("#attach summary").click()
    page.select_option("#attach-collection", str(notes.id))
    page.locator("#attach-file").set_input_files([str(rota), str(fake)])
    expect(page.locator("#attached li", has_text="scan.pdf")).to_have_attribute("data-status", "failed")
    expect(page.locator("#attached li", has_text="scan.pdf")).to_contain_text("does not match")
    row = page.locator("#attached li", has_text="rota.md")
    expect(row).to_have_attribute("data-status", "ready", timeout=60_000)
    expect(page.locator("#scope summary")).to_have_text("Document: rota")
    assert Document.objects.get(original_name="rota.md").collection_id == notes.id
    answer = ask(page, "When does the on-call rota change?")
    expect(answer).to_have_attribute("data-status", "stop", timeout=30_000)
    expect(answer.locator(".body")).to_contain_text("every Tuesday at nine")
    page.reload()
    expect(page.locator("#scope summary")).to_have_text("Document: rota")
    # A done row can be removed; a ready file's removal widens the question again.
    page.locator("#new-chat").click()
    page.locator("#attach summary").click()
    page.select_option("#attach-collection", str(notes.id))
    page.locator("#attach-file").set_input_files(str(rota))  # the same bytes: not read again
    expect(page.locator("#attached li")).to_have_attribute("data-status", "ready", timeout=30_000)
    expect(page.locator("#scope summary")).to_have_text("Document: rota")
    page.get_by_role("button", name="Remove rota.md").click()
    expect(page.locator("#attached")).to_be_hidden()
    expect(page.locator("#scope summary")).to_have_text("Collections: all")
    assert Document.objects.filter(original_name="rota.md").count() == 1
    # A file dropped on the conversation is attached too, to the collection the scope names.
    scope_to(page, notes.id)
    drop_file(page, "#messages", "menu.md", "# Menu\n\nLunch is served at noon.\n")
    expect(page.locator("#attached li", has_text="menu.md")).to_have_attribute(
        "data-status", "ready", timeout=30_000
    )
    assert Document.objects.get(original_name="menu.md").collection_id == notes.id
    # Dropped on the sidebar, a file is not opened in place of the chat (the drop is taken).
    assert drop_file(page, "#conversations", "stray.md", "x")
    expect(page.locator("#attached li", has_text="stray.md")).to_have_count(0)


def test_a_web_page_attached_in_the_composer_is_read_then_asked_about(
    page, live_url, member, worker, fake_site
):
    """An address given in the attach menu is read into the chosen collection as a web source; its
    row shows the page's title once read, the conversation is narrowed to it, and the answer comes
    from it, linking the page. An address that cannot be read says why."""
    from retrieval.models import Collection, WebSource

    notes = Collection.objects.create(team=member.teams.get(), name="notes")
    fake_site.html("/pantry", "Pantry rules", "The pantry is restocked every Thursday morning.")
    sign_in(page, live_url, "erin", "pw-erin-12345")
    for address in (f"{fake_site.origin}/pantry", f"{fake_site.origin}/missing"):
        page.locator("#attach summary").click()
        page.select_option("#attach-collection", str(notes.id))
        page.fill("#attach-url", address)
        page.keyboard.press("Enter")  # attaches the page; sends no question
    row = page.locator("#attached li", has_text="Pantry rules")
    expect(row).to_have_attribute("data-status", "ready", timeout=60_000)
    missing = page.locator("#attached li", has_text="/missing")
    expect(missing).to_have_attribute("data-status", "failed", timeout=30_000)
    expect(missing).to_contain_text("not there (404)")
    expect(page.locator("#scope summary")).to_have_text("Document: Pantry rules")
    expect(page.locator("article.msg")).to_have_count(0)
    assert WebSource.objects.get(url=f"{fake_site.origin}/pantry").collection_id == notes.id
    answer = ask(page, "When is the pantry restocked?")
    expect(answer).to_have_attribute("data-status", "stop", timeout=30_000)
    expect(answer.locator(".body")).to_contain_text("every Thursday morning")
    answer.locator("button.cite").first.click()
    expect(page.locator("#source-web")).to_have_attribute("href", f"{fake_site.origin}/pantry")


def test_a_file_attached_while_asking_a_shared_collection_goes_to_the_users_own(
    page, live_url, member, worker, make_team, make_collection
):
    """A collection another team shares is read-only: when the conversation asks only it, the attach
    menu offers the user's own collection instead, and a file dropped on the conversation lands there."""
    from retrieval.models import Document

    own = member.teams.get().collections.get()
    policies = make_collection(make_team("Legal"), "policies")
    services.collection_share(collection=policies, teams=[member.teams.get().id])
    sign_in(page, live_url, "erin", "pw-erin-12345")
    scope_to(page, policies.id)
    page.locator("#attach summary").click()
    expect(page.locator(f"#attach-collection option[value='{policies.id}']")).to_have_count(0)
    expect(page.locator("#attach-collection")).to_have_value(str(own.id))
    page.locator("#attach summary").click()
    drop_file(page, "#messages", "menu.md", "# Menu\n\nLunch is served at noon.\n")
    expect(page.locator("#attached li", has_text="menu.md")).to_have_attribute(
        "data-status", "ready", timeout=30_000
    )
    assert Document.objects.get(original_name="menu.md").collection_id == own.id


def test_a_question_waits_for_an_attached_file_and_not_for_one_deleted_meanwhile(
    page, live_app, member, tmp_path, settings
):
    """While an attached file waits to be read, a question is held back with a reason; deleted
    meanwhile, the file's row says so and questions go again."""
    from retrieval import services
    from retrieval.models import Document

    # The app's Redis database of its own: its tasks reach no worker, so the file stays queued.
    base = live_app(REDIS_URL=settings.REDIS_URL.rsplit("/", 1)[0] + "/7")
    rota = tmp_path / "rota.md"
    rota.write_text("# Rota\n\nThe on-call rota changes every Tuesday at nine.\n")
    sign_in(page, base, "erin", "pw-erin-12345")
    page.locator("#attach summary").click()
    page.locator("#attach-file").set_input_files(str(rota))
    row = page.locator("#attached li", has_text="rota.md")
    expect(row).to_have_attribute("data-status", "reading")
    ask(page, "How many days of paid leave do employees get?")
    expect(page.locator("#connection")).to_contain_text("still being read")
    expect(page.locator("article.msg.user")).to_have_count(0)
    services.document_delete(document=Document.objects.get(original_name="rota.md"))
    expect(row).to_have_attribute("data-status", "failed", timeout=30_000)
    answer = ask(page, "How many days of paid leave do employees get?")
    expect(answer).to_have_attribute("data-status", "stop", timeout=30_000)


def test_a_long_source_stays_inside_the_page_and_the_composer_in_view(page, live_url, member):
    """Opening a long passage scrolls the panel, not the page: the question box stays on screen, and
    the sentence the answer quotes is marked and in view."""
    from retrieval.models import Collection

    collection = Collection.objects.get(name="handbook")
    document, _ = upload(collection, "travel.md", POLICY.encode(), enqueue=False)
    services.documents_ingest(document_ids=[document.id])
    page.set_viewport_size({"width": 1200, "height": 600})
    sign_in(page, live_url, "erin", "pw-erin-12345")
    answer = ask(page, "Which train tickets do staff book through the travel desk?")
    expect(answer).to_have_attribute("data-status", "stop", timeout=30_000)
    answer.locator("button.cite").first.click()
    expect(page.locator("#source-text")).to_contain_text("second-class")
    # The quoted sentence, wrapped over two lines in the source, is marked and scrolled to.
    mark = page.locator("#source-text mark").first
    expect(mark).to_contain_text(
        "Rule 39: staff travelling for work book second-class train tickets through the travel desk"
    )
    expect(mark).to_be_in_viewport()
    page_height, viewport = page.evaluate("[document.documentElement.scrollHeight, window.innerHeight]")
    assert page_height <= viewport
    assert page.locator(".composer").bounding_box()["y"] + 40 <= viewport
    panel = page.evaluate("(p => [p.scrollHeight, p.clientHeight])(document.getElementById('source-panel'))")
    assert panel[0] > panel[1]  # the passage is longer than the panel, which scrolls
    # On a phone the top bar wraps to two lines; the question box still ends inside the window.
    page.set_viewport_size({"width": 320, "height": 800})
    assert page.locator(".topbar").bounding_box()["height"] > 60  # wrapped
    page.locator("#source-close").click()
    box = page.locator(".composer").bounding_box()
    assert box["y"] + box["height"] <= 800
    assert page.evaluate("document.documentElement.scrollHeight") <= 800
    # The keys' hint would wrap out of the phone's question box: its placeholder is the short one.
    expect(page.locator("#question")).to_have_attribute("placeholder", "Ask a question…")
    # The header: the title keeps most of a line beside the menu button, and the share and scope
    # menus open inside the screen.
    assert page.locator("#chat-title").bounding_box()["width"] > 0.6 * 320
    for summary, menu in (("#share summary", "#share .menu"), ("#scope summary", "#scope fieldset")):
        page.locator(summary).click()
        opened = page.locator(menu).bounding_box()
        assert opened["x"] >= 0 and opened["x"] + opened["width"] <= 320, menu
        page.locator(summary).click()


def test_any_question_can_be_edited_into_a_new_version_of_it(page, live_url, member):
    """Edit puts a question's words back in the box; sent, they are a new version of the question,
    answered anew, and "‹ 2 / 2 ›" under it turns back to the old words with their answer and what
    followed them; a reload shows the version turned to. The first question can be edited too."""
    sign_in(page, live_url, "erin", "pw-erin-12345")
    first = ask(page, "How are travel expenses reimbursed?")
    expect(first).to_have_attribute("data-status", "stop", timeout=30_000)
    page.fill("#question", "How many days of paid leaf?")
    page.keyboard.press("Enter")
    answers = page.locator("article.msg.assistant")
    expect(answers).to_have_count(2)
    expect(answers.nth(1)).not_to_have_class("msg assistant streaming", timeout=30_000)
    expect(answers.nth(1)).to_have_attribute("data-status", "stop", timeout=30_000)
    questions = page.locator("article.msg.user")
    last = questions.nth(1)
    # Edit sits beside the question, not in a row of its own under it.
    bubble, words = last.bounding_box(), last.locator(".body").bounding_box()
    assert bubble["height"] - words["height"] < 24
    last.hover()
    last.get_by_role("button", name="Edit your question").click()
    expect(page.locator("#question")).to_have_value("How many days of paid leaf?")
    page.fill("#question", "How many days of paid leave do employees get?")
    page.keyboard.press("Enter")
    expect(last.locator(".body")).to_have_text("How many days of paid leave do employees get?")
    expect(answers).to_have_count(2)
    expect(answers.nth(1)).to_have_attribute("data-status", "stop", timeout=30_000)
    expect(answers.nth(1).locator(".body")).to_contain_text("25 days")
    expect(questions).to_have_count(2)
    pager = last.locator(".versions")
    expect(pager.locator(".count")).to_have_text("2 / 2")

    with page.expect_response(lambda r: r.url.endswith("/choose")):
        pager.get_by_role("button", name="Previous version of the question").click()
    expect(questions.nth(1).locator(".body")).to_have_text("How many days of paid leaf?")
    expect(questions.nth(1).locator(".versions .count")).to_have_text("1 / 2")
    expect(questions.nth(1).get_by_role("button", name="Next version of the question")).to_be_focused()
    expect(answers).to_have_count(2)
    page.reload()
    expect(page.locator("article.msg.user").nth(1).locator(".body")).to_have_text(
        "How many days of paid leaf?"
    )
    page.locator("article.msg.user").nth(1).get_by_role("button", name="Next version of the question").click()
    expect(page.locator("article.msg.user").nth(1).locator(".body")).to_have_text(
        "How many days of paid leave do employees get?"
    )
    expect(page.locator("article.msg.assistant").nth(1).locator(".body")).to_contain_text("25 days")

    # The first question reworded starts the conversation anew; turning back brings the rest back.
    opening = page.locator("article.msg.user").first
    opening.hover()
    opening.get_by_role("button", name="Edit your question").click()
    page.fill("#question", "How are train tickets booked?")
    page.keyboard.press("Enter")
    expect(page.locator("article.msg.assistant").first).to_have_attribute(
        "data-status", "stop", timeout=30_000
    )
    expect(page.locator("article.msg")).to_have_count(2)
    expect(opening.locator(".versions .count")).to_have_text("2 / 2")
    opening.get_by_role("button", name="Previous version of the question").click()
    expect(page.locator("article.msg")).to_have_count(4)
    expect(page.locator("article.msg.user").nth(1).locator(".body")).to_have_text(
        "How many days of paid leave do employees get?"
    )
    # Up in the empty box edits the last question; Esc lets it go.
    page.locator("#question").focus()
    page.keyboard.press("ArrowUp")
    expect(page.locator("#question")).to_have_value("How many days of paid leave do employees get?")
    expect(page.locator("#connection")).to_contain_text("Editing your question")
    page.keyboard.press("Escape")
    expect(page.locator("#question")).to_have_value("")


def test_an_archived_conversation_leaves_the_list_and_comes_back_when_asked_in(page, live_url, member):
    """Archive in the header takes the open conversation out of the sidebar; the account page lists
    it and opens it, and a question asked in it brings it back to the list."""
    from chat import services as chat_services

    chat_services.exchange_start(
        user=member, conversation_id=None, request_id="keep", content="Parking at the office?", collection_ids=None
    )  # fmt: skip
    sign_in(page, live_url, "erin", "pw-erin-12345")
    first = ask(page, "How many days of paid leave do employees get?")
    expect(first).to_have_attribute("data-status", "stop", timeout=30_000)
    items = page.locator("#conversations li")
    expect(items).to_have_count(2)
    page.get_by_role("button", name="Archive the conversation").click()
    expect(items).to_have_count(1)
    expect(items.first).to_contain_text("Parking at the office?")
    expect(page.locator("#connection")).to_contain_text("Archived")
    expect(page.get_by_role("button", name="Unarchive the conversation")).to_be_visible()

    page.goto(f"{live_url}/account/")
    expect(page.locator("#archived")).to_be_visible()
    page.get_by_role("link", name="How many days of paid leave do employees…").click()
    expect(page.locator("article.msg.assistant")).to_have_count(1)
    expect(page.get_by_role("button", name="Unarchive the conversation")).to_be_visible()
    expect(items).to_have_count(1)
    page.fill("#question", "And sick leave?")
    page.keyboard.press("Enter")
    expect(page.locator("article.msg.assistant").nth(1)).to_have_attribute(
        "data-status", re.compile("."), timeout=30_000
    )
    expect(items).to_have_count(2)
    expect(page.get_by_role("button", name="Archive the conversation")).to_be_visible()


def test_the_sidebar_finds_conversations_by_what_was_said(page, live_url, member):
    """Typing in the sidebar's search keeps the conversations whose title or messages hold the words;
    archived ones it finds come last, under "Archived", and open as usual."""
    from chat import services as chat_services
    from chat.models import Conversation

    made = [
        chat_services.exchange_start(
            user=member, conversation_id=None, request_id=f"s{n}", content=question, collection_ids=None
        )["conversation_id"]
        for n, question in enumerate(
            ["Parking at the office?", "Laptop refresh cycle?", "Old laptop returns?"]
        )
    ]
    chat_services.conversation_archive(conversation=Conversation.objects.get(id=made[2]), archived=True)
    sign_in(page, live_url, "erin", "pw-erin-12345")
    items = page.locator("#conversations li")
    expect(items).to_have_count(2)
    page.fill("#conversation-search", "LAPTOP")
    expect(items).to_have_count(2)
    expect(items.first).to_contain_text("Laptop refresh cycle?")
    expect(items.nth(1)).to_contain_text("Old laptop returns?")
    expect(items.nth(1)).to_have_attribute("data-group", "Archived")
    items.nth(1).hover()
    expect(items.nth(1).get_by_role("button", name="Pin Old laptop returns?")).to_be_hidden()
    items.nth(1).locator(".open").click()
    expect(page.locator("#chat-title")).to_have_text("Old laptop returns?")
    expect(page.locator("#archive")).to_have_text("Unarchive")
    page.fill("#conversation-search", "")
    expect(items).to_have_count(2)


def test_a_search_result_shows_where_its_words_were_said_and_opens_there(page, live_url, member):
    """A result found in a message shows a snippet with the words marked; opening it brings that
    message (here an early answer of a long conversation) into view, its words marked."""
    from chat import services as chat_services

    filler = " ".join(["Equipment is handled by the IT desk, which keeps a record of each request."] * 12)
    conversation = None
    for n in range(6):
        ids = chat_services.exchange_start(
            user=member,
            conversation_id=conversation,
            request_id=f"f{n}",
            content=f"Question {n} about equipment?",
            collection_ids=None,
        )
        conversation = ids["conversation_id"]
        said = "Ask for a Docking Station at the desk." if n == 1 else ""
        chat_services.message_finish(
            message_id=ids["message_id"],
            text=f"{filler} {said} {filler}",
            status="complete",
            finish_reason="stop",
        )
        if n == 1:
            found = ids["message_id"]
    sign_in(page, live_url, "erin", "pw-erin-12345")
    page.fill("#conversation-search", "docking station")
    items = page.locator("#conversations li")
    expect(items).to_have_count(1)
    snippet = items.first.locator(".snippet")
    expect(snippet).to_contain_text("Ask for a Docking Station at the desk.")
    expect(snippet.locator("mark")).to_have_text("Docking Station")
    items.first.locator("button.open").click()
    answer = page.locator(f'article.msg.assistant[data-message="{found}"]')
    expect(answer).to_have_class(re.compile(r"\bfound\b"))
    expect(answer.locator(".body mark")).to_have_text("Docking Station")
    expect(answer.locator(".body mark")).to_be_in_viewport()
    expect(page.locator("article.msg.assistant").last).not_to_be_in_viewport()
    # The conversation names the browser's tab, and heads the page without the snippet.
    expect(page).to_have_title("Question 0 about equipment? · Docent")
    expect(page.locator("#chat-title")).to_have_text("Question 0 about equipment?")
    page.locator("#new-chat").click()
    expect(page).to_have_title("Docent")


def test_a_search_result_in_a_version_not_shown_offers_to_show_it(page, live_url, member):
    """Words found only in an answer's earlier version: the conversation opens as it was left, says
    where they are, and turns to that version on request, the words marked. A new conversation
    started afterwards has no versions of its own."""
    from chat import services as chat_services

    ids = chat_services.exchange_start(
        user=member, conversation_id=None, request_id="v0", content="Where do I get a dock?", collection_ids=None
    )  # fmt: skip
    chat_services.message_finish(
        message_id=ids["message_id"], text="Ask for a Docking Station at the desk.", status="complete"
    )
    again = chat_services.answer_regenerate(user=member, message_id=ids["message_id"], request_id="v1")
    chat_services.message_finish(
        message_id=again["message_id"], text="The IT desk has them.", status="complete"
    )
    sign_in(page, live_url, "erin", "pw-erin-12345")
    page.fill("#conversation-search", "docking station")
    items = page.locator("#conversations li")
    expect(items.first.locator(".snippet mark")).to_have_text("Docking Station")  # the search's list
    items.first.locator("button.open").click()
    expect(page.locator("article.msg.assistant .body")).to_have_text("The IT desk has them.")
    note = page.locator("#messages .found-elsewhere")
    expect(note).to_contain_text("Found in another version of this conversation.")
    note.get_by_role("button", name="Show that version").click()
    answer = page.locator(f'article.msg.assistant[data-message="{ids["message_id"]}"]')
    expect(answer.locator(".body mark")).to_have_text("Docking Station")
    expect(answer).to_have_class(re.compile(r"\bfound\b"))
    expect(answer.locator(".versions .count")).to_have_text("1 / 2")
    expect(note).to_have_count(0)

    page.locator("#new-chat").click()
    first = ask(page, "How many days of paid leave do employees get?")
    expect(first).to_have_attribute("data-status", "stop", timeout=30_000)
    expect(page.locator("article.msg.user .versions")).to_be_hidden()


def test_a_saved_prompt_is_put_in_the_box_by_typing_its_name(page, live_url, member):
    """ "/" and the start of a name offers the saved prompts so named; arrows choose, Enter puts the
    text in the box (not sent), and it is then sent as any question; Esc closes the list."""
    from chat.models import SavedPrompt

    SavedPrompt.objects.create(
        user=member, name="leave", text="How many days of paid leave do employees get?"
    )
    SavedPrompt.objects.create(user=member, name="legal", text="Who reviews contracts?")
    SavedPrompt.objects.create(user=member, name="travel", text="How are travel expenses reimbursed?")
    from retrieval.models import Team

    # The team's prompts come after the person's own, marked with the team's name.
    SavedPrompt.objects.create(
        team=Team.objects.get(name="People"), name="lending", text="Who lends laptops?"
    )
    sign_in(page, live_url, "erin", "pw-erin-12345")
    box, menu = page.locator("#question"), page.locator("#prompt-menu")
    box.fill("/le")
    expect(menu.get_by_role("option")).to_have_count(3)
    expect(menu.get_by_role("option").nth(2)).to_have_text("/lending People Who lends laptops?")
    expect(menu.get_by_role("option", selected=True)).to_contain_text("/leave")
    page.keyboard.press("ArrowDown")
    expect(menu.get_by_role("option", selected=True)).to_contain_text("/legal")
    page.keyboard.press("Escape")
    expect(menu).to_be_hidden()
    expect(box).to_have_value("/le")
    page.keyboard.type("a")
    expect(menu.get_by_role("option")).to_have_count(1)
    page.keyboard.press("Enter")
    expect(box).to_have_value("How many days of paid leave do employees get?")
    expect(menu).to_be_hidden()
    expect(page.locator("article.msg")).to_have_count(0)  # put in the box, not sent
    page.keyboard.press("Enter")
    answer = page.locator("article.msg.assistant").first
    expect(answer).to_have_attribute("data-status", "stop", timeout=30_000)
    expect(answer.locator(".body")).to_contain_text("25 days")
    box.fill("/tr")
    menu.get_by_role("option").filter(has_text="/travel").click()
    expect(box).to_have_value("How are travel expenses reimbursed?")
    expect(box).to_be_focused()

    # A prompt's blanks are selected in turn to be typed over; past the last, Tab leaves the box.
    SavedPrompt.objects.create(user=member, name="brief", text="Summarise {{topic}} for {{audience}}.")
    page.reload()
    box.fill("/bri")
    page.keyboard.press("Enter")
    page.keyboard.type("parental leave")
    expect(box).to_have_value("Summarise parental leave for {{audience}}.")
    page.keyboard.press("Tab")
    page.keyboard.type("new staff")
    expect(box).to_have_value("Summarise parental leave for new staff.")
    page.keyboard.press("Tab")
    expect(box).not_to_be_focused()


def test_the_account_page_downloads_every_conversation_and_deletes_them_all(page, live_url, member):
    """The user's name opens their account page: "Download them all" saves a zip of the
    conversations; deleting them all needs the box ticked, and leaves the chat's sidebar empty."""
    from chat import services as chat_services

    for n, question in enumerate(["Parking at the office?", "Laptop refresh cycle?"]):
        chat_services.exchange_start(
            user=member, conversation_id=None, request_id=f"a{n}", content=question, collection_ids=None
        )
    sign_in(page, live_url, "erin", "pw-erin-12345")
    page.get_by_role("link", name="erin").click()
    expect(page.get_by_role("heading", name="Your account")).to_be_visible()
    expect(page.locator("main")).to_contain_text("You have 2 conversations.")
    with page.expect_download() as download:
        page.get_by_role("link", name="Download them all").click()
    archive = zipfile.ZipFile(download.value.path())
    assert sorted(n.split(" ", 1)[1] for n in archive.namelist() if n.endswith(".md")) == [
        "Laptop refresh cycle.md",
        "Parking at the office.md",
    ]
    delete = page.get_by_role("button", name="Delete all conversations")
    delete.click()  # the box is not ticked: the browser keeps the form
    expect(page.locator("main")).to_contain_text("You have 2 conversations.")
    page.get_by_role("checkbox").check()
    delete.click()
    expect(page.get_by_role("status")).to_have_text("2 conversations deleted.")
    page.get_by_role("link", name="Chat").click()
    expect(page.locator("#empty-state")).to_be_visible()
    expect(page.locator("#conversations li")).to_have_count(0)


def test_a_pinned_conversation_stays_on_top(page, live_url, member):
    from chat import services as chat_services

    for i, question in enumerate(["Leave rules?", "Laptop refresh cycle?"]):
        chat_services.exchange_start(
            user=member, conversation_id=None, request_id=f"pin{i}", collection_ids=None, content=question
        )
    sign_in(page, live_url, "erin", "pw-erin-12345")
    items = page.locator("#conversations li")
    expect(items.first).to_contain_text("Laptop refresh cycle?")
    items.nth(1).hover()
    page.get_by_role("button", name="Pin Leave rules?").click()
    expect(items.first).to_contain_text("Leave rules?")
    expect(items.first).to_have_class("pinned")
    page.reload()
    expect(page.locator("#conversations li").first).to_contain_text("Leave rules?")
    page.locator("#conversations li").first.hover()
    page.get_by_role("button", name="Unpin Leave rules?").click()
    expect(page.locator("#conversations li").first).to_contain_text("Laptop refresh cycle?")


def test_the_sidebar_groups_conversations_by_when_they_were_last_active(page, live_url, member):
    """Pinned ones first, then Today, Yesterday, the previous 7 and 30 days, then by month: a
    heading over the first conversation of each group (this machine's and the browser's day)."""
    from datetime import timedelta

    from django.utils import timezone

    from chat.models import Conversation

    now = timezone.now()
    ages = {"Old pin": 50, "Now": 0, "Earlier today": 0, "Yesterday's": 1, "This week's": 3}
    ages |= {"This month's": 12, "Last year's": 400}
    for n, (title, days) in enumerate(ages.items()):
        conversation = Conversation.objects.create(owner=member, title=title)
        Conversation.objects.filter(id=conversation.id).update(
            updated_at=now - timedelta(days=days, seconds=n),
            pinned_at=now if title == "Old pin" else None,
        )
    sign_in(page, live_url, "erin", "pw-erin-12345")
    items = page.locator("#conversations li")
    expect(items).to_have_count(len(ages))
    groups = items.evaluate_all(
        "lis => lis.map(li => [li.textContent.split(/Pin|Unpin/)[0], li.dataset.group || null])"
    )
    assert groups == [
        ["Old pin", "Pinned"],
        ["Now", "Today"],
        ["Earlier today", None],
        ["Yesterday's", "Yesterday"],
        ["This week's", "Previous 7 days"],
        ["This month's", "Previous 30 days"],
        ["Last year's", (now - timedelta(days=400)).strftime("%B %Y")],
    ]
    heading = items.nth(1).evaluate("li => getComputedStyle(li, '::before').content")
    assert heading == '"Today"'


def test_conversations_are_kept_in_folders_made_renamed_and_deleted_from_the_header(page, live_url, member):
    """The header's Folder menu moves the open conversation into a new or an existing folder; the
    sidebar lists each folder's conversations under its heading, after the pinned ones, a heading
    that folds them away (remembered) and takes a conversation dragged onto it; the folder is
    renamed and deleted from the menu, its conversations staying."""
    from chat import services as chat_services

    for i, question in enumerate(["Leave rules?", "Laptop refresh cycle?", "Expenses?"]):
        chat_services.exchange_start(
            user=member, conversation_id=None, request_id=f"fo{i}", collection_ids=None, content=question
        )
    sign_in(page, live_url, "erin", "pw-erin-12345")
    items = page.locator("#conversations li[data-id]")
    heads = page.locator("#conversations li.folder-head")
    expect(items).to_have_count(3)
    expect(page.locator("textarea")).to_have_count(1)  # the question box (CONTRACT), alone
    items.filter(has_text="Leave rules?").locator(".open").click()
    menu = page.locator("#folder")
    expect(menu.locator("summary")).to_have_text("Folder: none")
    menu.locator("summary").click()
    expect(menu.get_by_role("button", name="No folder")).to_have_attribute("aria-pressed", "true")
    menu.get_by_role("textbox", name="Name of a new folder").fill("HR questions")
    menu.get_by_role("button", name="Make it and move here").click()
    expect(menu.locator("summary")).to_have_text("Folder: HR questions")
    expect(page.locator("#conversations > li").first).to_have_class("folder-head")
    expect(heads.locator(".fold")).to_have_text(["HR questions"])
    expect(items.first).to_contain_text("Leave rules?")
    expect(items.nth(1)).to_have_attribute("data-group", "Today")

    # Another conversation into the same folder, chosen from the list; a name in use is refused.
    items.filter(has_text="Expenses?").locator(".open").click()
    expect(menu.locator("summary")).to_have_text("Folder: none")
    menu.locator("summary").click()
    menu.get_by_role("textbox", name="Name of a new folder").fill("hr QUESTIONS")
    menu.get_by_role("button", name="Make it and move here").click()
    expect(menu.locator("#folder-error")).to_contain_text("you have a folder named")
    menu.get_by_role("button", name="HR questions").click()
    expect(menu.locator("summary")).to_have_text("Folder: HR questions")
    expect(items.nth(0)).to_contain_text("Expenses?")
    expect(items.nth(1)).to_contain_text("Leave rules?")
    expect(items.nth(2)).to_have_attribute("data-group", "Today")

    # The third, dragged onto the folder's heading; the heading folds them away, after a reload too.
    items.filter(has_text="Laptop refresh cycle?").drag_to(heads.first)
    expect(items.filter(has_text="Laptop refresh cycle?")).to_have_attribute(
        "data-folder", re.compile(r"\d+")
    )
    fold = heads.first.locator(".fold")
    fold.click()
    expect(fold).to_have_attribute("aria-expanded", "false")
    expect(items.filter(has_text="Leave rules?")).to_be_hidden()
    page.reload()
    expect(heads.first.locator(".fold")).to_have_attribute("aria-expanded", "false")
    expect(items.filter(has_text="Expenses?")).to_be_hidden()
    heads.first.locator(".fold").click()
    expect(items.filter(has_text="Expenses?")).to_be_visible()

    # What its conversations follow: instructions, and the collections a new one searches.
    menu.locator("summary").click()
    menu.get_by_label("Instructions for its conversations").fill("Answer for the Berlin office.")
    menu.get_by_role("checkbox", name="handbook").check()
    menu.get_by_role("button", name="Save").click()
    expect(menu.locator("#folder-saved")).to_have_text("Saved.")
    menu.locator("summary").click()
    expect(page.locator("textarea")).to_have_count(1)  # the instructions' box goes with the menu
    from chat.models import Folder

    folder = Folder.objects.get(name="HR questions")
    assert folder.instructions == "Answer for the Berlin office."
    assert [c.name for c in folder.collections.all()] == ["handbook"]

    # A new conversation started from the heading's + is asked in the folder, in its collections.
    expect(page.locator("#scope-label")).to_have_text("all")
    heads.first.hover()
    heads.first.get_by_role("button", name="New conversation in HR questions").click()
    expect(page.locator("#chat-title")).to_have_text("New conversation")
    expect(menu.locator("summary")).to_have_text("Folder: HR questions")
    expect(page.locator("#scope-label")).to_have_text("handbook")
    answer = ask(page, "How many days of paid leave do employees get?")
    expect(answer).to_have_attribute("data-status", "stop", timeout=30_000)
    expect(items).to_have_count(4)
    expect(items.nth(0)).to_contain_text("How many days of paid leave")
    expect(items.nth(0)).to_have_attribute("data-folder", re.compile(r"\d+"))

    # Renamed and deleted from the menu; its conversations stay.
    expect(page.locator("#folder summary")).to_have_text("Folder: HR questions")  # the open one, again
    page.once("dialog", lambda dialog: dialog.accept("People"))
    menu.locator("summary").click()
    menu.get_by_role("button", name="Rename the folder").click()
    expect(menu.locator("summary")).to_have_text("Folder: People")
    expect(heads.locator(".fold")).to_have_text(["People"])
    page.once("dialog", lambda dialog: dialog.accept())
    menu.get_by_role("button", name="Delete the folder").click()  # the menu stayed open
    expect(menu.locator("summary")).to_have_text("Folder: none")
    expect(heads).to_have_count(0)
    expect(items).to_have_count(4)
    expect(items.first).to_have_attribute("data-group", "Today")
    # A new conversation starts in no folder, or in one chosen before its first question.
    page.get_by_role("button", name="New conversation").click()
    expect(menu.locator("summary")).to_have_text("Folder: none")
    menu.locator("summary").click()
    menu.get_by_role("textbox", name="Name of a new folder").fill("Travel")
    menu.get_by_role("button", name="Make it and move here").click()
    expect(menu.locator("summary")).to_have_text("Folder: Travel")
    answer = ask(page, "What is the laptop refresh cycle?")
    expect(answer).to_have_attribute("data-status", re.compile("stop|refused"), timeout=30_000)
    expect(heads.locator(".fold")).to_have_text(["Travel"])
    expect(items.first).to_contain_text("What is the laptop refresh cycle?")


def test_a_conversation_is_renamed_in_its_row(page, live_url, member):
    """Rename turns the title into a box: Enter keeps the new title (the header's too, when open),
    which a reload still shows; Esc leaves the old one, and does not end the page's other edits."""
    from chat import services as chat_services

    ids = chat_services.exchange_start(
        user=member, conversation_id=None, request_id="rn", content="Leave rules?", collection_ids=None
    )
    sign_in(page, live_url, "erin", "pw-erin-12345")
    row = page.locator(f"#conversations li[data-id='{ids['conversation_id']}']")
    row.locator(".open").click()
    expect(page.locator("#chat-title")).to_have_text("Leave rules?")
    row.hover()
    row.get_by_role("button", name="Rename Leave rules?").click()
    box = row.get_by_role("textbox", name="New title for Leave rules?")
    expect(box).to_be_focused()
    box.fill("Parental leave")
    box.press("Escape")
    expect(row.locator(".open")).to_have_text("Leave rules?")
    row.hover()
    row.get_by_role("button", name="Rename Leave rules?").click()
    box.fill("  Parental leave  ")
    box.press("Enter")
    expect(row.locator(".open")).to_have_text("Parental leave")
    expect(page.locator("#chat-title")).to_have_text("Parental leave")
    page.reload()
    expect(page.locator(f"#conversations li[data-id='{ids['conversation_id']}'] .open")).to_have_text(
        "Parental leave"
    )


def test_keyboard_shortcuts_start_a_conversation_and_search_them(page, live_url, member):
    sign_in(page, live_url, "erin", "pw-erin-12345")
    answer = ask(page, "How many days of paid leave do employees get?")
    expect(answer).to_have_attribute("data-status", "stop", timeout=30_000)
    page.keyboard.press("Control+Shift+O")
    expect(page.locator("article.msg")).to_have_count(0)
    expect(page.locator("#empty-state")).to_be_visible()
    expect(page.locator("#question")).to_be_focused()
    page.keyboard.press("Control+K")
    expect(page.locator("#conversation-search")).to_be_focused()


def test_older_conversations_come_a_page_at_a_time_and_stay_shown(page, live_url, member):
    """The sidebar shows 200; "Show older conversations" brings the rest; pinning the oldest then
    keeps them all shown (the reload after it does not fold the list back to one page)."""
    from datetime import timedelta

    from django.utils import timezone

    from chat.models import Conversation

    now = timezone.now()
    for i in range(205):
        conversation = Conversation.objects.create(owner=member, title=f"Question {i}")
        Conversation.objects.filter(id=conversation.id).update(updated_at=now - timedelta(minutes=i))
    sign_in(page, live_url, "erin", "pw-erin-12345")
    items, older = page.locator("#conversations li"), page.locator("#older-conversations")
    expect(items).to_have_count(200)
    expect(items.last).to_contain_text("Question 199")
    older.click()
    expect(items).to_have_count(205)
    expect(older).to_be_hidden()
    items.last.hover()
    page.get_by_role("button", name="Pin Question 204").click()
    expect(items.first).to_contain_text("Question 204")
    expect(items).to_have_count(205)
    expect(items.last).to_contain_text("Question 203")


def test_a_deletion_while_older_conversations_load_leaves_each_shown_once(page, live_url, member):
    """The older page is held until a deletion's reload has been asked for: the list ends with
    every remaining conversation once (the reload waits for the older page and keeps its count)."""
    from datetime import timedelta

    from django.utils import timezone

    from chat.models import Conversation

    now = timezone.now()
    for i in range(205):
        conversation = Conversation.objects.create(owner=member, title=f"Question {i}")
        Conversation.objects.filter(id=conversation.id).update(updated_at=now - timedelta(minutes=i))
    sign_in(page, live_url, "erin", "pw-erin-12345")
    items = page.locator("#conversations li")
    expect(items).to_have_count(200)
    held = []
    page.route(
        lambda url: "offset=200" in url,
        lambda route: held.append(route) if not held else route.continue_(),
    )
    page.locator("#older-conversations").click()
    for _ in range(100):
        if held:
            break
        page.wait_for_timeout(50)
    assert held, "the older page was never asked for"
    page.once("dialog", lambda dialog: dialog.accept())
    items.first.hover()
    with page.expect_response(lambda r: r.request.method == "DELETE"):
        page.get_by_role("button", name="Delete Question 0", exact=True).click()
    held[0].continue_()
    expect(page.get_by_role("button", name="Question 0", exact=True)).to_have_count(0)
    expect(items).to_have_count(204)
    titles = items.locator(".open").all_text_contents()
    assert len(set(titles)) == 204 and "Question 0" not in titles and "Question 200" in titles


def test_a_long_conversation_title_ends_in_an_ellipsis_inside_the_sidebar(page, live_url, member):
    from chat import services as chat_services

    chat_services.exchange_start(
        user=member, conversation_id=None, request_id="long", collection_ids=None,
        content="What is the default rate limit for searches and uploads per user?",
    )  # fmt: skip
    sign_in(page, live_url, "erin", "pw-erin-12345")
    expect(page.locator("#conversations li")).to_have_count(1)
    sidebar, item, title = (
        page.locator(sel).first.bounding_box()
        for sel in (".sidebar", "#conversations li", "#conversations .open")
    )
    assert item["x"] + item["width"] <= sidebar["x"] + sidebar["width"]
    clipped = page.locator("#conversations .open").first.evaluate("b => b.scrollWidth > b.clientWidth")
    # Rename and Delete take no room until shown: the title has the whole row.
    assert clipped and title["width"] == item["width"]
    page.locator("#conversations li").first.hover()
    expect(page.get_by_role("button", name="Rename What is the default")).to_be_visible()
    shown = page.locator("#conversations .open").first.bounding_box()
    assert shown["width"] < item["width"] and page.locator("#conversations li").first.bounding_box() == item


def test_the_chat_page_refuses_inline_script(page, live_url, member, csp_violations):
    """The policy is enforced, not only sent: a script element injected into the page does not run."""
    sign_in(page, live_url, "erin", "pw-erin-12345")
    ran = page.evaluate(
        """() => { const s = document.createElement("script"); s.textContent = "window.__ran = 1";
                   document.body.append(s); return window.__ran === 1; }"""
    )
    assert ran is False
    assert any("script-src" in v for v in csp_violations)
    csp_violations.clear()


def test_hostile_model_output_stays_inert(page, provider_url, member, fake_openai):
    answer = answered_by_model(
        page,
        provider_url,
        fake_openai,
        'Leave is 25 days [1]. <img src=x onerror="window.__pwned=1"> '
        "[click me](javascript:window.__pwned=2) ![tracker](http://127.0.0.1:9/pixel.png) [safe](https://example.org)",
    )
    assert answer.locator("img").count() == 0
    expect(answer.locator(".body")).to_contain_text("<img src=x")  # shown as text, never parsed
    links = answer.locator(".body a")
    expect(links).to_have_count(1)
    assert links.first.get_attribute("href") == "https://example.org"
    assert "noopener" in links.first.get_attribute("rel")
    answer.get_by_text("click me").click()
    assert page.evaluate("window.__pwned") is None


def test_a_table_in_an_answer_is_a_table(page, provider_url, member, fake_openai):
    """Models answer in Markdown tables; the renderer builds one from DOM nodes (cells may cite)."""
    answer = answered_by_model(
        page,
        provider_url,
        fake_openai,
        "Leave and expenses:\n\n| what | rule |\n|---|:---:|\n| leave | 25 days [1] |\n"
        "| expenses | within 30 days `receipt \\| portal` |\n\nAsk HR for more.",
    )
    table = answer.locator(".body table")
    expect(table).to_have_count(1)
    assert table.locator("th").all_inner_texts() == ["what", "rule"]
    assert [r.locator("td").all_inner_texts() for r in table.locator("tbody tr").all()] == [
        ["leave", "25 days 1"],
        ["expenses", "within 30 days receipt | portal"],
    ]
    assert table.locator("td").nth(1).evaluate("td => td.style.textAlign") == "center"
    expect(answer.locator(".body p")).to_have_text(["Leave and expenses:", "Ask HR for more."])
    table.locator("button.cite").click()
    expect(page.locator("#source-panel")).to_be_visible()


def test_a_models_lists_keep_their_numbers_their_code_and_their_nesting(
    page, provider_url, member, fake_openai
):
    """Models write loose numbered lists with code blocks and nested lists inside their items: one
    list, numbered on (not "1." after every code block), the code in its step, the nesting kept; a
    list starting at 5 starts at 5; rules and struck-out text render as such, headings no smaller than
    the text."""
    answer = answered_by_model(
        page,
        provider_url,
        fake_openai,
        "### Steps\n\nTo set up:\n\n1. Install it:\n\n   ```bash\n   pip install docent\n   ```\n\n"
        "2. Run `make run` [1].\n3. Open it:\n   - in a browser\n   - by `curl`\n\n---\n\n"
        "5. five\n6. six\n\n~~Old~~ Leave is 25 days [1].",
    )
    body = answer.locator(".body")
    steps = body.locator(":scope > ol").first.locator(":scope > li")
    expect(steps).to_have_count(3)
    assert steps.nth(0).locator("pre code").inner_text() == "pip install docent"
    assert steps.nth(2).locator("ul > li").all_inner_texts() == ["in a browser", "by curl"]
    expect(body.locator(":scope > hr")).to_have_count(1)
    assert body.locator(":scope > ol").nth(1).evaluate("ol => [ol.start, ol.children.length]") == [5, 2]
    expect(body.locator("del")).to_have_text("Old")
    expect(body.locator("button.cite")).to_have_count(2)
    # A model's "###" heads its section: never smaller than the text.
    size = "el => parseFloat(getComputedStyle(el).fontSize)"
    assert body.locator("h5").evaluate(size) >= body.locator("p").first.evaluate(size)


def test_the_model_chosen_for_a_conversation_writes_its_answers(page, provider_url, member, fake_openai):
    """With two models offered, the header's choice goes with the question and stays with the
    conversation (after a reload too, and for the next new one); changed, the next answer is the
    new model's."""
    fake_openai.reply = "Employees get 25 days of leave [1]."
    sign_in(page, provider_url, "erin", "pw-erin-12345")
    pick = page.get_by_role("combobox", name="Model that writes the answers")
    expect(pick.locator("option")).to_have_text(["fake-chat", "fake-big"])
    pick.select_option(label="fake-big")
    answer = ask(page, "How many days of paid leave do employees get?")
    expect(answer).to_have_attribute("data-status", "stop", timeout=30_000)

    def models_asked():
        return [r["body"]["model"] for r in fake_openai.requests_to("/chat/completions")]

    assert models_asked() == ["fake-big"]
    page.reload()
    expect(page.locator("article.msg.assistant")).to_have_count(1)
    expect(pick).to_have_value("fake-big")
    with page.expect_response(
        lambda r: r.request.method == "PATCH" and "/api/v1/conversations/" in r.url
    ) as patched:
        pick.select_option(label="fake-chat")
    assert patched.value.ok
    page.fill("#question", "And how are travel expenses reimbursed?")
    page.keyboard.press("Enter")
    expect(page.locator("article.msg.assistant").nth(1)).to_have_attribute(
        "data-status", "stop", timeout=30_000
    )
    assert models_asked()[-1] == "fake-chat"
    # Each answer says which model wrote it.
    expect(page.locator("article.msg.assistant .foot .by")).to_have_text(["fake-big", "fake-chat"])
    page.locator("#new-chat").click()
    expect(pick).to_have_value("")  # the last choice made: the default


def test_a_code_block_in_an_answer_copies_on_its_own(page, provider_url, member, fake_openai):
    """A command in a fenced block has a Copy button of its own that copies the code alone."""
    answer = answered_by_model(
        page, provider_url, fake_openai, "Book leave in the portal [1]:\n\n```\nleave book --days 25\n```\n"
    )
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    answer.locator("pre").get_by_role("button", name="Copy the code").click()
    assert page.evaluate("navigator.clipboard.readText()") == "leave book --days 25"
    expect(answer.locator("pre code")).to_have_text("leave book --days 25")


def test_a_citation_whose_passage_lacks_the_figure_is_flagged(page, provider_url, member, fake_openai):
    """The model cites the handbook for a figure, and for words, it does not hold: those chips are
    flagged (also after a reload) and their source says what to check; the other chip is not."""
    answer = answered_by_model(
        page,
        provider_url,
        fake_openai,
        "Employees get 25 days of leave [1]. Unused leave lapses after 40 days [1]. "
        "The handbook calls it \u201cleave you can never carry over\u201d [1].",
    )
    chips = answer.locator("button.cite")
    expect(chips).to_have_count(3)
    expect(chips.nth(1)).to_have_class("cite known unverified")
    expect(chips.nth(0)).to_have_class("cite known")
    expect(chips.nth(1)).to_have_attribute("title", "Source 1 does not state 40: check it")
    expect(chips.nth(2)).to_have_attribute(
        "title", "Source 1 does not state \u201cleave you can never carry over\u201d: check it"
    )
    expect(answer.locator(".meta")).to_have_text("2 citations to check (marked ?).")
    # Under the answer, its one source, flagged with both things to check.
    listed = answer.locator(".source-list button")
    expect(listed).to_have_count(1)
    expect(listed).to_have_class("source-chip unverified")
    expect(listed).to_have_accessible_name(
        "Source 1: handbook (does not state 40, \u201cleave you can never carry over\u201d)"
    )
    listed.click()
    expect(page.locator("#source-check")).to_have_text(
        "This passage does not state 40, “leave you can never carry over”, which the answer gives here: "
        "check it in the document."
    )
    chips.nth(1).click()
    expect(page.locator("#source-check")).to_have_text(
        "This passage does not state 40, which the answer gives here: check it in the document."
    )
    chips.nth(0).click()
    expect(page.locator("#source-check")).to_be_hidden()
    page.reload()
    expect(page.locator("article.msg.assistant button.cite").nth(1)).to_have_class("cite known unverified")


def test_reload_mid_answer_then_see_it_finish(page, provider_url, member, fake_openai):
    fake_openai.reply = " ".join(f"token{i}" for i in range(80)) + " [1]"
    fake_openai.token_delay = 0.05
    sign_in(page, provider_url, "erin", "pw-erin-12345")
    answer = ask(page, "How many days of paid leave do employees get?")
    expect(answer.locator(".body")).to_contain_text("token5", timeout=15_000)
    page.reload()
    answer = page.locator("article.msg.assistant").first
    expect(answer).to_have_attribute("data-status", "stop", timeout=30_000)
    text = answer.locator(".body").inner_text()
    assert "token0" in text and "token79" in text
    assert text.count("token1 ") == 1  # nothing replayed twice


# The socket's open is held back a second and its frames are recorded, so that the page has its
# conversation (and the answer to follow) before the socket opens: the order in which both resumes
# used to go out.
SLOW_SOCKET = """
(() => {
  const Real = window.WebSocket;
  window.sentFrames = [];
  window.WebSocket = class extends Real {
    constructor(url) {
      super(url);
      this.held = true;
      super.addEventListener("open", (ev) => setTimeout(() => {
        this.held = false;
        if (this.openHandler) this.openHandler(ev);
      }, 1000));
    }
    get readyState() { return this.held && super.readyState === Real.OPEN ? Real.CONNECTING : super.readyState; }
    set onopen(fn) { this.openHandler = fn; }
    get onopen() { return this.openHandler; }
    send(data) { window.sentFrames.push(JSON.parse(data)); super.send(data); }
  };
})();
"""


def test_an_answer_open_before_the_socket_is_resumed_once(page, provider_url, member, fake_openai):
    """A reload mid-answer whose socket opens after the conversation has loaded: the answer is asked
    for once, and no part of it shows twice (two resumes from 0 each replayed it, merged differently)."""
    fake_openai.reply = " ".join(f"token{i}" for i in range(60)) + " [1]"
    fake_openai.token_delay = 0.05
    sign_in(page, provider_url, "erin", "pw-erin-12345")
    answer = ask(page, "How many days of paid leave do employees get?")
    expect(answer.locator(".body")).to_contain_text("token5", timeout=15_000)
    page.add_init_script(SLOW_SOCKET)
    page.reload()
    answer = page.locator("article.msg.assistant").first
    expect(answer).to_have_attribute("data-status", "stop", timeout=30_000)
    resumes = [f for f in page.evaluate("window.sentFrames") if f["type"] == "resume"]
    assert [f["after"] for f in resumes] == [0]
    text = answer.locator(".body").inner_text()
    assert re.findall(r"token\d+", text) == [f"token{i}" for i in range(60)]


def test_leaving_an_answer_and_coming_back_shows_it_once(page, provider_url, member, fake_openai):
    """Away to a new conversation and back while the answer streams: the socket still carries the
    first reader's frames when the page follows the answer again from its start (the resume held back
    here, as on a slow link); those frames do not continue what the page shows and are not applied."""
    fake_openai.reply = " ".join(f"token{i}" for i in range(60)) + " [1]"
    fake_openai.token_delay = 0.05
    sign_in(page, provider_url, "erin", "pw-erin-12345")
    answer = ask(page, "How many days of paid leave do employees get?")
    expect(answer.locator(".body")).to_contain_text("token5", timeout=15_000)
    page.evaluate(
        """() => {
        const send = WebSocket.prototype.send;
        WebSocket.prototype.send = function (data) {
          if (JSON.parse(data).type === "resume") setTimeout(() => send.call(this, data), 400);
          else send.call(this, data);
        };
        }"""
    )
    page.locator("#new-chat").click()
    expect(page.locator("article.msg.assistant")).to_have_count(0)
    page.locator("#conversations li .open").first.click()
    answer = page.locator("article.msg.assistant").first
    expect(answer).to_have_attribute("data-status", "stop", timeout=30_000)
    text = answer.locator(".body").inner_text()
    assert re.findall(r"token\d+", text) == [f"token{i}" for i in range(60)]


def first_lost(frame_type: str) -> str:
    """An init script: the first frame of `frame_type` never reaches the page, whose socket closes
    as it arrives; `window.lost` says it happened."""
    return """
(() => {
  const Real = window.WebSocket;
  window.WebSocket = class extends Real {
    set onmessage(fn) {
      super.onmessage = (ev) => {
        if (!window.lost && JSON.parse(ev.data).type === "FRAME_TYPE") {
          window.lost = true;
          this.close();
          return;
        }
        fn(ev);
      };
    }
  };
})();
""".replace("FRAME_TYPE", frame_type)


def test_a_question_whose_socket_closed_before_accepted_is_answered_once(page, live_url, member):
    """The connection drops between sending a question and hearing it was taken: the page sends it
    again on the new socket, and the server, knowing its request_id, answers it once."""
    from chat.models import Message

    page.add_init_script(first_lost("accepted"))
    sign_in(page, live_url, "erin", "pw-erin-12345")
    answer = ask(page, "How many days of paid leave do employees get?")
    expect(answer).to_have_attribute("data-status", "stop", timeout=30_000)
    assert page.evaluate("window.lost")
    expect(answer.locator(".body")).to_contain_text("25 days")
    expect(page.locator("article.msg.user")).to_have_count(1)
    expect(page.locator("#conversations li")).to_have_count(1)
    assert Message.objects.filter(role="user").count() == 1


def test_a_question_taken_after_the_page_moved_on_stays_in_its_own_conversation(page, live_url, member):
    """The socket closes before `accepted`, and a new conversation is opened before the question,
    sent again, is taken: its answer is not added to the conversation shown, which stays new (the
    next question starts a conversation of its own), and the first one is listed, answered once."""
    page.add_init_script(first_lost("accepted"))
    sign_in(page, live_url, "erin", "pw-erin-12345")
    ask(page, "How many days of paid leave do employees get?")
    page.wait_for_function("() => window.lost")
    page.locator("#new-chat").click()  # within the half second before the page reconnects
    expect(page.locator("#conversations li")).to_have_count(1, timeout=15_000)
    page.wait_for_timeout(1500)
    expect(page.locator("article.msg")).to_have_count(0)
    answer = ask(page, "How are travel expenses reimbursed?")
    expect(answer).to_have_attribute("data-status", "stop", timeout=30_000)
    expect(page.locator("article.msg")).to_have_count(2)
    expect(page.locator("#conversations li")).to_have_count(2)
    page.locator("#conversations li .open").last.click()
    expect(page.locator("article.msg.assistant")).to_have_count(1)
    expect(page.locator("article.msg.assistant .body")).to_contain_text("25 days", timeout=15_000)


def test_a_question_past_the_rate_is_refused_in_words(page, limited_url, member):
    """With one question a day, the second is refused in the composer, saying when to try again
    (once), and the first answer stays."""
    sign_in(page, limited_url, "erin", "pw-erin-12345")
    expect(ask(page, "How many days of paid leave do employees get?")).to_have_attribute(
        "data-status", "stop", timeout=30_000
    )
    ask(page, "And the travel expenses?")
    error = page.locator("#connection")
    expect(error).to_contain_text("too many questions; try again in")
    assert error.inner_text().lower().count("try again") == 1
    expect(page.locator("article.msg.assistant")).to_have_count(1)
    # The refused question is not in the conversation; its words are back in the box.
    expect(page.locator("article.msg.user")).to_have_count(1)
    expect(page.locator("#question")).to_have_value("And the travel expenses?")
    # The same as a new conversation's first question: the page is the empty one it was.
    page.locator("#new-chat").click()
    ask(page, "Who approves travel?")
    expect(page.locator("#question")).to_have_value("Who approves travel?")
    expect(page.locator("article.msg")).to_have_count(0)
    expect(page.locator("#empty-state")).to_be_visible()


def test_a_question_refused_after_the_page_moved_on_is_named_not_moved(page, limited_url, member):
    """Past the rate, a question whose refusal is lost with its socket is sent again after a new
    conversation was opened: the page says which question was not sent and why, and leaves the new
    conversation's box and page as they were."""
    page.add_init_script(first_lost("error"))
    sign_in(page, limited_url, "erin", "pw-erin-12345")
    expect(ask(page, "How many days of paid leave do employees get?")).to_have_attribute(
        "data-status", "stop", timeout=30_000
    )
    ask(page, "And the travel expenses?")
    page.wait_for_function("() => window.lost")
    page.locator("#new-chat").click()  # within the half second before the page reconnects
    error = page.locator("#connection")
    expect(error).to_contain_text(
        "“And the travel expenses?” was not sent: too many questions", timeout=15_000
    )
    expect(page.locator("#question")).to_have_value("")
    expect(page.locator("article.msg")).to_have_count(0)
    expect(page.locator("#empty-state")).to_be_visible()


def forget_questions(user) -> None:
    """Lift the limited app's one question a day for `user`: its count's key is django-ratelimit's
    (group, rate, key, window), read from the library's private helpers."""
    from django.core.cache import cache
    from django_ratelimit.core import _get_window, _make_cache_key

    value = str(user.id)
    cache.delete(_make_cache_key("docent.ask", _get_window(value, 86400), "1/d", value, ""))


def test_a_question_refused_while_the_box_held_new_words_is_sent_again_from_its_place(
    page, limited_url, member
):
    """Past the rate, a question refused while other words wait in the box stays, faded, with Send
    again: once the rate allows, it is asked (the draft left in the box) and answered under it."""
    sign_in(page, limited_url, "erin", "pw-erin-12345")
    expect(ask(page, "How many days of paid leave do employees get?")).to_have_attribute(
        "data-status", "stop", timeout=30_000
    )
    # Sent, and a draft begun before the refusal arrives.
    page.fill("#question", "How are travel expenses reimbursed?")
    page.evaluate("""() => { document.getElementById("composer").requestSubmit();
                             document.getElementById("question").value = "a draft"; }""")
    expect(page.locator("#connection")).to_contain_text("too many questions")
    refused = page.locator("article.msg.user").last
    expect(refused).to_have_class(re.compile(r"\bunsent\b"))
    expect(page.locator("#question")).to_have_value("a draft")
    again = refused.get_by_role("button", name="Send again")
    again.click()  # still past the rate: refused again, and kept as it was
    expect(page.locator("#connection")).to_contain_text("too many questions")
    expect(again).to_be_visible()
    forget_questions(member)
    again.click()
    expect(again).to_have_count(0)
    expect(refused).not_to_have_class(re.compile(r"\bunsent\b"))
    answers = page.locator("article.msg.assistant")
    expect(answers).to_have_count(2)
    expect(answers.last).to_have_attribute("data-status", "stop", timeout=30_000)
    expect(answers.last.locator(".body")).to_contain_text("reimbursed within 30 days")
    expect(page.locator("#question")).to_have_value("a draft")
    page.reload()
    expect(page.locator("article.msg.user").last.locator(".body")).to_have_text(
        "How are travel expenses reimbursed?"
    )
    expect(page.locator("article.msg.assistant")).to_have_count(2)


def test_a_reworded_question_past_the_rate_goes_back_in_the_box(page, limited_url, member):
    """An edit counts as a question: past the rate it is refused in words, the question keeps its
    old words and answer, and the new words wait in the box, still an edit of it."""
    sign_in(page, limited_url, "erin", "pw-erin-12345")
    answer = ask(page, "How many days of paid leaf?")
    expect(answer).to_have_attribute("data-status", "stop", timeout=30_000)
    question = page.locator("article.msg.user").first
    question.hover()
    question.get_by_role("button", name="Edit your question").click()
    page.fill("#question", "How many days of paid leave do employees get?")
    page.keyboard.press("Enter")
    expect(page.locator("#connection")).to_contain_text("too many questions; try again in")
    expect(page.locator("#question")).to_have_value("How many days of paid leave do employees get?")
    expect(question.locator(".body")).to_have_text("How many days of paid leaf?")
    expect(page.locator("article.msg.assistant")).to_have_count(1)
    page.keyboard.press("Escape")  # still editing: Esc lets the new words go
    expect(page.locator("#question")).to_have_value("")


def test_an_earlier_answer_regenerated_is_a_version_with_a_branch_of_its_own(page, live_url, member):
    """Regenerating an earlier answer after a later question: the new answer takes the old one's
    place and the conversation goes on from it (the later exchange stays with the old version);
    "‹ 2 / 2 ›" turns back to the first version and what followed it, and a reload shows the version
    turned to. Shared, the link shows the thread as shown."""
    sign_in(page, live_url, "erin", "pw-erin-12345")
    first = ask(page, "How many days of paid leave do employees get?")
    expect(first).to_have_attribute("data-status", "stop", timeout=30_000)
    old_id = first.get_attribute("data-message")
    page.fill("#question", "How are travel expenses reimbursed?")
    page.keyboard.press("Enter")
    answers = page.locator("article.msg.assistant")
    expect(answers.nth(1)).to_have_attribute("data-status", "stop", timeout=30_000)
    expect(first.locator(".versions")).to_be_hidden()

    first.hover()
    first.get_by_role("button", name="Regenerate the answer").click()
    expect(page.locator("article.msg")).to_have_count(2)
    new = answers.first
    expect(new).to_have_attribute("data-status", "stop", timeout=30_000)
    new_id = new.get_attribute("data-message")
    assert new_id != old_id
    new = page.locator(f"article.msg.assistant[data-message='{new_id}']")
    versions = new.locator(".versions")
    expect(versions.locator(".count")).to_have_text("2 / 2")
    expect(versions.get_by_role("button", name="Next version of the answer")).to_be_disabled()

    with page.expect_response(lambda r: r.url.endswith(f"/messages/{old_id}/choose")):
        versions.get_by_role("button", name="Previous version of the answer").click()
    older = page.locator(f"article.msg.assistant[data-message='{old_id}']")
    expect(older).to_be_visible()
    expect(new).to_have_count(0)
    expect(page.locator("article.msg")).to_have_count(4)
    expect(older.locator(".versions .count")).to_have_text("1 / 2")
    expect(older.get_by_role("button", name="Next version of the answer")).to_be_focused()
    expect(answers.nth(1).locator(".versions")).to_be_hidden()  # the travel answer has one

    # The version turned to is the one a reload shows (and later questions follow).
    page.reload()
    expect(page.locator("article.msg")).to_have_count(4)
    expect(older.locator(".versions .count")).to_have_text("1 / 2")
    with page.expect_response(lambda r: r.url.endswith(f"/messages/{new_id}/choose")):
        older.get_by_role("button", name="Next version of the answer").click()
    expect(new).to_be_visible()
    expect(page.locator("article.msg")).to_have_count(2)
    page.reload()
    expect(page.locator("article.msg")).to_have_count(2)
    expect(versions.locator(".count")).to_have_text("2 / 2")
    # Shared: what is shown, the other version's branch left out.
    page.locator("#share summary").click()
    page.get_by_role("button", name="Create a link").click()
    link = page.locator("#share-url")
    expect(link).to_have_value(re.compile(r"/shared/[\w-]+/$"))
    page.goto(link.input_value())
    expect(page.locator("article.msg")).to_have_count(2)
    expect(page.locator("article.msg.assistant .meta")).to_have_text([""])


def test_a_question_the_documents_do_not_answer_says_so_and_what_to_try(page, live_url, member):
    """Offline, a question off the documents' topic is answered "not in your documents", with no
    source, and the note under it says what can be tried rather than repeating the answer."""
    sign_in(page, live_url, "erin", "pw-erin-12345")
    answer = ask(page, "Who won the 2018 football World Cup?")
    expect(answer).to_have_attribute("data-status", "refused", timeout=30_000)
    expect(answer.locator(".body")).to_have_text("I can't find that in your documents.")
    expect(answer.locator("button.cite")).to_have_count(0)
    expect(answer).to_contain_text("try other words, or other collections")


def test_a_refused_question_says_why_also_after_a_reload(page, live_url, member):
    """A question matching an admin's rule: the answer says it goes against the content policy, with
    the rule's category, and says so again when the conversation is opened later."""
    from chat.models import ModerationRule

    ModerationRule.objects.create(pattern="salary of", category="confidential")
    sign_in(page, live_url, "erin", "pw-erin-12345")
    answer = ask(page, "What is the salary of the CEO?")
    expect(answer).to_have_attribute("data-status", "failed", timeout=30_000)
    expect(answer).to_contain_text("content policy (confidential)")
    page.reload()
    answer = page.locator("article.msg.assistant").first
    expect(answer).to_have_attribute("data-status", "failed", timeout=30_000)
    expect(answer).to_contain_text(
        "Not answered: the question goes against your organisation's content policy"
    )
    expect(page.locator("article.msg.user").first).to_contain_text("salary of the CEO")


def test_an_answer_stopped_by_a_rule_shows_only_what_came_before(page, provider_url, member, fake_openai):
    """A rule for answers: the page shows the answer up to the match, never the match, and says the
    answer was stopped by the content policy."""
    from chat.models import ModerationRule

    ModerationRule.objects.create(pattern="25 days", category="hr", applies_to="answer")
    fake_openai.reply = "According to the handbook, employees get 25 days of paid annual leave [1]."
    sign_in(page, provider_url, "erin", "pw-erin-12345")
    answer = ask(page, "How many days of paid leave do employees get?")
    expect(answer).to_have_attribute("data-status", "failed", timeout=30_000)
    expect(answer).to_contain_text("The answer was stopped")
    expect(answer).to_contain_text("content policy (hr)")
    assert "25 days" not in answer.inner_text()


def test_the_sidebar_shows_this_months_tokens_against_the_quota(page, limited_url, member):
    """Under a quota the sidebar shows what was spent, of how much, when it renews, and a meter; an
    answer's tokens show at once."""
    sign_in(page, limited_url, "erin", "pw-erin-12345")
    usage = page.locator("#usage")
    expect(usage).to_have_text(re.compile(r"^This month: 0 of 100,000 tokens \(renews \w{3} 1\)$"))
    expect(usage.locator("meter")).to_have_attribute("value", "0")
    expect(ask(page, "How many days of paid leave do employees get?")).to_have_attribute(
        "data-status", "stop", timeout=30_000
    )
    expect(usage).not_to_have_text(re.compile("This month: 0 of"))
    spent = int(re.search(r"This month: ([\d,]+) of", usage.inner_text()).group(1).replace(",", ""))
    from chat.models import Usage

    assert spent > 0 and spent == sum(u.prompt_tokens + u.completion_tokens for u in Usage.objects.all())
    assert usage.locator("meter").get_attribute("aria-label") == f"{100000 - spent:,} tokens left this month"


def test_the_collections_chosen_are_where_new_conversations_start(page, live_url, member, make_collection):
    """A user who narrows the scope by hand finds it so after a reload and in a new conversation; an
    older conversation opened shows its own."""
    from retrieval.models import Team

    notes = make_collection(Team.objects.get(name="People"), "notes")
    sign_in(page, live_url, "erin", "pw-erin-12345")
    expect(ask(page, "How many days of paid leave do employees get?")).to_have_attribute(
        "data-status", "stop", timeout=30_000
    )
    page.locator("#scope summary").click()
    page.locator(f"#scope input[value='{notes.id}']").check()
    expect(page.locator("#scope summary")).to_have_text("Collections: notes")
    page.goto(live_url + "/")
    expect(page.locator("#scope summary")).to_have_text("Collections: notes")
    page.locator("#conversations li button.open").first.click()  # asked of all: shown as asked
    expect(page.locator("#scope summary")).to_have_text("Collections: all")
    page.locator("#new-chat").click()
    expect(page.locator("#scope summary")).to_have_text("Collections: notes")
    assert page.evaluate("Object.keys(localStorage)") == ["docent.scope.erin"]  # one user's choice


def test_suggested_questions_follow_the_collections_in_scope(page, live_url, member, make_collection):
    """Before a conversation: the questions suggested by the collections in scope (all of them
    unless some are chosen), each once; none when the scope holds no collection that suggests any."""
    from retrieval.models import Collection, Team

    people = Team.objects.get(name="People")
    Collection.objects.filter(name="handbook").update(starter_questions=["How much leave?", "Who pays?"])
    make_collection(people, "notes")
    extra = make_collection(people, "travel")
    Collection.objects.filter(id=extra.id).update(starter_questions=["Who pays?", "Which trains?"])
    sign_in(page, live_url, "erin", "pw-erin-12345")
    offered = page.locator("#empty-suggestions button")
    expect(offered).to_have_text(["How much leave?", "Who pays?", "Which trains?"])
    notes = Collection.objects.get(name="notes")
    scope_to(page, notes.id)
    expect(page.locator("#empty-suggestions")).to_be_hidden()
    scope_to(page, extra.id)  # notes and travel
    expect(offered).to_have_text(["Who pays?", "Which trains?"])


def test_the_scope_menu_shows_the_collections_read_now(page, live_url, make_user, make_team, make_collection):
    """A chat page left open learns, when its scope menu opens, of a collection shared with the user's
    team since (listed in order, to choose, not to attach files to), of one renamed, and of one gone
    (no longer listed, nor among the choices); its empty state says so too, and a new conversation
    counts the documents added meanwhile."""
    from retrieval.models import Document

    from .test_library_browser import elsewhere

    runbooks = make_collection(make_team("Ops"), "runbooks")
    sales = make_team("Sales", members=[make_user("sam", password="pw-sam-12345")])
    leads = make_collection(sales, "leads")
    sign_in(page, live_url, "sam", "pw-sam-12345")
    empty = page.locator("#empty-state p:visible")
    expect(empty.first).to_have_text("Docent answers from 1 collection you can read: leads (0 documents).")
    options = page.locator("#scope label")
    attach = page.locator("#attach-collection option")
    page.locator("#scope summary").click()
    expect(options).to_have_text(["leads · Sales"])
    page.locator(f"#scope input[value='{leads.id}']").check()
    expect(page.locator("#scope summary")).to_have_text("Collections: leads")
    page.locator("#scope summary").click()  # closed

    elsewhere(services.collection_share, collection=runbooks, teams=["Sales"])
    elsewhere(services.collection_update, collection=leads, name="prospects")
    page.locator("#scope summary").click()
    expect(options).to_have_text(["runbooks · Ops", "prospects · Sales"])  # by team, then name
    expect(page.locator(f"#scope input[value='{leads.id}']")).to_be_checked()
    expect(page.locator("#scope summary")).to_have_text("Collections: prospects")
    expect(attach).to_have_text(["prospects · Sales"])  # shared to read: no files added to it
    expect(empty.first).to_have_text(
        "Docent answers from 2 collections you can read: runbooks (0 documents), prospects (0 documents)."
    )
    page.locator(f"#scope input[value='{runbooks.id}']").check()
    expect(page.locator("#scope summary")).to_have_text("Collections: runbooks, prospects")
    page.locator("#scope summary").click()

    elsewhere(services.collection_delete, collection=leads)
    page.locator("#scope summary").click()
    expect(options).to_have_text(["runbooks · Ops"])
    expect(page.locator("#scope summary")).to_have_text("Collections: runbooks")
    expect(attach).to_have_count(0)
    assert page.evaluate("localStorage.getItem('docent.scope.sam')") == f"[{runbooks.id}]"
    expect(empty.first).to_have_text("Docent answers from 1 collection you can read: runbooks (0 documents).")

    page.locator("#scope summary").click()  # closed
    elsewhere(
        Document.objects.create, collection=runbooks, title="restarts", original_name="restarts.md",
        file="x", content_hash="h", kind="markdown", size=1, status="ready",
    )  # fmt: skip
    page.locator("#new-chat").click()
    expect(empty.first).to_have_text("Docent answers from 1 collection you can read: runbooks (1 document).")
    elsewhere(services.collection_share, collection=runbooks, teams=[])
    page.locator("#new-chat").click()
    expect(empty).to_have_text(["You don't have any documents yet. Add some in the library."])
