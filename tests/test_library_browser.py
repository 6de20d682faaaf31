"""The upload page in real headless Chromium: sign in, drop files, watch live progress."""

import concurrent.futures
import datetime
import re
import time

import pytest
from django_ratelimit.core import _get_window
from playwright.sync_api import expect

from retrieval.tests import files

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def sign_in(page, base, username, password):
    page.goto(f"{base}/")
    expect(page).to_have_url(re.compile(r"/accounts/login/"))  # anonymous visitors are sent to sign-in
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    # Enabled by chat.js once its handlers are in place: a file chosen before would go unheard.
    expect(page.locator("#question")).to_be_enabled()


def today() -> str:
    """The day as the library says it (this machine's and the browser's time zone are the same)."""
    return datetime.datetime.now().strftime("%-d %b %Y")


def ops_team(make_user, make_team, admin: str, member: str):
    """Team "Ops" with `admin` its admin and `member` a member (passwords pw-<name>-12345)."""
    from retrieval import services

    team = make_team("Ops", members=[make_user(admin, password=f"pw-{admin}-12345")], role="admin")
    services.membership_set(team=team, user=make_user(member, password=f"pw-{member}-12345"))
    return team


def elsewhere(function, *args, **kwargs):
    """Call `function` as another process would: in a thread of its own, since this one runs
    Playwright's event loop, where the news it publishes (through async_to_sync) cannot be sent."""
    from django.db import connection

    def call():
        try:
            return function(*args, **kwargs)
        finally:
            connection.close()

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(call).result()


def test_upload_shows_live_progress_and_readable_errors(
    page, live_url, worker, make_user, make_team, make_collection, tmp_path
):
    user = make_user("dana", password="pw-dana-12345")
    collection = make_collection(make_team("Ops", members=[user]), "runbooks")
    good = tmp_path / "runbook.md"
    good.write_text("# Runbook\n\n" + "Restart the queue when it stalls. " * 200)
    hostile = tmp_path / "broken.pdf"
    hostile.write_bytes(files.pdf_circular_xref())
    wrong = tmp_path / "image.gif"
    wrong.write_bytes(b"GIF89a\x01\x00\x01\x00")

    sign_in(page, live_url, "dana", "pw-dana-12345")
    page.goto(f"{live_url}/library/")
    expect(page.locator("body[data-live='1']")).to_have_count(1)  # progress websocket is open
    section = page.locator(f"section[data-collection='{collection.id}']")
    section.locator(".dropzone input[type=file]").set_input_files([str(good), str(hostile), str(wrong)])

    good_row = section.locator("li.doc", has_text="runbook.md")
    expect(good_row).to_have_attribute("data-status", "ready", timeout=60_000)
    expect(good_row.locator(".status")).to_contain_text("chunks")
    # Its type, size and day, as a listed row says them (below).
    expect(good_row.locator(".meta")).to_have_text(f"Markdown · 6.7\xa0KB · {today()} · by dana")
    assert good_row.locator("progress").evaluate("p => p.value") == 1
    # The new row opens its file like the listed ones; the collection counts the two stored files.
    document_id = good_row.get_attribute("data-document")
    expect(good_row.locator("a.name")).to_have_attribute("href", f"/api/v1/documents/{document_id}/file")
    expect(section.locator("header .count")).to_have_text("2 documents")

    bad_row = section.locator("li.doc", has_text="broken.pdf")
    expect(bad_row).to_have_attribute("data-status", "failed", timeout=60_000)
    expect(bad_row.locator(".error")).to_contain_text("PDF")

    wrong_row = section.locator("li.doc", has_text="image.gif")
    expect(wrong_row.locator(".error")).to_contain_text("not supported")

    # The collection's failed documents go again at once; a broken file fails again, with its reason.
    again = section.get_by_role("button", name="Retry failed documents of runbooks")
    again.click()
    expect(section.locator(".retried")).to_have_text("1 failed document queued again.")
    expect(bad_row).to_have_attribute("data-status", "failed", timeout=60_000)
    expect(bad_row.locator(".error")).to_contain_text("PDF")
    expect(again).to_be_visible()

    # Its chunk count opens the passages it was cut into, as search reads them.
    good_row.locator(".status a").click()
    expect(page).to_have_url(f"{live_url}/library/documents/{document_id}/")
    first = page.locator("li.passage").first
    expect(first.locator(".where")).to_contain_text("#1 · Runbook")
    expect(first.locator(".text")).to_contain_text("Restart the queue when it stalls.")
    expect(page.locator(".passages > p.muted").first).to_contain_text(
        f"runbooks · Markdown · 6.7\xa0KB · uploaded by dana on {today()} · ready"
    )
    page.goto(f"{live_url}/library/")  # listed by the server now
    expect(section.locator(f"li[data-document='{document_id}'] .meta")).to_have_text(
        f"Markdown · 6.7\xa0KB · {today()} · by dana"
    )


def test_a_drop_past_the_upload_rate_loses_no_file(
    page, live_app, worker, make_user, make_team, make_collection, tmp_path
):
    """Two files dropped at once with a rate of one upload per 10 s: the second is refused with 429,
    waits as told, is sent again, and both end up ready."""
    base = live_app(DOCENT_RATE_UPLOAD="1/10s")
    user = make_user("erin", password="pw-erin-12345")
    collection = make_collection(make_team("Ops", members=[user]), "notes")
    paths = []
    for name in ("first.md", "second.md"):
        path = tmp_path / name
        path.write_text(f"# {name}\n\nThe {name} note says the backup runs nightly at two.\n")
        paths.append(str(path))

    sign_in(page, base, "erin", "pw-erin-12345")
    page.goto(f"{base}/library/")
    expect(page.locator("body[data-live='1']")).to_have_count(1)
    section = page.locator(f"section[data-collection='{collection.id}']")
    # django-ratelimit counts in fixed windows (10 s here, offset per key): two uploads that straddle
    # a window's end are both let through. Dropped early in a window, the second is refused.
    # `_get_window` names the window by its last whole second, so it ends a second after that.
    left = _get_window(str(user.id), 10) + 1 - time.time()
    if left < 4:
        time.sleep(left + 0.2)
    section.locator(".dropzone input[type=file]").set_input_files(paths)

    rows = section.locator("li.doc")
    expect(rows).to_have_count(2)
    for name in ("first.md", "second.md"):
        expect(section.locator("li.doc", has_text=name)).to_have_attribute(
            "data-status", "ready", timeout=60_000
        )
    assert section.locator("li.doc[data-retried='1']").count() == 1


def test_search_box_shows_passages_with_page_heading_and_marked_terms(
    page, live_url, make_user, make_team, make_collection
):
    """Passages come with their document, page or heading path, the query's words marked; another
    team's matching passage never shows, HTML in a passage stays text and its Markdown is rendered."""
    from retrieval import services
    from retrieval.tests.helpers import upload

    user = make_user("fern", password="pw-fern-12345")
    mine = make_collection(make_team("Ops", members=[user]), "runbooks")
    theirs = make_collection(make_team("Finance", members=[make_user("gus")]), "ledgers")
    docs = [
        upload(
            mine, "ops.pdf", files.pdf_bytes(["Contents.", "The backup runs nightly at two."]), enqueue=False
        ),
        upload(
            mine,
            "guide.md",
            b"# Guide\n\n## Restores\n\nRestore a backup from the console. <img src=x onerror=alert(1)>\n",
            enqueue=False,
        ),
        upload(
            theirs, "secret.md", b"# Secret\n\nThe finance backup runs nightly at three.\n", enqueue=False
        ),
        upload(
            mine,
            "schedule.md",
            b"# Schedule\n\n| job | when |\n|---|---|\n| backup | nightly |\n| report | weekly |\n",
            enqueue=False,
        ),
    ]
    services.documents_ingest(document_ids=[d.id for d, _ in docs])

    sign_in(page, live_url, "fern", "pw-fern-12345")
    page.goto(f"{live_url}/library/")
    page.fill("#search-q", "nightly backups")
    page.keyboard.press("Enter")
    hits = page.locator("#search-results li.hit")
    # The server's first search may wait for the embedding model to finish loading.
    expect(hits.first).to_contain_text("The backup runs nightly at two.", timeout=20_000)
    expect(hits.first.locator(".where")).to_contain_text("page 2")
    assert set(hits.first.locator("mark").all_inner_texts()) == {"backup", "nightly"}
    expect(hits.filter(has_text="Restore a backup")).to_contain_text("Restores")  # its heading path
    expect(page.locator("#search-results")).not_to_contain_text("finance")
    assert page.locator("#search-results img").count() == 0
    # A passage reads as the chat shows it: a Markdown table is a table, its words marked in its cells.
    table = hits.filter(has_text="weekly").locator("table")
    expect(table.locator("td mark")).to_have_text(["backup", "nightly"])
    # A hit's title opens it among its document's passages.
    hits.first.locator(".where a").click()
    expect(page.locator("li.passage:target")).to_contain_text("The backup runs nightly at two.")
    # A German collection's passage marks the words its German stems came from ("haus": "Häuser").
    german = services.collection_create(team=mine.team, name="Handbuch", language="german")
    (haus, _) = upload(
        german, "haus.md", "# See\n\nDie Häuser am See haben große Gärten.\n".encode(), enqueue=False
    )
    services.documents_ingest(document_ids=[haus.id])
    page.goto(f"{live_url}/library/")
    page.fill("#search-q", "Haus mit Garten")
    page.keyboard.press("Enter")
    found = page.locator("#search-results li.hit", has_text="Die Häuser am See")
    expect(found).to_have_count(1)
    assert found.locator("mark").all_inner_texts() == ["Häuser", "Gärten"]
    # Chinese is keyed as pairs of characters, and the pairs are marked inside the unspaced text.
    (zh, _) = upload(
        german, "zh.md", "# 报销\n\n报销差旅费用时，需要提交发票和审批单。\n".encode(), enqueue=False
    )
    services.documents_ingest(document_ids=[zh.id])
    page.fill("#search-q", "差旅费用")
    page.keyboard.press("Enter")
    found = page.locator("#search-results li.hit", has_text="需要提交发票")
    expect(found).to_have_count(1)
    assert found.locator("mark").all_inner_texts() == ["差旅", "费用"]


def test_files_dropped_on_a_collection_upload_and_become_ready(
    page, live_url, worker, make_user, make_team, make_collection
):
    """Dragging files onto a collection's drop zone uploads each, with its own row reaching ready; once
    listed, each name opens the file."""
    user = make_user("hana", password="pw-hana-12345")
    collection = make_collection(make_team("Ops", members=[user]), "notes")
    sign_in(page, live_url, "hana", "pw-hana-12345")
    page.goto(f"{live_url}/library/")
    expect(page.locator("body[data-live='1']")).to_have_count(1)
    zone = page.locator(f"section[data-collection='{collection.id}'] .dropzone")
    transfer = page.evaluate_handle(
        """() => {
            const dt = new DataTransfer();
            dt.items.add(new File(["# Alpha\\n\\nAlpha note about rotas."], "alpha.md", {type: "text/markdown"}));
            dt.items.add(new File(["Beta note about on-call."], "beta.txt", {type: "text/plain"}));
            return dt;
        }"""
    )
    zone.dispatch_event("dragover", {"dataTransfer": transfer})
    zone.dispatch_event("drop", {"dataTransfer": transfer})
    section = page.locator(f"section[data-collection='{collection.id}']")
    for name in ("alpha.md", "beta.txt"):
        row = section.locator("li.doc", has_text=name)
        expect(row).to_have_attribute("data-status", "ready", timeout=60_000)
        assert row.locator("progress").evaluate("p => p.value") == 1
    # Once listed by the page itself, each document's name opens the file.
    page.reload()
    links = section.locator("a.name")
    expect(links).to_have_count(2)
    texts = {page.request.get(live_url + links.nth(i).get_attribute("href")).text() for i in range(2)}
    assert texts == {"# Alpha\n\nAlpha note about rotas.", "Beta note about on-call."}


def test_a_file_uploaded_again_replaces_its_older_version_once_ready(
    page, live_url, worker, make_user, make_team, make_collection, tmp_path
):
    """Uploading a file under a name already in the collection (the page's default) queues a new
    version; when it is ready the old row goes, the count stays, and search finds only the new text."""
    from retrieval import services
    from retrieval.models import Document
    from retrieval.tests.helpers import upload

    user = make_user("jon", password="pw-jon-12345")
    collection = make_collection(make_team("Ops", members=[user]), "handbook")
    old, _ = upload(collection, "leave.md", b"# Leave\n\nStaff get twenty days of leave.\n", enqueue=False)
    services.documents_ingest(document_ids=[old.id])
    new_version = tmp_path / "leave.md"
    new_version.write_text("# Leave\n\nStaff get twenty-five days of leave.\n")

    sign_in(page, live_url, "jon", "pw-jon-12345")
    page.goto(f"{live_url}/library/")
    expect(page.locator("body[data-live='1']")).to_have_count(1)
    expect(page.locator("#replace-same-name")).to_be_checked()
    section = page.locator(f"section[data-collection='{collection.id}']")
    expect(section.locator("header .count")).to_have_text("1 document")
    section.locator(".dropzone input[type=file]").set_input_files([str(new_version)])

    expect(section.locator(f"li[data-document='{old.id}']")).to_have_count(0, timeout=60_000)
    rows = section.locator("li.doc", has_text="leave.md")
    expect(rows).to_have_count(1)
    expect(rows).to_have_attribute("data-status", "ready")
    expect(section.locator("header .count")).to_have_text("1 document")
    assert list(Document.objects.filter(collection=collection).values_list("original_name", flat=True)) == [
        "leave.md"
    ]
    hits = selectors_search(user, "days of leave")
    assert {h.document_id for h in hits} == {int(rows.get_attribute("data-document"))}
    assert "twenty-five" in hits[0].text


def test_a_file_already_in_the_collection_is_shown_as_its_existing_document(
    page, live_url, make_user, make_team, make_collection, tmp_path
):
    """The same bytes uploaded again, under another name, add nothing: the existing document's row
    takes the upload's place and says so (no second row for one document), with its own state and
    chunk count, and the collection's count stays."""
    from retrieval import services
    from retrieval.tests.helpers import upload

    user = make_user("kai", password="pw-kai-12345")
    collection = make_collection(make_team("Ops", members=[user]), "handbook")
    data = b"# Leave\n\nStaff get twenty days of leave.\n"
    first, _ = elsewhere(upload, collection, "leave.md", data, enqueue=False)
    elsewhere(upload, collection, "rota.md", b"# Rota\n\nThe rota changes on Mondays.\n", enqueue=False)
    elsewhere(services.documents_ingest, document_ids=[first.id])
    again = tmp_path / "leave (copy).md"
    again.write_bytes(data)

    sign_in(page, live_url, "kai", "pw-kai-12345")
    page.goto(f"{live_url}/library/")
    expect(page.locator("body[data-live='1']")).to_have_count(1)
    section = page.locator(f"section[data-collection='{collection.id}']")
    expect(section.locator("header .count")).to_have_text("2 documents")
    section.locator(".dropzone input[type=file]").set_input_files([str(again)])

    row = section.locator(f"li.doc[data-document='{first.id}']")
    expect(row.locator(".status")).to_have_text(re.compile(r"^ready · 1 chunk · already uploaded$"))
    expect(section.locator("li.doc")).to_have_count(2)
    expect(section.locator("li.doc").first).to_have_attribute("data-document", str(first.id))
    expect(section.locator("li.doc", has_text="copy")).to_have_count(0)
    expect(section.locator("header .count")).to_have_text("2 documents")


def test_a_large_collection_lists_its_latest_and_finds_the_rest(
    page, live_url, make_user, make_team, make_collection, monkeypatch
):
    """A collection past one screen lists its 20 newest documents, and says so as documents come and
    go elsewhere; the others are found by name or by status, and a found row works like a listed one.
    Each row says who uploaded it (none for a script's upload), a row added by the news too."""
    from retrieval import services, tasks
    from retrieval.models import Document
    from retrieval.tests.helpers import upload

    user, teammate = make_user("kim", password="pw-kim-12345"), make_user("lou")
    collection = make_collection(make_team("Ops", members=[user, teammate]), "archive")
    for i in range(25):
        by = user if i == 24 else None
        upload(
            collection, f"report-{i:02d}.md", f"# Report {i}\n\nQuarter {i}.".encode(), user=by, enqueue=False
        )
    Document.objects.filter(collection=collection).update(status="ready", progress=1.0, chunk_count=1)
    Document.objects.filter(original_name="report-01.md").update(status="failed", error="the file is broken")

    sign_in(page, live_url, "kim", "pw-kim-12345")
    page.goto(f"{live_url}/library/")
    section = page.locator(f"section[data-collection='{collection.id}']")
    expect(section.locator("li.doc")).to_have_count(20)
    expect(section.locator(".shown")).to_have_text("The 20 most recent of 25.")
    expect(section.locator("li.doc", has_text="report-03")).to_have_count(0)  # older than the 20
    expect(section.locator("li.doc", has_text="report-24").locator(".meta")).to_contain_text(" · by kim")
    expect(section.locator("li.doc", has_text="report-23").locator(".meta")).not_to_contain_text(" · by ")

    monkeypatch.setattr(tasks.ingest_documents, "delay", lambda *a, **k: None)  # the news, not the work
    expect(page.locator("body[data-live='1']")).to_have_count(1)
    note, _ = elsewhere(upload, collection, "note.md", b"# Note\n\nA new note.", user=teammate)
    expect(section.locator("li.doc").first.locator("a.name")).to_have_text("note")
    expect(section.locator("li.doc").first.locator(".meta")).to_contain_text(" · by lou")
    expect(section.locator(".shown")).to_have_text("The 21 most recent of 26.")
    elsewhere(services.document_delete, document=note)
    expect(section.locator(".shown")).to_have_text("The 20 most recent of 25.")
    expect(section.locator("header .count")).to_have_text("25 documents")

    section.locator(".doc-filter").fill("report-03")
    expect(section.locator("li.doc")).to_have_count(1)
    expect(section.locator("li.doc a.name")).to_have_text("report-03")
    expect(section.locator(".shown")).to_have_text("1 of 1 matching.")

    section.locator(".doc-filter").fill("")
    section.locator(".doc-status").select_option("failed")
    found = section.locator("li.doc")
    expect(found).to_have_count(1)
    expect(found).to_have_attribute("data-status", "failed")
    expect(found.locator(".error")).to_have_text("the file is broken")
    page.once("dialog", lambda dialog: dialog.accept())
    found.locator("[data-action=delete]").click()
    expect(found).to_have_count(0)
    expect(section.locator("header .count")).to_have_text("24 documents")
    assert not Document.objects.filter(original_name="report-01.md").exists()

    # A document uploaded elsewhere meanwhile is counted, but is not among the failed ones found;
    # the newest listed again, it is.
    elsewhere(upload, collection, "memo.md", b"# Memo\n\nThe quarter closed.")
    expect(section.locator("header .count")).to_have_text("25 documents")
    expect(found).to_have_count(0)
    section.locator(".doc-status").select_option("")
    expect(found.first.locator("a.name")).to_have_text("memo")
    expect(section.locator("li.doc", has_text="memo")).to_have_count(1)
    expect(section.locator(".shown")).to_have_text("The 25 most recent of 25.")


def test_a_reader_finds_documents_of_a_large_shared_collection_without_changing_them(
    page, live_url, make_user, make_team, make_collection
):
    """A document found by name or status in a collection shared to read is listed as the served rows
    are: it opens, and offers no retry or delete."""
    from retrieval import services
    from retrieval.models import Document
    from retrieval.tests.helpers import upload

    collection = make_collection(make_team("Ops"), "archive")
    for i in range(25):
        upload(collection, f"report-{i:02d}.md", f"# Report {i}\n\nQuarter {i}.".encode(), enqueue=False)
    Document.objects.filter(collection=collection).update(status="ready", progress=1.0, chunk_count=1)
    Document.objects.filter(original_name="report-01.md").update(status="failed", error="the file is broken")
    make_team("Sales", members=[make_user("sam", password="pw-sam-12345")])
    services.collection_share(collection=collection, teams=["Sales"])

    sign_in(page, live_url, "sam", "pw-sam-12345")
    page.goto(f"{live_url}/library/")
    section = page.locator(f"section[data-collection='{collection.id}']")
    expect(section.locator("li.doc")).to_have_count(20)
    section.locator(".doc-status").select_option("failed")
    found = section.locator("li.doc")
    expect(found).to_have_count(1)
    expect(found.locator(".error")).to_have_text("the file is broken")
    section.locator(".doc-status").select_option("")
    expect(found).to_have_count(25)
    expect(section.locator("[data-action=delete], [data-action=retry]")).to_have_count(0)
    section.locator(".doc-filter").fill("report-03")
    expect(section.locator(".shown")).to_have_text("1 of 1 matching.")
    expect(found.locator("a.name")).to_have_text("report-03")
    expect(found.get_by_role("link", name="Ask about report-03")).to_be_visible()


def test_documents_added_elsewhere_appear_live_for_the_team_and_its_readers(
    page, browser, live_url, worker, make_user, make_team, make_collection
):
    """A document uploaded while the library is open (by a teammate, through the API, by a folder
    sync) gets a row on the open pages of its team and of a team the collection is shared with, and
    reaches ready there; the reader's row offers no delete. Deleted, it leaves both pages."""
    from retrieval import services
    from retrieval.tests.helpers import upload

    collection = make_collection(
        make_team("Ops", members=[make_user("dana", password="pw-dana-12345")]), "runbooks"
    )
    make_team("Sales", members=[make_user("sam", password="pw-sam-12345")])
    services.collection_share(collection=collection, teams=["Sales"])
    reader_context = browser.new_context(viewport={"width": 1200, "height": 850})
    reader = reader_context.new_page()
    pages = {"dana": page, "sam": reader}
    for name, p in pages.items():
        sign_in(p, live_url, name, f"pw-{name}-12345")
        p.goto(f"{live_url}/library/")
        expect(p.locator("body[data-live='1']")).to_have_count(1)
        expect(p.locator(f"section[data-collection='{collection.id}'] li.doc")).to_have_count(0)

    document, _ = elsewhere(
        upload, collection, "restart.md", b"# Restart\n\nRestart the queue when it stalls."
    )
    for name, p in pages.items():
        section = p.locator(f"section[data-collection='{collection.id}']")
        row = section.locator("li.doc", has_text="restart")
        expect(row).to_have_attribute("data-status", "ready", timeout=60_000)
        expect(row.locator("a.name")).to_have_attribute("href", f"/api/v1/documents/{document.id}/file")
        expect(row.get_by_role("link", name="Ask about restart")).to_be_visible()
        expect(row.get_by_role("button", name="Delete restart")).to_have_count(1 if name == "dana" else 0)
        expect(section.locator("header .count")).to_have_text("1 document")
        expect(row.locator(".status")).to_have_text("ready · 1 chunk")
        expect(row.locator(".meta")).to_have_text(f"Markdown · 44\xa0bytes · {today()}")
    reader.reload()  # as the server lists it
    expect(reader.locator("li.doc", has_text="restart").locator(".status")).to_have_text("ready · 1 chunk")
    expect(reader.locator("body[data-live='1']")).to_have_count(1)

    elsewhere(services.document_delete, document=document)
    for p in pages.values():
        section = p.locator(f"section[data-collection='{collection.id}']")
        expect(section.locator("li.doc")).to_have_count(0)
        expect(section.locator("header .count")).to_have_text("0 documents")
    reader_context.close()


def test_a_collection_shared_or_withdrawn_is_added_to_or_removed_from_an_open_page(
    page, live_url, make_user, make_team, make_collection, monkeypatch
):
    """Sales' open library page gains Ops' collection, in the page's order, when Ops shares it with
    Sales (read-only, its documents listed, its news heard), loses it when the share is withdrawn,
    and keeps it when a share is withdrawn while Sales still reads it with every team."""
    from retrieval import services, tasks
    from retrieval.tests.helpers import upload

    monkeypatch.setattr(tasks.ingest_documents, "delay", lambda *a, **k: None)  # the news, not the work
    runbooks = make_collection(make_team("Ops"), "runbooks")
    upload(runbooks, "restart.md", b"# Restart\n\nRestart the queue.", enqueue=False)
    sales = make_team("Sales", members=[make_user("sam", password="pw-sam-12345")])
    make_collection(sales, "leads")

    sign_in(page, live_url, "sam", "pw-sam-12345")
    page.goto(f"{live_url}/library/")
    expect(page.locator("body[data-live='1']")).to_have_count(1)
    sections = page.locator("section.collection h2")
    expect(sections).to_have_text(["leads"])

    elsewhere(services.collection_share, collection=runbooks, teams=["Sales"])
    expect(sections).to_have_text(["runbooks", "leads"])  # by team (Ops, Sales), then name
    section = page.locator(f"section[data-collection='{runbooks.id}']")
    expect(section.locator("header .shared-by")).to_have_text("shared by Ops, to read")
    expect(section.locator("li.doc a.name")).to_have_text(["restart"])
    expect(section.locator(".dropzone, [data-action=delete]")).to_have_count(0)
    elsewhere(upload, runbooks, "rollback.md", b"# Rollback\n\nRoll back the deploy.")
    expect(section.locator("li.doc a.name")).to_have_text(["rollback", "restart"])
    expect(section.locator("header .count")).to_have_text("2 documents")

    elsewhere(services.collection_share, collection=runbooks, teams=[])
    expect(sections).to_have_text(["leads"])

    # Shared with Sales and with every team, then with Sales alone: still Sales' to read.
    elsewhere(services.collection_share, collection=runbooks, teams=["Sales"], everyone=True)
    expect(sections).to_have_text(["runbooks", "leads"])
    elsewhere(services.collection_share, collection=runbooks, everyone=False)
    elsewhere(upload, runbooks, "reboot.md", b"# Reboot\n\nReboot the host.")  # news after the change
    expect(section.locator("li.doc a.name")).to_have_text(["reboot", "rollback", "restart"])
    page.wait_for_timeout(500)  # the page's question to the server, if it had dropped the section
    expect(sections).to_have_text(["runbooks", "leads"])


def test_a_folder_uploads_its_supported_files(
    page, live_url, worker, make_user, make_team, make_collection, tmp_path
):
    """A whole folder, subfolders included: its documents go up, the rest is left out and counted."""
    from retrieval.models import Document

    user = make_user("lee", password="pw-lee-12345")
    collection = make_collection(make_team("Ops", members=[user]), "wiki")
    folder = tmp_path / "wiki"
    (folder / "howto").mkdir(parents=True)
    (folder / "index.md").write_text("# Wiki\n\nStart here.\n")
    (folder / "howto" / "deploy.txt").write_text("Deploy on Tuesdays.\n")
    (folder / "howto" / "index.md").write_text("# How-to\n\nGuides.\n")  # a second index.md
    (folder / "logo.png").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00")
    (folder / "backup.sh").write_text("#!/bin/sh\nrsync -a /srv /backup\n")  # code goes up too
    for sub in (".git", "node_modules/left-pad"):  # not a team's documents
        (folder / sub).mkdir(parents=True)
        (folder / sub / "README.md").write_text("# Not ours\n")

    sign_in(page, live_url, "lee", "pw-lee-12345")
    page.goto(f"{live_url}/library/")
    section = page.locator(f"section[data-collection='{collection.id}']")
    section.locator(".folder-pick input").set_input_files(str(folder))
    expect(section.locator(".folder-note")).to_have_text(
        "4 files from the folder uploaded; left out: 1 not PDF, DOCX, ODT, PPTX, XLSX, EPUB, Markdown, HTML,"
        " CSV, email (EML), source code, configuration or text; 2 in hidden or dependency folders."
    )
    expect(section.locator("li.doc[data-document]")).to_have_count(4)
    expect(section.locator("header .count")).to_have_text("4 documents")
    # Named by their path in the folder: the two index.md files are two documents, not versions.
    names = set(Document.objects.filter(collection=collection).values_list("original_name", flat=True))
    assert names == {"wiki/index.md", "wiki/howto/index.md", "wiki/howto/deploy.txt", "wiki/backup.sh"}
    # Read to the end before the test's data is flushed (a task mid-way when it is deadlocks with it).
    expect(section.locator("li.doc[data-status='ready']")).to_have_count(4, timeout=60_000)


def test_a_team_admin_sets_a_collections_instructions_and_members_see_them(
    page, live_url, make_user, make_team, make_collection
):
    from retrieval.models import Collection

    team = ops_team(make_user, make_team, admin="ida", member="jon")
    collection = make_collection(team, "runbooks")

    sign_in(page, live_url, "ida", "pw-ida-12345")
    page.goto(f"{live_url}/library/")
    section = page.locator(f"section[data-collection='{collection.id}']")
    expect(section.locator(".instructions-note")).to_be_hidden()
    section.get_by_role("button", name="Instructions for answers from runbooks").click()
    section.locator("textarea[name=instructions]").fill("Answer in German. Name the runbook's section.")
    # The same form holds the questions the chat page suggests: one a line, each once.
    questions = section.locator("textarea[name=starter_questions]")
    questions.fill("How do I restart the queue?\n\n  Who is   on call? \nWho is on call?")
    section.get_by_role("button", name="Save").click()
    expect(section.locator(".instructions-note")).to_contain_text("Answer in German.")
    expect(section.locator(".instructions-form")).to_be_hidden()
    saved = Collection.objects.get(id=collection.id)
    assert saved.instructions == "Answer in German. Name the runbook's section."
    assert saved.starter_questions == ["How do I restart the queue?", "Who is on call?"]
    expect(questions).to_have_value("How do I restart the queue?\nWho is on call?")
    # The documents' language, for keyword search: the collection's index is rebuilt in it.
    expect(section.locator(".language-note")).to_be_hidden()  # English, the default, goes unsaid
    section.get_by_role("button", name="Language of runbooks").click()
    section.locator(".language-form select").select_option("german")
    section.locator(".language-form").get_by_role("button", name="Save").click()
    expect(section.locator(".language-note")).to_have_text(" · German")
    expect(section.locator(".language-form")).to_be_hidden()
    assert Collection.objects.get(id=collection.id).language == "german"
    page.context.clear_cookies()

    sign_in(page, live_url, "jon", "pw-jon-12345")
    page.goto(f"{live_url}/library/")
    section = page.locator(f"section[data-collection='{collection.id}']")
    expect(section.locator(".instructions-note")).to_contain_text("Name the runbook's section.")
    expect(section.locator(".language-note")).to_have_text(" · German")
    expect(
        section.locator(
            "[data-action=edit-instructions], .instructions-form, [data-action=edit-language], .language-form"
        )
    ).to_have_count(0)
    # On the chat page, before a conversation starts, the member is offered the suggested questions;
    # one click asks it.
    page.goto(f"{live_url}/")
    offered = page.locator("#empty-suggestions button")
    expect(offered).to_have_text(["How do I restart the queue?", "Who is on call?"])
    offered.nth(1).click()
    expect(page.locator("article.msg.user").first).to_contain_text("Who is on call?")
    expect(page.locator("#empty-suggestions")).to_be_hidden()
    # Its answer ends before the test does (the database is emptied after it).
    answer = page.locator("article.msg.assistant").first
    expect(answer).to_contain_text("I can't find that in your documents.", timeout=60_000)
    expect(answer).not_to_have_class("msg assistant streaming", timeout=30_000)


def test_a_team_admin_renames_and_deletes_a_collection_and_a_member_cannot(
    page, live_url, make_user, make_team, make_collection
):
    from retrieval import services
    from retrieval.models import Collection, Document
    from retrieval.tests.helpers import upload

    team = ops_team(make_user, make_team, admin="mia", member="ned")
    old = make_collection(team, "old-runbooks")
    kept = make_collection(team, "runbooks")
    document, _ = upload(old, "pager.md", b"# Pager\n\nThe old pager rota.\n", enqueue=False)
    services.documents_ingest(document_ids=[document.id])

    sign_in(page, live_url, "ned", "pw-ned-12345")
    page.goto(f"{live_url}/library/")
    expect(page.locator("section.collection")).to_have_count(2)
    expect(page.locator("[data-action$=-collection]")).to_have_count(0)  # neither Rename nor Delete
    page.context.clear_cookies()

    sign_in(page, live_url, "mia", "pw-mia-12345")
    page.goto(f"{live_url}/library/")
    section = page.locator(f"section[data-collection='{old.id}']")
    # A name the team already uses is refused in words; another one is taken.
    names, alerts = iter(["runbooks", "archive"]), []

    def on_dialog(dialog):
        if dialog.type == "prompt":
            dialog.accept(next(names))
        else:
            alerts.append(dialog.message)
            dialog.accept()

    page.on("dialog", on_dialog)
    section.get_by_role("button", name="Rename the collection old-runbooks").click()
    deadline = time.monotonic() + 10
    while not alerts and time.monotonic() < deadline:
        page.wait_for_timeout(100)
    assert alerts and "already has a collection named 'runbooks'" in alerts[0]
    section.get_by_role("button", name="Rename the collection old-runbooks").click()
    expect(section.locator("h2")).to_have_text("archive")
    assert Collection.objects.get(id=old.id).name == "archive"
    # Each button's name (its visible words, then the collection's) follows the rename.
    for name in (
        "Sharing of archive",
        "Language of archive",
        "Rename the collection archive",
    ):
        expect(section.get_by_role("button", name=name)).to_have_count(1)
    page.remove_listener("dialog", on_dialog)
    messages = []
    page.once("dialog", lambda dialog: (messages.append(dialog.message), dialog.accept()))
    section.get_by_role("button", name="Delete collection archive").click()
    expect(section).to_have_count(0)
    assert "1 document" in messages[0]
    # Gone for everyone at once; its rows are the purge task's.
    assert list(Collection.objects.filter(deleted_at__isnull=True).values_list("id", flat=True)) == [kept.id]
    services.collection_purge(
        collection_id=old.id
    )  # as its task does (the session's worker may be at it too)
    deadline = time.monotonic() + 10
    while Document.objects.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not Document.objects.exists()
    page.reload()
    expect(page.locator("section.collection")).to_have_count(1)


def test_a_document_renamed_in_one_tab_is_renamed_in_the_other(
    page, live_url, make_user, make_team, make_collection
):
    """Rename asks for the new title; the row, its buttons' names and the other open library page
    follow (over the socket); its file still opens under the original name."""
    from retrieval import services
    from retrieval.tests.helpers import upload

    user = make_user("rita", password="pw-rita-12345")
    team = make_team("Ops", members=[user], role="admin")
    collection = make_collection(team, "plans")
    document, _ = upload(collection, "q3-final-v2.md", b"# Plan\n\nShip it.\n", enqueue=False)
    elsewhere(services.documents_ingest, document_ids=[document.id])
    sign_in(page, live_url, "rita", "pw-rita-12345")
    other = page.context.new_page()
    for tab in (page, other):
        tab.goto(f"{live_url}/library/")
        expect(tab.locator("body[data-live='1']")).to_have_count(1)
    row = page.locator(f"li.doc[data-document='{document.id}']")
    page.once("dialog", lambda dialog: dialog.accept("Q3 plan"))
    row.get_by_role("button", name="Rename q3-final-v2").click()
    expect(row.locator(".name")).to_have_text("Q3 plan")
    for role, name in (
        ("button", "Rename Q3 plan"),
        ("button", "Delete Q3 plan"),
        ("link", "Ask about Q3 plan"),
    ):
        expect(row.get_by_role(role, name=name)).to_have_count(1)
    expect(row.locator(".name")).to_have_attribute("title", "Open Q3 plan")
    expect(other.locator(f"li.doc[data-document='{document.id}'] .name")).to_have_text("Q3 plan")
    # A blank title is not sent; the row keeps its name.
    page.once("dialog", lambda dialog: dialog.accept("   "))
    row.get_by_role("button", name="Rename Q3 plan").click()
    page.reload()
    expect(row.locator(".name")).to_have_text("Q3 plan")
    opened = page.request.get(live_url + row.locator(".name").get_attribute("href"))
    assert "q3-final-v2.md" in opened.headers.get("content-disposition", "")
    # The team's activity says who renamed it, and what it was called.
    activity = page.locator(f"section.team[data-team='{team.id}'] details.activity")
    activity.locator("summary").click()
    expect(activity.locator(".events li").first).to_contain_text(
        "rita renamed a document: Q3 plan (in plans, was q3-final-v2)"
    )


def test_documents_chosen_by_their_boxes_are_deleted_at_once(
    page, live_url, make_user, make_team, make_collection
):
    """Ticking rows shows how many are chosen and "Delete selected"; it asks first, then takes
    them away (rows and count); Clear unticks the rest. A collection shared to read has no boxes."""
    from retrieval.tests.helpers import upload

    user = make_user("sam", password="pw-sam-12345")
    team = make_team("Ops", members=[user])
    collection = make_collection(team, "notes")
    for i in range(3):
        upload(collection, f"note-{i}.md", f"# Note {i}\n\nWords {i}.\n".encode(), enqueue=False)
    shared = make_collection(make_team("Other"), "theirs")
    shared.shared_with.add(team)
    upload(shared, "theirs.md", b"# Theirs\n\nRead only.\n", enqueue=False)
    sign_in(page, live_url, "sam", "pw-sam-12345")
    page.goto(f"{live_url}/library/")
    section = page.locator(f"section[data-collection='{collection.id}']")
    bar = section.locator(".selection")
    expect(bar).to_be_hidden()
    expect(page.locator(f"section[data-collection='{shared.id}'] input.pick")).to_have_count(0)
    section.get_by_role("checkbox", name="Select note-0").check()
    section.get_by_role("checkbox", name="Select note-2").check()
    expect(bar).to_contain_text("2 selected")
    asked = []
    page.once("dialog", lambda dialog: (asked.append(dialog.message), dialog.dismiss()))
    bar.get_by_role("button", name="Delete selected").click()
    expect(section.locator("li.doc")).to_have_count(3)  # not without a yes
    assert asked == ["Delete 2 documents? Their passages are no longer searched."]
    page.once("dialog", lambda dialog: dialog.accept())
    bar.get_by_role("button", name="Delete selected").click()
    expect(section.locator("li.doc")).to_have_count(1)
    expect(section.locator("li.doc .name")).to_have_text("note-1")
    expect(section.locator("header")).to_contain_text("1 document")
    expect(bar).to_be_hidden()
    assert list(collection.documents.values_list("original_name", flat=True)) == ["note-1.md"]
    section.get_by_role("checkbox", name="Select note-1").check()
    bar.get_by_role("button", name="Clear").click()
    expect(section.get_by_role("checkbox", name="Select note-1")).not_to_be_checked()
    expect(bar).to_be_hidden()


def test_a_row_being_read_leaves_when_its_document_is_gone_though_no_news_came(
    page, live_url, make_user, make_team, make_collection
):
    """Polling backs the websocket up for deletions too: a document still queued whose deletion the
    page never heard of (a socket down meanwhile) loses its row and its place in the count."""
    from retrieval.models import Document
    from retrieval.tests.helpers import upload

    collection = make_collection(
        make_team("Ops", members=[make_user("ivy", password="pw-ivy-12345")]), "notes"
    )
    upload(collection, "kept.md", b"# Kept\n\nKept.", enqueue=False)
    lost, _ = upload(collection, "lost.md", b"# Lost\n\nLost.", enqueue=False)

    sign_in(page, live_url, "ivy", "pw-ivy-12345")
    page.goto(f"{live_url}/library/")
    section = page.locator(f"section[data-collection='{collection.id}']")
    expect(section.locator("li.doc[data-status=queued]")).to_have_count(2)
    Document.objects.filter(id=lost.id).delete()  # no news published
    expect(section.locator("li.doc a.name")).to_have_text(["kept"], timeout=10_000)
    expect(section.locator("header .count")).to_have_text("1 document")


# Holds the first answer to a document's status poll (read from the server as it was asked for)
# until the test lets it go: a slow link, whose answer arrives after the socket's news.
HELD_POLL = """
(() => {
  const real = window.fetch;
  let held = false;
  window.fetch = async (url, options) => {
    const response = await real(url, options);
    if (held || !/^\\/api\\/v1\\/documents\\/\\d+$/.test(String(url))) return response;
    held = true;
    window.pollHeld = true;
    await new Promise((resolve) => { window.releasePoll = resolve; });
    return response;
  };
})();
"""


def test_a_poll_answer_older_than_the_sockets_news_does_not_undo_it(
    page, live_url, make_user, make_team, make_collection
):
    """A document's row polled while queued hears it become ready over the socket before the poll's
    answer (read while it was queued) arrives: the row stays ready, and is not shown queued again."""
    from retrieval import services
    from retrieval.tests.helpers import upload

    collection = make_collection(
        make_team("Ops", members=[make_user("ivy", password="pw-ivy-12345")]), "notes"
    )
    document, _ = upload(collection, "rota.md", b"# Rota\n\nThe pager rota changes weekly.", enqueue=False)

    page.add_init_script(HELD_POLL)
    sign_in(page, live_url, "ivy", "pw-ivy-12345")
    page.goto(f"{live_url}/library/")
    expect(page.locator("body[data-live='1']")).to_have_count(1)
    row = page.locator(f"li[data-document='{document.id}']")
    expect(row).to_have_attribute("data-status", "queued")
    page.wait_for_function("() => window.pollHeld", timeout=10_000)  # its answer says "queued"
    elsewhere(services.documents_ingest, document_ids=[document.id])
    expect(row).to_have_attribute("data-status", "ready", timeout=30_000)
    # Every status the row shows from now on (a later poll would hide a brief "queued").
    row.evaluate(
        """li => { window.shown = [];
          new MutationObserver(() => window.shown.push(li.dataset.status))
            .observe(li, { attributes: true, attributeFilter: ["data-status"] }); }"""
    )
    page.evaluate("() => window.releasePoll()")
    page.wait_for_timeout(1500)  # the held answer arrives, and is not shown
    assert set(page.evaluate("() => window.shown")) <= {"ready"}
    expect(row.locator(".status")).to_have_text("ready · 1 chunk")


def test_a_document_is_deleted_or_retried_from_its_row(page, live_url, make_user, make_team, make_collection):
    """Delete (after a confirmation) takes the row away and the passages out of search; Retry queues a
    failed document again. Both buttons work on the rows the page listed itself."""
    from retrieval import services
    from retrieval.models import Document
    from retrieval.tests.helpers import upload

    user = make_user("ivy", password="pw-ivy-12345")
    collection = make_collection(make_team("Ops", members=[user]), "notes")
    keep, _ = upload(collection, "keep.md", b"# Keep\n\nThe generator is tested monthly.\n", enqueue=False)
    drop, _ = upload(collection, "drop.md", b"# Drop\n\nThe old pager rota is retired.\n", enqueue=False)
    broken, _ = upload(collection, "broken.pdf", files.pdf_circular_xref(), enqueue=False)
    services.documents_ingest(document_ids=[keep.id, drop.id, broken.id])

    sign_in(page, live_url, "ivy", "pw-ivy-12345")
    page.goto(f"{live_url}/library/")
    section = page.locator(f"section[data-collection='{collection.id}']")
    expect(section.locator(f"li[data-document='{keep.id}'] [data-action=retry]")).to_be_hidden()
    expect(section.locator("header .count")).to_have_text("3 documents")
    page.once("dialog", lambda dialog: dialog.accept())
    section.locator(f"li[data-document='{drop.id}'] [data-action=delete]").click()
    expect(section.locator(f"li[data-document='{drop.id}']")).to_have_count(0)
    expect(section.locator("header .count")).to_have_text("2 documents")
    assert not Document.objects.filter(id=drop.id).exists()
    assert [h.document_id for h in selectors_search(user, "pager rota")] == []
    failed = section.locator(f"li[data-document='{broken.id}']")
    expect(failed).to_have_attribute("data-status", "failed")
    before = Document.objects.get(id=broken.id)
    failed.locator("[data-action=retry]").click()
    # Queued again (a worker running in this session may already have failed it once more).
    deadline = time.monotonic() + 20
    while True:
        now = Document.objects.get(id=broken.id)
        if now.status in ("queued", "processing") or now.finished_at != before.finished_at:
            break
        assert time.monotonic() < deadline, "the retry queued nothing"
        time.sleep(0.2)


def selectors_search(user, query):
    from retrieval.selectors import search

    return search(user=user, query=query, mode="keyword", k=5)


def test_a_team_admin_adds_and_removes_members_on_the_library_page(
    page, live_url, make_user, make_team, make_collection
):
    """The team's admin adds a user by name (who then sees the team's collection), makes them an
    admin and removes them; a refusal (an unknown name, the last admin) is shown in words; a member
    sees the list without the controls."""
    from retrieval import selectors, services

    admin, other = make_user("kim", password="pw-kim-12345"), make_user("lou", password="pw-lou-12345")
    team = make_team("Ops", members=[admin], role="admin")
    make_collection(team, "runbooks")

    sign_in(page, live_url, "kim", "pw-kim-12345")
    page.goto(f"{live_url}/library/")
    section = page.locator(f"section.team[data-team='{team.id}']")
    expect(section.locator(".members li")).to_have_count(1)
    section.get_by_label("User name to add to Ops").fill("nobody")
    section.get_by_role("button", name="Add to Ops").click()
    expect(section.locator(".add-member .error")).to_contain_text("no user named 'nobody'")
    section.get_by_label("User name to add to Ops").fill("lou")
    section.get_by_role("button", name="Add to Ops").click()
    expect(section.locator(".members li")).to_have_count(2)
    expect(section.locator(".add-member .error")).to_be_hidden()
    assert selectors.is_team_admin(user=admin, team_id=team.id)

    messages = []
    page.on("dialog", lambda dialog: (messages.append(dialog.message), dialog.accept()))
    section.get_by_label("Role of kim in Ops").select_option("member")  # the last admin
    expect(section.get_by_label("Role of kim in Ops")).to_have_value("admin")
    assert messages and "last admin" in messages[0]
    section.get_by_label("Role of lou in Ops").select_option("admin")
    expect(section.get_by_label("Role of lou in Ops")).to_have_value("admin")
    page.context.clear_cookies()

    sign_in(page, live_url, "lou", "pw-lou-12345")
    page.goto(f"{live_url}/library/")
    expect(page.locator("section.collection h2")).to_have_text(["runbooks"])
    page.context.clear_cookies()

    sign_in(page, live_url, "kim", "pw-kim-12345")
    page.goto(f"{live_url}/library/")
    section = page.locator(f"section.team[data-team='{team.id}']")
    section.get_by_label("Role of lou in Ops").select_option("member")
    expect(section.get_by_label("Role of lou in Ops")).to_have_value("member")
    section.get_by_role("button", name="Remove lou from Ops").click()
    expect(section.locator(".members li")).to_have_count(1)
    # The team's activity says who did each of these, newest first.
    section.locator("details.activity summary").click()
    events = section.get_by_role("list", name="Activity in Ops").locator("li")
    expect(events).to_have_count(5)
    expect(events.nth(0)).to_contain_text("kim removed a member: lou")
    expect(events.nth(1)).to_contain_text("kim changed a member's role: lou (admin → member)")
    expect(events.nth(2)).to_contain_text("kim changed a member's role: lou (member → admin)")
    expect(events.nth(3)).to_contain_text("kim added a member: lou (as member)")
    expect(events.nth(4)).to_contain_text("Docent created the collection: Ops/runbooks")  # no one signed in
    expect(section.locator("details.activity .older")).to_be_hidden()
    # And what each member has spent this month.
    from chat.models import Usage

    Usage.objects.create(user=admin, source="chat", prompt_tokens=1200, completion_tokens=34)
    section.locator("details.team-usage summary").click()
    usage = section.get_by_role("table", name="Usage in Ops this month").locator("tbody tr")
    expect(usage).to_have_count(1)
    expect(usage.first.locator("td")).to_have_text(["kim", "1", "1,234", "unlimited"])
    page.context.clear_cookies()

    services.membership_set(team=team, user=other)
    sign_in(page, live_url, "lou", "pw-lou-12345")
    page.goto(f"{live_url}/library/")
    section = page.locator(f"section.team[data-team='{team.id}']")
    expect(section.locator(".members li")).to_have_count(2)
    expect(
        section.locator(".members select, .members button, form.add-member, .activity, .team-usage")
    ).to_have_count(0)
    page.context.clear_cookies()

    # An admin who makes themself a member loses the page's admin controls at once.
    services.membership_set(team=team, user=other, role="admin")
    sign_in(page, live_url, "kim", "pw-kim-12345")
    page.goto(f"{live_url}/library/")
    section = page.locator(f"section.team[data-team='{team.id}']")
    expect(section.locator("form.add-member")).to_have_count(1)
    section.get_by_label("Role of kim in Ops").select_option("member")
    expect(section.locator("header .muted")).to_have_text("you are a member")
    expect(section.locator(".members select, .members button, form.add-member")).to_have_count(0)


def test_member_changes_made_at_once_reach_the_server_in_order(
    page, live_url, make_user, make_team, make_collection
):
    """A role change still on its way when the member is removed: the removal waits for it, so the
    role change (which adds a member it does not find) cannot bring the member back."""
    from retrieval import selectors

    team = ops_team(make_user, make_team, admin="kim", member="lou")
    held = []
    page.route(
        f"**/api/v1/teams/{team.id}/members/lou",
        lambda route: held.append(route) if route.request.method == "PUT" else route.continue_(),
    )
    sign_in(page, live_url, "kim", "pw-kim-12345")
    page.goto(f"{live_url}/library/")
    section = page.locator(f"section.team[data-team='{team.id}']")
    section.get_by_label("Role of lou in Ops").select_option("admin")
    for _ in range(100):  # the role change is held on its way
        if held:
            break
        page.wait_for_timeout(50)
    assert held
    section.get_by_role("button", name="Remove lou from Ops").click()
    page.wait_for_timeout(500)  # time for a removal sent at once to be done before the role change
    with page.expect_response(lambda r: r.request.method == "PUT" and r.url.endswith("/members/lou")):
        held[0].continue_()
    page.wait_for_load_state("networkidle")
    expect(section.locator(".members li")).to_have_count(1)
    assert [m.user.username for m in selectors.team_members(team_id=team.id)] == ["kim"]


def test_a_member_creates_a_collection_and_a_taken_name_is_refused_in_words(
    page, live_url, make_user, make_team, make_collection
):
    user = make_user("mo", password="pw-mo-123456")
    team = make_team("Ops", members=[user])
    make_collection(team, "runbooks")
    sign_in(page, live_url, "mo", "pw-mo-123456")
    page.goto(f"{live_url}/library/")
    page.get_by_text("New collection").click()
    page.fill("#nc-name", "runbooks")
    page.locator("#new-collection").get_by_role("button", name="Create").click()
    expect(page.locator("#new-collection .error")).to_contain_text("runbooks")
    page.fill("#nc-name", "postmortems")
    page.select_option("#nc-language", "german")  # for keyword search: German stems
    page.locator("#new-collection").get_by_role("button", name="Create").click()
    expect(page.locator("section.collection h2")).to_have_text(["postmortems", "runbooks"])
    expect(page.locator("section.collection header .language-note:visible")).to_have_text([" · German"])
    from retrieval.models import Collection

    made = Collection.objects.get(name="postmortems")
    assert (made.language, made.indexed_language) == ("german", "german")


def test_a_team_admin_shares_a_collection_and_the_other_team_reads_it_without_changing_it(
    page, live_url, worker, make_user, make_team, make_collection
):
    """Ops' admin lets team Sales read "runbooks": Sales' member sees it marked as shared, opens and
    searches its documents, and is offered no upload, retry or delete; the chat offers it as a
    scope but not as a place for attached files."""
    from retrieval.models import Collection
    from retrieval.tests.helpers import upload

    team = ops_team(make_user, make_team, admin="ida", member="jon")
    collection = make_collection(team, "runbooks")
    document, _ = upload(collection, "restart.md", b"# Restart\n\nRestart the queue when it stalls.")
    make_team("Sales", members=[make_user("sam", password="pw-sam-12345")])

    sign_in(page, live_url, "ida", "pw-ida-12345")
    page.goto(f"{live_url}/library/")
    section = page.locator(f"section[data-collection='{collection.id}']")
    expect(section.locator(".sharing-note")).to_be_hidden()
    section.get_by_role("button", name="Sharing of runbooks").click()
    section.locator(".sharing-form").get_by_label("Sales").check()
    section.locator(".sharing-form").get_by_role("button", name="Save").click()
    expect(section.locator(".sharing-note")).to_have_text("Other teams that read it: Sales")
    expect(section.locator(".sharing-form")).to_be_hidden()
    assert [t.name for t in Collection.objects.get(id=collection.id).shared_with.all()] == ["Sales"]
    # Every team, teams made later too; then back to Sales alone.
    form = section.locator(".sharing-form")
    section.get_by_role("button", name="Sharing of runbooks").click()
    form.get_by_label("Every team (teams made later too)").check()
    form.get_by_role("button", name="Save").click()
    expect(section.locator(".sharing-note")).to_have_text("Other teams that read it: every team")
    assert Collection.objects.get(id=collection.id).shared_with_all
    section.get_by_role("button", name="Sharing of runbooks").click()
    form.get_by_label("Every team (teams made later too)").uncheck()
    form.get_by_role("button", name="Save").click()
    expect(section.locator(".sharing-note")).to_have_text("Other teams that read it: Sales")
    assert not Collection.objects.get(id=collection.id).shared_with_all
    page.context.clear_cookies()

    sign_in(page, live_url, "sam", "pw-sam-12345")
    expect(page.locator("#scope input[name=collection]")).to_have_count(1)  # it can be asked about
    expect(page.locator("#attach")).to_have_count(0)  # but nothing can be added to it from here
    page.goto(f"{live_url}/library/")
    section = page.locator(f"section[data-collection='{collection.id}']")
    expect(section.locator("header .shared-by")).to_have_text("shared by Ops, to read")
    row = section.locator("li.doc", has_text="restart")
    # A reader's page hears the collection's progress too (and polls a row still being read).
    expect(row).to_have_attribute("data-status", "ready", timeout=60_000)
    expect(row.get_by_role("link", name="Ask about restart")).to_be_visible()
    expect(
        section.locator(".dropzone, .folder-pick, .sharing-note, [data-action=edit-sharing]")
    ).to_have_count(0)
    expect(section.get_by_role("button", name=re.compile("^(Delete|Retry)"))).to_have_count(0)
    page.fill("#search-q", "restart the queue")
    page.keyboard.press("Enter")
    # The server's first search may wait for the embedding model to finish loading.
    hit = page.locator("#search-results li.hit").first
    expect(hit).to_contain_text("Restart the queue when it stalls.", timeout=20_000)


def test_a_site_added_on_the_library_page_is_read_into_documents_and_removed_with_them(
    page, live_url, worker, fake_site, make_user, make_team, make_collection
):
    """A member adds a site's folder, following its links: the source says how its reading went,
    its pages arrive as document rows that reach ready, and removing it takes them away."""
    fake_site.html("/handbook/", "Handbook", "Start here.", links=("leave",))
    fake_site.html("/handbook/leave", "Leave policy", "Employees get 25 days of leave a year.")
    user = make_user("webb", password="pw-webb-12345")
    collection = make_collection(make_team("Ops", members=[user]), "handbook")
    sign_in(page, live_url, "webb", "pw-webb-12345")
    page.goto(f"{live_url}/library/")
    expect(page.locator("body[data-live='1']")).to_have_count(1)
    section = page.locator(f"section[data-collection='{collection.id}']")
    section.locator("details.web-sources > summary").click()
    form = section.locator("form.add-source")
    form.locator("input[name=url]").fill("ftp://files.example.org/")
    form.locator("button[type=submit]").click()
    expect(form.locator(".error")).to_have_text("give a web address starting with http:// or https://")

    # The handbook is behind a sign-in: a header, sent to its site with each request.
    fake_site.guard = ("X-Api-Key", "k-123")
    form.locator("input[name=url]").fill(f"{fake_site.origin}/handbook/")
    form.locator("input[name=crawl]").check()
    form.locator(".sign-in-header summary").click()
    form.get_by_label("Header").fill("X-Api-Key")
    form.get_by_label("Value").fill("k-123")
    form.locator("button[type=submit]").click()
    expect(form.locator(".error")).to_be_hidden()
    expect(form.get_by_label("Value")).to_have_value("")  # not kept in the page
    source = section.locator("li.source")
    expect(source).to_have_attribute("data-status", "ok", timeout=30_000)
    expect(source.locator(".status")).to_contain_text("up to date · 2 pages · read ")
    expect(source.locator(".status")).to_contain_text("signs in with X-Api-Key")
    expect(section.locator(".source-count")).to_have_text(" (1)")
    for title in ("Handbook", "Leave policy"):
        expect(section.locator("li.doc", has_text=title)).to_have_attribute(
            "data-status", "ready", timeout=60_000
        )

    # Each row links the page it was read from, as it arrived and as the page lists it.
    leave = section.locator("li.doc", has_text="Leave policy")
    expect(leave.locator(".meta a")).to_have_attribute("href", f"{fake_site.origin}/handbook/leave")
    page.reload()
    expect(leave.locator(".meta a")).to_have_attribute("href", f"{fake_site.origin}/handbook/leave")

    # The search box finds its passages, each linking its page.
    page.get_by_placeholder("Search passages…").fill("days of leave")
    page.keyboard.press("Enter")
    hit = page.locator("#search-results li.hit").first
    expect(hit.locator(".where a", has_text="the page")).to_have_attribute(
        "href", f"{fake_site.origin}/handbook/leave"
    )

    # An answer drawn from it opens the passage, and links the page it was read from.
    page.goto(f"{live_url}/")
    page.fill("#question", "How many days of leave do employees get a year?")
    page.keyboard.press("Enter")
    answer = page.locator("article.msg.assistant").first
    expect(answer).to_have_attribute("data-status", "stop", timeout=30_000)
    answer.locator("button.cite").first.click()
    expect(page.locator("#source-title")).to_contain_text("Leave policy")
    expect(page.locator("#source-web")).to_have_attribute("href", f"{fake_site.origin}/handbook/leave")
    page.goto(f"{live_url}/library/")
    section.locator("details.web-sources > summary").click()

    def read_again():
        # The row says "ok" from the reading before until the news of this one arrives: the site's
        # requests tell that this reading happened (a later step must not race it).
        requests = len(fake_site.requests)
        source.locator("[data-action=source-sync]").click()
        deadline = time.monotonic() + 30
        while len(fake_site.requests) < requests + 3 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert fake_site.requests[requests:] == ["/handbook/", "/robots.txt", "/handbook/leave"]
        expect(source).to_have_attribute("data-status", "ok", timeout=30_000)
        expect(source.locator("[data-action=source-sync]")).to_be_enabled()

    # Read again: the page's news arrives as the reading goes, and it ends up to date, unchanged.
    read_again()
    expect(section.locator("li.doc")).to_have_count(2)

    # The site's key changes: the source takes a new one (and another schedule) from its settings.
    fake_site.guard = ("X-Api-Key", "k-456")
    settings_ = source.locator("details.source-settings")
    settings_.locator("summary").click()
    settings_.get_by_label("Read again").select_option("168")
    settings_.get_by_label("Sign-in header").fill("X-Other")
    settings_.get_by_role("button", name="Save").click()
    expect(settings_.locator(".error")).to_have_text("Give the header's value too.")
    settings_.get_by_label("Sign-in header").fill("X-Api-Key")
    settings_.get_by_label("Its value").fill("k-456")
    settings_.get_by_role("button", name="Save").click()
    expect(source.locator("details.source-settings[open]")).to_have_count(0)
    source.locator("details.source-settings summary").click()
    expect(settings_.get_by_label("Read again")).to_have_value("168")
    expect(settings_.get_by_label("Its value")).to_have_value("")  # never shown
    source.locator("details.source-settings summary").click()
    read_again()  # with the new key: the guarded site answers every page
    expect(source.locator(".status")).to_contain_text("up to date · 2 pages")

    # The site down: the source says so and when it is tried again, and counts failures in a row.
    fake_site.page("/handbook/", b"down", status=503, type="text/plain")
    status = source.locator(".status")
    source.locator("[data-action=source-sync]").click()
    expect(source).to_have_attribute("data-status", "failed", timeout=30_000)
    expect(status).to_contain_text(
        re.compile(r"^failed: the server answered 503 · tried again \d+ \w+ \d{4}, \d\d:\d\d · 2 pages")
    )
    expect(status).not_to_contain_text("in a row")
    source.locator("[data-action=source-sync]").click()
    expect(status).to_contain_text("2 times in a row", timeout=30_000)
    expect(section.locator("li.doc")).to_have_count(2)  # nothing deleted while it is down

    page.once("dialog", lambda dialog: dialog.accept())
    source.locator("[data-action=source-remove]").click()
    expect(section.locator("li.source")).to_have_count(0)
    expect(section.locator("li.doc")).to_have_count(0)
    expect(section.locator(".source-count")).to_have_text("")
