"""Web sources: pages read from a real HTTP server on loopback become documents, are kept in step
with the site at each reading, and go with their source."""

import time
from datetime import timedelta

import pytest
from django.utils import timezone

from retrieval import selectors, services, web
from retrieval.models import Chunk, Document, WebSource

from .helpers import wait_done


def _site(fake_site):
    fake_site.html("/docs/", "Docs", "The handbook's index.", links=("intro", "setup"))
    fake_site.html("/docs/intro", "Intro", "Docent answers from your team's documents.")
    fake_site.html("/docs/setup", "Setup", "Install the heat pump before the winter frost.")


def _source(collection, fake_site, **kwargs) -> WebSource:
    fields = {"url": f"{fake_site.origin}/docs/", "crawl": True, "max_pages": 50} | kwargs
    return WebSource.objects.create(collection=collection, **fields)


def _sync_and_ingest(source, capture) -> WebSource:
    """A reading, slice after slice, then the ingestion of what it queued (on commit, as the worker
    would)."""
    source = services.web_source_sync(source_id=source.id)
    while source.status == "syncing":
        source = services.web_source_sync(source_id=source.id, reading=source.reading)
    queued = list(Document.objects.filter(source=source, status="queued").values_list("id", flat=True))
    with capture(execute=True):
        services.documents_ingest(document_ids=queued)
    return source


def _pages(source) -> dict[str, Document]:
    return {d.source_url.rsplit("/", 1)[-1] or "index": d for d in Document.objects.filter(source=source)}


def test_a_site_is_read_and_kept_in_step(
    db, fake_site, alice, collection_a, django_capture_on_commit_callbacks
):
    _site(fake_site)
    source = _sync_and_ingest(_source(collection_a, fake_site), django_capture_on_commit_callbacks)
    assert (source.status, source.pages, source.error) == ("ok", 3, "")
    assert source.tally == {"new": 3, "unchanged": 0, "skipped": 0, "deleted": 0}
    assert source.next_sync_at - source.synced_at == timedelta(hours=24)
    pages = _pages(source)
    assert sorted(pages) == ["index", "intro", "setup"]
    port = fake_site.server.server_address[1]
    setup = pages["setup"]
    assert (setup.title, setup.original_name, setup.kind, setup.status) == (
        "Setup",
        f"127.0.0.1:{port}/docs/setup",
        "html",
        "ready",
    )
    assert "heat pump" in " ".join(Chunk.objects.filter(document=setup).values_list("text", flat=True))
    # Search names the page each passage was read from.
    [hit] = selectors.search(user=alice, query="heat pump winter frost", mode="keyword", k=1)
    assert (hit.document_id, hit.url) == (setup.id, f"{fake_site.origin}/docs/setup")

    # Nothing changed: nothing is taken again.
    before = {d.id for d in pages.values()}
    assert _sync_and_ingest(source, django_capture_on_commit_callbacks).tally["unchanged"] == 3
    # Other bytes, the same text (a nonce in a script, a build id): not ingested again either.
    fake_site.html(
        "/docs/intro",
        "Intro",
        "Docent answers from your team's documents.",
        head="<script>var n='4f2a';</script>",
    )
    assert _sync_and_ingest(source, django_capture_on_commit_callbacks).tally["unchanged"] == 3
    assert {d.id for d in _pages(source).values()} == before
    assert {d.id for d in _pages(source).values()} == before

    # A changed page is a new version, which replaces the old once ready; a page no longer linked
    # (the reading visited everything) is deleted.
    fake_site.html("/docs/", "Docs", "The handbook's index.", links=("setup",))
    fake_site.html("/docs/setup", "Setup", "Install the heat pump in spring.")
    source = _sync_and_ingest(source, django_capture_on_commit_callbacks)
    pages = _pages(source)
    assert sorted(pages) == ["index", "setup"] and source.pages == 2
    assert pages["setup"].id not in before and pages["index"].id not in before  # its links changed
    assert Document.objects.filter(id__in=before).count() == 0  # old versions and the unlinked page
    assert "spring" in Chunk.objects.filter(document=pages["setup"]).values_list("text", flat=True)[0]

    # A page that fails for now keeps its document; a page the server says is gone loses it.
    fake_site.html("/docs/", "Docs", "The handbook's index.", links=("setup", "faq"))
    fake_site.page("/docs/setup", b"busy", status=503, type="text/plain")
    source = _sync_and_ingest(source, django_capture_on_commit_callbacks)
    assert sorted(_pages(source)) == ["index", "setup"]
    assert source.status == "ok"
    assert {s["url"].rsplit("/", 1)[-1]: s["reason"] for s in source.skipped} == {
        "setup": "the server answered 503"
    }
    fake_site.page("/docs/setup", b"", status=410)
    assert _sync_and_ingest(source, django_capture_on_commit_callbacks).tally["deleted"] == 1
    assert sorted(_pages(source)) == ["index"]

    # The site down: the reading fails, says why, deletes nothing, and is tried again within an hour.
    fake_site.page("/docs/", b"down", status=500, type="text/plain")
    source = _sync_and_ingest(source, django_capture_on_commit_callbacks)
    assert (source.status, source.error) == ("failed", "the server answered 500")
    assert source.next_sync_at - source.synced_at == timedelta(hours=1)
    assert sorted(_pages(source)) == ["index"]
    # Still down: each failure in a row waits twice as long, never longer than the schedule.
    waits = []
    for _ in range(5):
        source = _sync_and_ingest(source, django_capture_on_commit_callbacks)
        waits.append((source.failures, source.next_sync_at - source.synced_at))
    assert waits == [(n, timedelta(hours=min(2 ** (n - 1), 24))) for n in range(2, 7)]
    fake_site.html("/docs/", "Docs", "The handbook's index.")
    source = _sync_and_ingest(source, django_capture_on_commit_callbacks)
    assert (source.status, source.failures) == ("ok", 0)
    assert source.next_sync_at - source.synced_at == timedelta(hours=24)

    # Removing the source deletes its documents; an upload of the collection stays.
    from .helpers import upload

    mine, _ = upload(collection_a, "notes.txt", b"My own notes.", enqueue=False)
    with django_capture_on_commit_callbacks(execute=True):
        assert services.web_source_remove(source=source) == 1
    assert list(Document.objects.values_list("id", flat=True)) == [mine.id]


def test_pages_whose_links_are_not_needed_are_asked_for_conditionally(
    db, fake_site, collection_a, django_capture_on_commit_callbacks
):
    # A crawled site: the index's links lead on, so it is always fetched whole; its text files are
    # asked for with their ETag or Last-Modified, and one unchanged costs a 304 without a body.
    stamp = "Tue, 01 Sep 2026 10:00:00 GMT"
    fake_site.page(
        "/docs/", b'<title>Docs</title><a href="notes.txt">n</a> <a href="log.md">l</a>', ETag='"i1"'
    )
    fake_site.page("/docs/notes.txt", b"Notes about the boiler.", type="text/plain", ETag='"n1"')
    fake_site.page(
        "/docs/log.md", b"# Log\n\nThe valve was replaced.", type="text/markdown", **{"Last-Modified": stamp}
    )
    source = _sync_and_ingest(_source(collection_a, fake_site), django_capture_on_commit_callbacks)
    assert source.tally["new"] == 3
    origin = fake_site.origin
    assert source.page_validators == {
        f"{origin}/docs/notes.txt": {"etag": '"n1"'},
        f"{origin}/docs/log.md": {"modified": stamp},
    }
    before = {d.id for d in Document.objects.filter(source=source)}

    def asked() -> dict[str, tuple]:
        return {
            path.rsplit("/", 1)[-1] or "index": (h.get("if-none-match"), h.get("if-modified-since"))
            for path, h in zip(fake_site.requests, fake_site.headers, strict=True)
            if path != "/robots.txt"
        }

    fake_site.requests.clear(), fake_site.headers.clear()
    source = _sync_and_ingest(source, django_capture_on_commit_callbacks)
    assert asked() == {"index": (None, None), "notes.txt": ('"n1"', None), "log.md": (None, stamp)}
    assert source.tally == {"new": 0, "unchanged": 3, "skipped": 0, "deleted": 0}
    assert {d.id for d in Document.objects.filter(source=source)} == before and source.pages == 3

    # Changed (a new ETag): read whole and ingested anew, with its new validator kept.
    fake_site.page("/docs/notes.txt", b"Notes about the new boiler.", type="text/plain", ETag='"n2"')
    source = _sync_and_ingest(source, django_capture_on_commit_callbacks)
    assert source.tally["new"] == 1 and source.page_validators[f"{origin}/docs/notes.txt"] == {"etag": '"n2"'}
    # A page whose document was deleted by hand is read whole again, not taken as unchanged.
    services.document_delete(document=Document.objects.get(source=source, source_url=f"{origin}/docs/log.md"))
    fake_site.requests.clear(), fake_site.headers.clear()
    source = _sync_and_ingest(source, django_capture_on_commit_callbacks)
    assert asked()["log.md"] == (None, None) and source.tally["new"] == 1
    assert sorted(_pages(source)) == ["index", "log.md", "notes.txt"]

    # One page alone (its links not followed): an HTML page is asked for conditionally too.
    fake_site.page("/faq", b"<title>FAQ</title><p>Bleed the radiators each autumn.</p>", ETag='"f1"')
    faq = _sync_and_ingest(
        _source(collection_a, fake_site, url=f"{origin}/faq", crawl=False), django_capture_on_commit_callbacks
    )
    faq = _sync_and_ingest(faq, django_capture_on_commit_callbacks)
    assert fake_site.headers[-1].get("if-none-match") == '"f1"' and faq.tally["unchanged"] == 1


def test_a_page_that_fails_to_ingest_is_not_taken_again_until_it_changes(
    db, fake_site, collection_a, django_capture_on_commit_callbacks
):
    fake_site.page("/report.pdf", b"%PDF-1.4 this is no PDF at all", type="application/pdf")
    source = _source(collection_a, fake_site, url=f"{fake_site.origin}/report.pdf", crawl=False)
    _sync_and_ingest(source, django_capture_on_commit_callbacks)
    [failed] = Document.objects.filter(source=source)
    assert failed.status == "failed" and failed.error
    _sync_and_ingest(source, django_capture_on_commit_callbacks)
    assert list(Document.objects.filter(source=source)) == [failed]
    # Changed: the failed version goes at once, not when the new one is ready.
    fake_site.page("/report.pdf", b"%PDF-1.4 still no PDF", type="application/pdf")
    _sync_and_ingest(source, django_capture_on_commit_callbacks)
    assert [d.id for d in Document.objects.filter(source=source)] != [failed.id]
    assert Document.objects.filter(source=source).count() == 1


def test_a_page_with_the_content_of_another_document_is_skipped(
    db, fake_site, collection_a, django_capture_on_commit_callbacks
):
    fake_site.html("/a", "Same", "Same words.", links=("/b",))
    fake_site.page("/b", fake_site.pages["/a"][2], type="text/html")  # byte for byte the same as /a
    source = _source(collection_a, fake_site, url=f"{fake_site.origin}/a")
    source = _sync_and_ingest(source, django_capture_on_commit_callbacks)
    assert Document.objects.filter(source=source).count() == 1
    assert source.skipped == [
        {
            "url": f"{fake_site.origin}/b",
            "reason": f"the same content as {fake_site.origin}/a, already in the collection",
        }
    ]


def test_readings_are_queued_when_due_and_a_lost_one_is_taken_again(
    db, fake_site, collection_a, make_collection
):
    now = timezone.now()
    due = _source(collection_a, fake_site, url="http://example.org/due", status="ok", next_sync_at=now)
    _source(
        collection_a,
        fake_site,
        url="http://example.org/later",
        status="ok",
        next_sync_at=now + timedelta(hours=1),
    )
    _source(
        collection_a,
        fake_site,
        url="http://example.org/manual",
        status="ok",
        refresh_hours=0,
        next_sync_at=now,
    )
    _source(
        collection_a,
        fake_site,
        url="http://example.org/busy",
        status="syncing",
        started_at=now,
        next_sync_at=now,
    )
    lost = _source(
        collection_a,
        fake_site,
        url="http://example.org/lost",
        status="syncing",
        started_at=now - timedelta(hours=1),
    )
    never_sent = _source(
        collection_a,
        fake_site,
        url="http://example.org/unsent",
        status="queued",
        started_at=now - timedelta(hours=1),
    )
    _source(collection_a, fake_site, url="http://example.org/waiting", status="queued", started_at=now)
    assert sorted(services.web_sources_due()) == sorted([due.id, lost.id, never_sent.id])
    assert WebSource.objects.get(id=due.id).status == "queued"
    assert services.web_sources_due() == []  # queued once
    # A deleted collection's sources (purged with it later) are read no more.
    elsewhere = make_collection(collection_a.team, "gone")
    doomed = _source(elsewhere, fake_site, url="http://example.org/doomed", status="ok", next_sync_at=now)
    services.collection_delete(collection=elsewhere)
    assert services.web_sources_due() == []
    assert services.web_source_sync(source_id=doomed.id) is None
    # A reading under way is not started twice.
    assert services.web_source_sync(source_id=WebSource.objects.get(url__endswith="/busy").id) is None


def _sample(name: str, **labels) -> float:
    from prometheus_client import REGISTRY

    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_a_web_source_added_is_read_by_the_worker_slice_after_slice(
    worker, fake_site, alice, collection_a, settings
):
    settings.DOCENT_WEB_SLICE_S = 0  # a slice an address: three tasks, each queueing the next
    _site(fake_site)
    readings, pages = (
        _sample("docent_worker_web_readings_total", outcome="ok"),
        _sample("docent_worker_web_pages_total", outcome="new"),
    )
    source = services.web_source_add(
        collection=collection_a, url=f"{fake_site.origin}/docs/", user=alice, crawl=True
    )
    deadline = time.monotonic() + 60
    while WebSource.objects.get(id=source.id).status in ("queued", "syncing") and time.monotonic() < deadline:
        time.sleep(0.1)
    source.refresh_from_db()
    assert (source.status, source.pages) == ("ok", 3)
    documents = Document.objects.filter(source=source)
    assert sorted(wait_done(d.id).status for d in documents) == ["ready"] * 3
    assert {d.uploaded_by for d in documents} == {alice}
    assert sorted(fake_site.requests) == ["/docs/", "/docs/intro", "/docs/setup", "/robots.txt"]
    assert _sample("docent_worker_web_readings_total", outcome="ok") == readings + 1
    assert _sample("docent_worker_web_pages_total", outcome="new") == pages + 3


@pytest.mark.parametrize(
    "kwargs, error",
    [
        ({"url": "ftp://example.org/"}, "http:// or https://"),
        ({"url": "http://example.org/", "max_pages": 0}, "max_pages"),
        ({"url": "http://example.org/", "refresh_hours": -1}, "refresh_hours"),
    ],
)
def test_what_cannot_be_added(db, collection_a, kwargs, error):
    with pytest.raises((ValueError, web.Refused), match=error):
        services.web_source_add(collection=collection_a, **kwargs)


def _slices(callbacks):
    return [c for c in callbacks if c.__qualname__.startswith("web_source_sync.")]


def test_a_reading_goes_in_slices_and_one_lost_with_its_worker_goes_on_where_it_stood(
    db, fake_site, collection_a, settings, django_capture_on_commit_callbacks
):
    """With slices of no time at all, each slice reads one address and queues the next; a slice
    that never came (its worker died) is taken again by the schedule from the saved state, reading
    no page twice; a second reading asked for meanwhile does not start."""
    settings.DOCENT_WEB_SLICE_S = 0
    _site(fake_site)
    source = _source(collection_a, fake_site)
    with django_capture_on_commit_callbacks() as callbacks:
        source = services.web_source_sync(source_id=source.id)
    assert source.status == "syncing" and len(_slices(callbacks)) == 1  # the next slice, queued
    assert Document.objects.filter(source=source).count() == 1
    assert source.state["crawl"]["queue"] == [
        f"{fake_site.origin}/docs/intro",
        f"{fake_site.origin}/docs/setup",
    ]
    from retrieval.api import _web_source_out

    assert _web_source_out(source)["progress"] == {"read": 1, "waiting": 2}
    assert services.web_source_queue(source=source) is False  # one reading at a time
    assert services.web_source_sync(source_id=source.id) is None
    assert services.web_source_sync(source_id=source.id, reading="not-this-one") is None

    # The slice queued is lost; once the reading is old, the schedule takes it again.
    lost = source
    WebSource.objects.filter(id=source.id).update(started_at=timezone.now() - timedelta(hours=1))
    with django_capture_on_commit_callbacks() as callbacks:
        assert services.web_sources_due() == [source.id]
    assert [c.__qualname__ for c in callbacks] == ["web_source_queue.<locals>.<lambda>"]
    source = _sync_and_ingest(WebSource.objects.get(id=source.id), django_capture_on_commit_callbacks)
    assert (source.status, source.pages, source.state, source.reading) == ("ok", 3, {}, "")
    assert source.tally == {"new": 3, "unchanged": 0, "skipped": 0, "deleted": 0}
    assert sorted(fake_site.requests) == ["/docs/", "/docs/intro", "/docs/setup", "/robots.txt"]
    assert Document.objects.filter(source=source, status="ready").count() == 3
    # The lost reading, were it to end after all, writes nothing over the one that took its place.
    services._web_source_done(lost, status="failed", error="late")
    assert WebSource.objects.get(id=source.id).status == "ok"


def test_a_site_behind_a_sign_in_is_read_with_its_header_kept_sealed(
    client, db, fake_site, alice, collection_a, settings, django_capture_on_commit_callbacks
):
    from django.test import override_settings

    from retrieval import sealed

    fake_site.html("/wiki/", "Wiki", "The boiler is serviced each October.")
    fake_site.guard = ("Authorization", "Bearer s3cret")
    key = services.api_key_create(user=alice)[1]
    auth = {"HTTP_AUTHORIZATION": f"Bearer {key}"}
    added = client.post(
        f"/api/v1/collections/{collection_a.id}/web-sources",
        {"url": f"{fake_site.origin}/wiki/", "header_name": "Authorization", "header_value": "Bearer s3cret"},
        "application/json",
        **auth,
    )
    assert added.status_code == 201 and added.json()["header_name"] == "Authorization"
    assert "s3cret" not in added.content.decode()
    source = WebSource.objects.get()
    assert "s3cret" not in source.header_sealed and sealed.unseal(source.header_sealed) == "Bearer s3cret"
    source = _sync_and_ingest(source, django_capture_on_commit_callbacks)
    assert (source.status, source.pages) == ("ok", 1)
    assert "s3cret" not in str(source.state) + str(source.skipped) + str(list(WebSource.objects.values()))

    # Half a header is refused; a new value replaces the old; an empty name takes it away.
    url = f"/api/v1/web-sources/{source.id}"
    half = client.patch(url, {"header_name": "Authorization"}, "application/json", **auth)
    assert half.status_code == 400
    too_many = client.patch(url, {"max_pages": 10**6}, "application/json", **auth)
    assert too_many.status_code == 400 and "max_pages must be between" in too_many.json()["error"]["message"]
    changed = client.patch(
        url,
        {"header_name": "Authorization", "header_value": "Bearer n3w", "refresh_hours": 168},
        "application/json",
        **auth,
    )
    assert changed.status_code == 200 and changed.json()["refresh_hours"] == 168
    fake_site.guard = ("Authorization", "Bearer n3w")
    assert _sync_and_ingest(WebSource.objects.get(), django_capture_on_commit_callbacks).status == "ok"
    cleared = client.patch(url, {"header_name": "", "header_value": ""}, "application/json", **auth)
    assert cleared.json()["header_name"] is None
    source = _sync_and_ingest(WebSource.objects.get(), django_capture_on_commit_callbacks)
    assert (source.status, source.error) == ("failed", "the server answered 401")
    assert Document.objects.filter(source=source).count() == 1  # kept while the site refuses

    # Sealed under a key the server no longer has: the reading says so; the old key as a fallback
    # still opens it.
    client.patch(
        url, {"header_name": "Authorization", "header_value": "Bearer n3w"}, "application/json", **auth
    )
    old_key = settings.SECRET_KEY
    with override_settings(SECRET_KEY="another-secret-key-" + "x" * 40):
        source = _sync_and_ingest(WebSource.objects.get(), django_capture_on_commit_callbacks)
        assert source.status == "failed" and "can no longer be read" in source.error
        with override_settings(SECRET_KEY_FALLBACKS=[old_key]):
            assert (
                _sync_and_ingest(WebSource.objects.get(), django_capture_on_commit_callbacks).status == "ok"
            )

    from retrieval.models import AuditEvent

    updates = AuditEvent.objects.filter(action="web_source_update").order_by("id")
    assert [e.details["changed"] for e in updates] == [["refresh_hours", "header"], ["header"], ["header"]]
    assert AuditEvent.objects.get(action="web_source_add").details["header"] == "Authorization"
    assert "s3cret" not in str(list(AuditEvent.objects.values()))


def test_a_source_failing_three_times_in_a_row_is_told_by_email_once(
    db, fake_site, alice, bob, collection_a, settings, django_capture_on_commit_callbacks, mailoutbox
):
    settings.EMAIL_HOST = "smtp.example.org"
    for user, address in ((alice, "alice@example.org"), (bob, "bob@example.org")):
        user.email = address
        user.save()
    services.membership_set(team=collection_a.team, user=bob, role="admin")
    fake_site.page("/status", b"busy", status=503, type="text/plain")
    source = _source(collection_a, fake_site, url=f"{fake_site.origin}/status", crawl=False, added_by=alice)
    queued = []
    for _ in range(5):
        with django_capture_on_commit_callbacks() as callbacks:
            source = services.web_source_sync(source_id=source.id)
        queued.append(len(callbacks))
    assert queued == [0, 0, 1, 0, 0]  # the email's task, at the third failure only

    assert services.web_source_failing_notify(source_id=source.id) == 2
    [mail] = mailoutbox
    assert mail.subject == f"Docent cannot read {fake_site.origin}/status"
    assert mail.to == ["alice@example.org", "bob@example.org"]
    assert "the server answered 503" in mail.body and "handbook" in mail.body and "in a row" in mail.body

    # Read well again: nothing more to tell, and the count starts again.
    fake_site.page("/status", b"All systems go.", type="text/plain")
    source = services.web_source_sync(source_id=source.id)
    assert (source.status, source.failures) == ("ok", 0)
    assert services.web_source_failing_notify(source_id=source.id) == 0
    settings.EMAIL_HOST = ""
    fake_site.page("/status", b"busy", status=503, type="text/plain")
    for _ in range(3):
        with django_capture_on_commit_callbacks() as callbacks:
            source = services.web_source_sync(source_id=source.id)
        assert callbacks == []  # no mail server: nothing queued
