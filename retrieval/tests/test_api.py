import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.utils import timezone

from retrieval import services
from retrieval.models import Chunk, Collection, Document

from . import files
from .helpers import upload


@pytest.fixture
def key_for(db):
    def make(user):
        return {"HTTP_AUTHORIZATION": f"Bearer {services.api_key_create(user=user)[1]}"}

    return make


def test_unauthenticated_is_401(client):
    response = client.get("/api/v1/collections")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthenticated"


def test_bad_api_key_is_401(db, client):
    assert client.get("/api/v1/collections", HTTP_AUTHORIZATION="Bearer dk_nope").status_code == 401


def test_revoked_key_is_401(db, client, alice):
    from django.utils import timezone

    key, raw = services.api_key_create(user=alice)
    key.revoked_at = timezone.now()
    key.save()
    assert client.get("/api/v1/collections", HTTP_AUTHORIZATION=f"Bearer {raw}").status_code == 401


def test_collections_lists_only_readable(client, alice, collection_a, collection_b, key_for):
    response = client.get("/api/v1/collections", **key_for(alice))
    assert response.status_code == 200
    assert [c["id"] for c in response.json()] == [collection_a.id]


def test_create_collection_in_own_team_only(client, alice, team_a, team_b, key_for):
    ok = client.post(
        "/api/v1/collections",
        {"name": "new", "team": team_a.id},
        content_type="application/json",
        **key_for(alice),
    )
    assert ok.status_code == 201 and ok.json()["team"] == "Team A"
    by_name = client.post(
        "/api/v1/collections",
        {"name": "n2", "team": "Team A"},
        content_type="application/json",
        **key_for(alice),
    )
    assert by_name.status_code == 201
    again = client.post(
        "/api/v1/collections",
        {"name": "new", "team": team_a.id},
        content_type="application/json",
        **key_for(alice),
    )
    assert again.status_code == 409
    foreign = client.post(
        "/api/v1/collections",
        {"name": "x", "team": team_b.id},
        content_type="application/json",
        **key_for(alice),
    )
    assert foreign.status_code == 404
    for method, url in (("post", "/api/v1/collections"), ("patch", f"/api/v1/collections/{ok.json()['id']}")):
        long = getattr(client, method)(
            url, {"name": "n" * 121, "team": team_a.id}, content_type="application/json", **key_for(alice)
        )
        assert long.status_code == 400 and "at most 120 characters" in long.json()["error"]["message"]


def test_a_collections_language_is_set_at_creation_and_changed_by_its_teams_admins(
    client, alice, team_a, key_for, monkeypatch, django_capture_on_commit_callbacks
):
    from retrieval import tasks

    queued = []
    monkeypatch.setattr(tasks.rekey_collection, "delay", queued.append)
    auth = key_for(alice)
    made = client.post(
        "/api/v1/collections",
        {"name": "Handbuch", "team": team_a.id, "language": "german"},
        content_type="application/json",
        **auth,
    )
    assert made.status_code == 201
    assert (made.json()["language"], made.json()["indexed_language"]) == ("german", "german")
    unknown = client.post(
        "/api/v1/collections",
        {"name": "x", "team": team_a.id, "language": "klingon"},
        content_type="application/json",
        **auth,
    )
    assert unknown.status_code == 400 and "german" in unknown.json()["error"]["message"]
    team_a.memberships.filter(user=alice).update(role="admin")
    url = f"/api/v1/collections/{made.json()['id']}"
    with django_capture_on_commit_callbacks(execute=True):
        changed = client.patch(url, {"language": "french"}, content_type="application/json", **auth)
    assert changed.status_code == 200
    assert (changed.json()["language"], changed.json()["indexed_language"]) == ("french", "german")
    assert queued == [made.json()["id"]]  # the index is built again in French by a task
    bad = client.patch(url, {"language": "klingon"}, content_type="application/json", **auth)
    assert bad.status_code == 400


def test_upload_then_status(client, alice, collection_a, key_for, django_capture_on_commit_callbacks):
    file = SimpleUploadedFile("guide.md", b"# Guide\n\nHello there.", content_type="text/markdown")
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = client.post(
            f"/api/v1/collections/{collection_a.id}/documents", {"file": file}, **key_for(alice)
        )
    assert response.status_code == 202
    body = response.json()
    assert body["status"] == "queued" and len(callbacks) == 2  # the news, then the task, after commit
    document = client.get(f"/api/v1/documents/{body['id']}", **key_for(alice)).json()
    assert {k: document[k] for k in ("id", "title", "status", "progress", "error", "chunks")} == {
        "id": body["id"],
        "title": "guide",
        "status": "queued",
        "progress": 0.0,
        "error": None,
        "chunks": 0,
    }
    assert document["uploaded_by"] == "alice"
    stored = Document.objects.get(id=body["id"])
    assert stored.original_name == "guide.md" and "guide" not in stored.file.name  # generated storage name


def test_upload_with_replace_names_the_versions_it_replaces(client, alice, collection_a, key_for):
    url = f"/api/v1/collections/{collection_a.id}/documents"
    first = client.post(
        url, {"file": SimpleUploadedFile("faq.md", b"# FAQ\n\nOne.")}, **key_for(alice)
    ).json()
    assert first["replaces"] == []
    plain = client.post(
        url, {"file": SimpleUploadedFile("faq.md", b"# FAQ\n\nTwo.")}, **key_for(alice)
    ).json()
    assert plain["replaces"] == [] and not Document.objects.get(id=plain["id"]).replace_older
    response = client.post(
        url, {"file": SimpleUploadedFile("faq.md", b"# FAQ\n\nThree."), "replace": "true"}, **key_for(alice)
    )
    assert response.status_code == 202
    body = response.json()
    assert sorted(body["replaces"]) == sorted([first["id"], plain["id"]])
    assert Document.objects.get(id=body["id"]).replace_older
    # A file of a folder names its path, which multipart file names lose: another faq.md, not a version.
    nested = client.post(
        url,
        {"file": SimpleUploadedFile("faq.md", b"# FAQ\n\nHR."), "replace": "true", "path": "hr/faq.md"},
        **key_for(alice),
    ).json()
    assert nested["replaces"] == [] and Document.objects.get(id=nested["id"]).original_name == "hr/faq.md"
    opened = client.get(f"/api/v1/documents/{nested['id']}/file", **key_for(alice))
    assert 'filename="faq.md"' in opened["Content-Disposition"]


def test_documents_are_listed_newest_first_found_by_name_or_status_and_paged(
    client, alice, collection_a, key_for
):
    for i in range(5):
        upload(collection_a, f"minutes-{i}.md", f"# Minutes {i}\n\nNothing decided.".encode(), enqueue=False)
    upload(collection_a, "Budget 2027.md", b"# Budget\n\nNumbers.", enqueue=False)
    Document.objects.filter(original_name="minutes-3.md").update(status="failed", error="broken")
    url = f"/api/v1/collections/{collection_a.id}/documents"

    def listed(**params):
        response = client.get(url, params, **key_for(alice))
        assert response.status_code == 200
        return [d["original_name"] for d in response.json()], int(response["X-Total-Count"])

    assert listed() == (["Budget 2027.md", *(f"minutes-{i}.md" for i in (4, 3, 2, 1, 0))], 6)
    assert listed(q="BUDGET") == (["Budget 2027.md"], 1)
    assert listed(q="minutes", limit=2, offset=1) == (["minutes-3.md", "minutes-2.md"], 5)
    assert listed(status="failed") == (["minutes-3.md"], 1)
    assert client.get(url, {"status": "lost"}, **key_for(alice)).status_code == 400
    assert client.get(url, {"limit": 0}, **key_for(alice)).status_code == 400
    past_bigint = client.get(url, {"offset": 2**63}, **key_for(alice))
    assert past_bigint.status_code == 400 and "offset" in past_bigint.json()["error"]["message"]


def test_team_admins_rename_and_delete_collections(
    client,
    alice,
    bob,
    make_user,
    collection_a,
    collection_b,
    key_for,
    settings,
    django_capture_on_commit_callbacks,
):
    """Renaming and deleting are for the team's admins (403 for its members, 404 for other teams);
    a deleted collection takes its documents, passages, term statistics and files with it."""
    from pathlib import Path

    from django.db import connection

    from retrieval.models import Membership

    carol = make_user("carol")
    services.membership_set(team=collection_a.team, user=carol, role=Membership.Role.ADMIN)
    document, _ = upload(
        collection_a, "leave.md", b"# Leave\n\nStaff get twenty days of leave.", enqueue=False
    )
    services.documents_ingest(document_ids=[document.id])
    stored = Path(settings.MEDIA_ROOT) / document.file.name
    url = f"/api/v1/collections/{collection_a.id}"

    assert client.get(url, **key_for(alice)).json()["documents"] == 1
    member = client.patch(url, {"name": "x"}, content_type="application/json", **key_for(alice))
    assert member.status_code == 403 and member.json()["error"]["code"] == "forbidden"
    assert client.delete(url, **key_for(alice)).status_code == 403
    assert client.delete(url, **key_for(bob)).status_code == 404
    assert client.delete(f"/api/v1/collections/{collection_b.id}", **key_for(carol)).status_code == 404
    renamed = client.patch(url, {"name": "people"}, content_type="application/json", **key_for(carol))
    assert renamed.status_code == 200 and renamed.json()["name"] == "people"
    services.collection_create(team=collection_a.team, name="policies")
    clash = client.patch(url, {"name": "policies"}, content_type="application/json", **key_for(carol))
    assert clash.status_code == 409

    assert stored.exists()
    with django_capture_on_commit_callbacks(execute=False) as queued:
        response = client.delete(url, **key_for(carol))
    assert response.status_code == 204 and len(queued) == 2  # library pages told, the purge queued
    # Gone for everyone at once, while the purge has yet to run; its name is free.
    assert client.get(url, **key_for(carol)).status_code == 404
    assert client.get(f"/api/v1/documents/{document.id}", **key_for(carol)).status_code == 404
    assert collection_a.id not in [
        c["id"] for c in client.get("/api/v1/collections", **key_for(carol)).json()
    ]
    found = client.post(
        "/api/v1/search", {"query": "leave"}, content_type="application/json", **key_for(carol)
    ).json()["results"]
    assert found == []
    again = client.post(
        "/api/v1/collections", {"name": "people", "team": collection_a.team_id},
        content_type="application/json", **key_for(carol),
    )  # fmt: skip
    assert again.status_code == 201 and again.json()["id"] != collection_a.id
    with django_capture_on_commit_callbacks(execute=True):
        assert services.collection_purge(collection_id=collection_a.id) == 1
    assert not stored.exists()
    assert not Document.objects.filter(id=document.id).exists()
    assert not Chunk.objects.filter(collection_id=collection_a.id).exists()
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM retrieval_term WHERE collection_id = %s", [collection_a.id])
        assert cursor.fetchone()[0] == 0
        cursor.execute("SELECT count(*) FROM retrieval_posting WHERE collection_id = %s", [collection_a.id])
        assert cursor.fetchone()[0] == 0
    assert not Collection.objects.filter(id=collection_a.id).exists()
    assert client.get(f"/api/v1/documents/{document.id}", **key_for(alice)).status_code == 404


def test_unsupported_type_is_415(client, alice, collection_a, key_for):
    gif = SimpleUploadedFile("photo.gif", b"GIF89a\x01\x00\x01\x00", content_type="image/gif")
    response = client.post(
        f"/api/v1/collections/{collection_a.id}/documents", {"file": gif}, **key_for(alice)
    )
    assert response.status_code == 415 and response.json()["error"]["code"] == "unsupported_type"
    liar = SimpleUploadedFile("report.pdf", b"plain text", content_type="application/pdf")
    response = client.post(
        f"/api/v1/collections/{collection_a.id}/documents", {"file": liar}, **key_for(alice)
    )
    assert response.status_code == 415 and "does not match" in response.json()["error"]["message"]
    assert not Document.objects.exists()


def test_too_large_is_413(client, alice, collection_a, key_for, settings):
    settings.DOCENT_MAX_UPLOAD_BYTES = 1000
    small_enough_body = SimpleUploadedFile("a.txt", b"x" * 5000)
    response = client.post(
        f"/api/v1/collections/{collection_a.id}/documents", {"file": small_enough_body}, **key_for(alice)
    )
    assert response.status_code == 413 and response.json()["error"]["code"] == "too_large"
    assert not Document.objects.exists()
    # A body over the limit is refused before it is read, in front of Django: tests/test_middleware.py.


def test_delete_removes_document_and_chunks(client, alice, collection_a, key_for):
    document, _ = upload(collection_a, "n.txt", b"Some words to index.", enqueue=False)
    services.documents_ingest(document_ids=[document.id])
    assert Chunk.objects.filter(document_id=document.id).exists()
    assert client.delete(f"/api/v1/documents/{document.id}", **key_for(alice)).status_code == 204
    assert not Chunk.objects.filter(document_id=document.id).exists()
    assert client.get(f"/api/v1/documents/{document.id}", **key_for(alice)).status_code == 404


def test_several_documents_are_deleted_at_once_all_or_none(
    client, alice, bob, team_a, collection_a, collection_b, key_for
):
    """POST /api/v1/documents/delete: every document named, with its passages, or none when one is
    another team's (404) or of a collection shared to read (403)."""
    from retrieval.models import AuditEvent

    mine = [
        upload(collection_a, f"n{i}.txt", f"Note {i} on travel.".encode(), enqueue=False)[0] for i in range(3)
    ]
    services.documents_ingest(document_ids=[d.id for d in mine])
    theirs, _ = upload(collection_b, "b.txt", b"team b only", enqueue=False)
    auth, url = key_for(alice), "/api/v1/documents/delete"

    def delete(ids, who=auth):
        return client.post(url, {"ids": ids}, "application/json", **who)

    refused = delete([mine[0].id, theirs.id])
    assert refused.status_code == 404 and str(theirs.id) in refused.json()["error"]["message"]
    collection_b.shared_with.add(team_a)
    assert delete([mine[0].id, theirs.id]).status_code == 403
    assert delete([]).status_code in (400, 422)
    assert Document.objects.count() == 4  # nothing deleted yet

    done = delete([mine[0].id, mine[1].id, mine[0].id])
    assert done.status_code == 200 and done.json() == {"deleted": [mine[0].id, mine[1].id]}
    assert set(Document.objects.values_list("id", flat=True)) == {mine[2].id, theirs.id}
    assert set(Chunk.objects.values_list("document_id", flat=True)) == {mine[2].id}
    deleted = AuditEvent.objects.filter(action="document_delete").values_list("target", flat=True)
    assert sorted(deleted) == ["n0.txt", "n1.txt"]
    assert delete([theirs.id], who=key_for(bob)).status_code == 200


def test_renaming_a_document_changes_what_it_is_called_not_its_file(
    client, alice, collection_a, key_for, django_capture_on_commit_callbacks
):
    """A member renames a document: the title the library, search and citations show changes (white
    space tidied), its file keeps its original name, the audit log records who and what it was, and
    the library pages are told. A blank or too long title is refused and changes nothing."""
    from retrieval.models import AuditEvent

    document, _ = upload(collection_a, "q3-final-v2.md", b"# Plan\n\nShip the travel desk.", enqueue=False)
    services.documents_ingest(document_ids=[document.id])
    auth, url = key_for(alice), f"/api/v1/documents/{document.id}"
    for title, message in [(" \n ", "a document needs a title"), ("x" * 301, "")]:
        response = client.patch(url, {"title": title}, "application/json", **auth)
        assert response.status_code == 400 and message in response.json()["error"]["message"]
    with django_capture_on_commit_callbacks(execute=False) as told:
        response = client.patch(url, {"title": "  Q3 plan\n(final) "}, "application/json", **auth)
    assert response.status_code == 200
    assert response.json()["title"] == "Q3 plan (final)"
    assert response.json()["original_name"] == "q3-final-v2.md"
    assert len(told) == 1  # the open library pages
    assert client.get(url, **auth).json()["title"] == "Q3 plan (final)"
    found = client.post("/api/v1/search", {"query": "travel desk"}, "application/json", **auth).json()
    assert [r["title"] for r in found["results"]] == ["Q3 plan (final)"]
    assert "q3-final-v2.md" in client.get(f"{url}/file", **auth)["Content-Disposition"]
    event = AuditEvent.objects.get(action="document_rename")
    assert (event.actor, event.target, event.team_id) == (alice, "Q3 plan (final)", collection_a.team_id)
    assert event.details == {"from": "q3-final-v2", "collection": collection_a.name}
    # The same title again changes nothing and records nothing.
    assert client.patch(url, {"title": "Q3 plan (final)"}, "application/json", **auth).status_code == 200
    assert AuditEvent.objects.filter(action="document_rename").count() == 1


def test_a_worker_finishing_a_renamed_document_keeps_its_new_title(collection_a):
    """A rename while the document is being read: the worker, holding the title it loaded, writes
    only its own fields."""
    document, _ = upload(collection_a, "notes.md", b"# Notes\n\nSome words.", enqueue=False)
    loaded = Document.objects.get(id=document.id)  # as the worker holds it
    services.document_rename(document=document, title="Meeting notes")
    services.document_fail(document=loaded, reason="could not read it")
    assert Document.objects.values_list("title", "status").get(id=document.id) == ("Meeting notes", "failed")


def test_the_original_file_is_shown_as_text_or_downloaded_never_rendered(
    client, alice, collection_a, key_for
):
    """Markdown, CSV, code and text come back as plain text, PNG, JPEG and WebP images as images; HTML, Office
    files, emails, EPUBs and TIFF scans as downloads under their original name; none can run script in
    the app's origin. PDF is left to the browser's viewer (below)."""
    auth = key_for(alice)
    page = b"<html><body><script>alert(1)</script><p>Quarterly plan</p></body></html>"
    cases = [
        ("notes.md", b"# Notes\n\nShip on Friday.\n", "text/plain; charset=utf-8", "inline"),
        ("caps.csv", b"city,cap\nLondon,220\n", "text/plain; charset=utf-8", "inline"),
        # Code and markup read as code are text too, never a page: an SVG-like XML file included.
        (
            "icon.xml",
            b"<svg xmlns='http://www.w3.org/2000/svg'><script>alert(1)</script></svg>",
            "text/plain; charset=utf-8",
            "inline",
        ),
        ("plan.html", page, "application/octet-stream", "attachment"),
        (
            "deck.pptx",
            files.pptx_bytes([("Plan", ["Ship on Friday."], "")]),
            "application/vnd.openxmlformats-officedocument.presentationml.presentation",
            "attachment",
        ),
        (
            "note.eml",
            files.eml_bytes("Note", html="<p>Hi</p><script>x()</script>"),
            "message/rfc822",
            "attachment",
        ),
        ("book.epub", files.epub_bytes("Book", [("One", ["Text."])]), "application/epub+zip", "attachment"),
        (
            "memo.odt",
            files.odt_bytes("<text:p>Hi</text:p>"),
            "application/vnd.oasis.opendocument.text",
            "attachment",
        ),
        ("notice.png", files.photo_bytes([("Lift out of order.", 30)]), "image/png", "inline"),
        ("notice.jpg", files.photo_bytes([("Lift fixed.", 30)], fmt="JPEG"), "image/jpeg", "inline"),
        (
            "fax.tif",
            files.photo_bytes([("Lease.", 30)], fmt="TIFF"),
            "application/octet-stream",
            "attachment",
        ),
    ]
    for name, data, content_type, disposition in cases:
        document, _ = upload(collection_a, name, data, enqueue=False)
        response = client.get(f"/api/v1/documents/{document.id}/file", **auth)
        assert response.status_code == 200, name
        assert b"".join(response.streaming_content) == data
        assert response["Content-Type"] == content_type
        assert (
            response["Content-Disposition"].startswith(disposition)
            and name in response["Content-Disposition"]
        )
        assert response["Content-Security-Policy"] == "default-src 'none'; sandbox"
        assert response["X-Content-Type-Options"] == "nosniff"


def test_a_pdf_is_shown_in_the_browser_as_a_pdf(client, alice, collection_a, key_for):
    """Inline, typed PDF and never sniffed, so the browser's PDF viewer draws it (and a citation's
    #page=N lands on the page); no CSP, which would blank Chromium's viewer."""
    data = files.pdf_bytes(["Revenue grew."])
    document, _ = upload(collection_a, "reports/q3 report.pdf", data, enqueue=False)
    response = client.get(f"/api/v1/documents/{document.id}/file", **key_for(alice))
    assert response.status_code == 200 and b"".join(response.streaming_content) == data
    assert response["Content-Type"] == "application/pdf"
    assert response["Content-Disposition"] == 'inline; filename="q3 report.pdf"'
    assert response["X-Content-Type-Options"] == "nosniff"
    assert "Content-Security-Policy" not in response


def test_other_teams_objects_are_404_on_every_route(client, alice, bob, collection_b, key_for):
    """Another team's collection and documents answer 404 (never 403) everywhere."""
    document, _ = upload(collection_b, "secret.txt", b"team b only", enqueue=False)
    auth = key_for(alice)
    routes = [
        ("get", f"/api/v1/documents/{document.id}"),
        ("delete", f"/api/v1/documents/{document.id}"),
        ("patch", f"/api/v1/documents/{document.id}"),
        ("post", f"/api/v1/documents/{document.id}/retry"),
        ("get", f"/api/v1/documents/{document.id}/file"),
        ("get", f"/api/v1/documents/{document.id}/chunks"),
        ("get", f"/api/v1/collections/{collection_b.id}/documents"),
        ("post", f"/api/v1/collections/{collection_b.id}/retry"),
        ("get", f"/api/v1/collections/{collection_b.id}"),
        ("patch", f"/api/v1/collections/{collection_b.id}"),
        ("delete", f"/api/v1/collections/{collection_b.id}"),
    ]
    for method, url in routes:
        mine = {"name": "mine now", "title": "mine now"}
        body = {"data": mine, "content_type": "application/json"} if method == "patch" else {}
        response = getattr(client, method)(url, **body, **auth)
        assert response.status_code == 404, (method, url)
        assert response.json()["error"]["code"] == "not_found"
    file = SimpleUploadedFile("x.txt", b"intrusion")
    response = client.post(f"/api/v1/collections/{collection_b.id}/documents", {"file": file}, **auth)
    assert response.status_code == 404
    assert Document.objects.filter(id=document.id).exists()
    assert Document.objects.count() == 1 and Document.objects.get().title == "secret"
    # The owner still sees it.
    assert client.get(f"/api/v1/documents/{document.id}", **key_for(bob)).status_code == 200


def test_documents_are_found_by_name_across_every_readable_collection(
    client, alice, collection_a, collection_b, make_collection, team_a, key_for
):
    """The chat's "#": every collection the caller reads, names beginning with the words first,
    never another team's."""
    manuals = make_collection(team_a, "manuals")
    older, _ = upload(collection_a, "boiler manual.txt", b"Bleed it yearly.", enqueue=False)
    newer, _ = upload(manuals, "the boiler.txt", b"It is in the cellar.", enqueue=False)
    upload(collection_a, "leave.txt", b"25 days.", enqueue=False)
    upload(collection_b, "boiler secrets.txt", b"team b only", enqueue=False)
    auth = key_for(alice)
    found = client.get("/api/v1/documents?q=BOILER", **auth)
    assert found.status_code == 200 and found["X-Total-Count"] == "2"
    # "boiler manual" begins with the words, so it comes first though older.
    assert [(d["id"], d["collection_id"]) for d in found.json()] == [
        (older.id, collection_a.id),
        (newer.id, manuals.id),
    ]
    assert len(client.get("/api/v1/documents", **auth).json()) == 3  # newest first, every collection
    assert client.get("/api/v1/documents?q=boiler&limit=1&offset=1", **auth).json()[0]["id"] == newer.id
    assert client.get("/api/v1/documents?q=boiler&status=ready", **auth).json() == []
    assert client.get("/api/v1/documents?limit=101", **auth).status_code == 400


def test_a_collection_shared_with_another_team_is_read_there_and_changed_only_by_its_own(
    client, alice, bob, make_user, make_team, team_a, collection_b, key_for
):
    """Team B's admin shares its collection with team A: A's members list it, read and search its
    documents, and get 403 for every change; a third team still gets 404; unsharing closes it again."""
    document, _ = upload(
        collection_b, "policy.txt", b"Travel is booked through the travel desk.", enqueue=False
    )
    services.documents_ingest(document_ids=[document.id])
    carol = make_user("carol")
    make_team("Team C", members=[carol])
    team_b = collection_b.team
    services.membership_set(team=team_b, user=bob, role="admin")
    alice_auth, bob_auth, carol_auth = key_for(alice), key_for(bob), key_for(carol)
    url = f"/api/v1/collections/{collection_b.id}"

    # Only the owner team's admins share it; an unknown team is refused in words.
    assert (
        client.patch(url, {"shared_with": [team_a.id]}, "application/json", **alice_auth).status_code == 404
    )
    response = client.patch(
        url, {"name": "renamed", "shared_with": ["Team Z"]}, "application/json", **bob_auth
    )
    assert response.status_code == 400 and "Team Z" in response.json()["error"]["message"]
    assert Collection.objects.get(id=collection_b.id).name == "secrets"  # none of the change is kept
    response = client.patch(url, {"shared_with": ["Team A", team_b.id]}, "application/json", **bob_auth)
    assert response.status_code == 200
    assert response.json()["shared_with"] == [{"id": team_a.id, "name": "Team A"}]  # its own team dropped
    assert response.json()["writable"] is True

    listed = {c["id"]: c for c in client.get("/api/v1/collections", **alice_auth).json()}
    assert listed[collection_b.id]["writable"] is False
    assert listed[collection_b.id]["shared_with"] == []  # who else reads it is the owner's business
    for path in (url, f"{url}/documents", f"/api/v1/documents/{document.id}", f"/api/v1/documents/{document.id}/chunks", f"/api/v1/documents/{document.id}/file"):  # fmt: skip
        assert client.get(path, **alice_auth).status_code == 200, path
    search = client.post("/api/v1/search", {"query": "travel desk"}, "application/json", **alice_auth).json()
    assert [r["document_id"] for r in search["results"]] == [document.id]
    changes = [
        ("delete", f"/api/v1/documents/{document.id}", {}),
        (
            "patch",
            f"/api/v1/documents/{document.id}",
            {"data": {"title": "ours"}, "content_type": "application/json"},
        ),  # fmt: skip
        ("post", f"/api/v1/documents/{document.id}/retry", {}),
        ("post", f"{url}/retry", {}),
        ("patch", url, {"data": {"name": "ours"}, "content_type": "application/json"}),
        ("delete", url, {}),
    ]
    for method, path, body in changes:
        assert getattr(client, method)(path, **body, **alice_auth).status_code == 403, (method, path)
    file = SimpleUploadedFile("x.txt", b"an addition")
    response = client.post(f"{url}/documents", {"file": file}, **alice_auth)
    assert response.status_code == 403 and "Team B" in response.json()["error"]["message"]
    assert list(Document.objects.values_list("id", flat=True)) == [document.id]

    # A team it is not shared with sees nothing of it.
    assert client.get(url, **carol_auth).status_code == 404
    search = client.post("/api/v1/search", {"query": "travel desk"}, "application/json", **carol_auth).json()
    assert search["results"] == []

    # Shared with every team: carol's too (and teams made later), but not a user in no team.
    dave_auth = key_for(make_user("dave"))
    response = client.patch(url, {"shared_with_all": True}, "application/json", **bob_auth)
    assert response.json()["shared_with_all"] is True
    assert client.get(url, **carol_auth).json()["writable"] is False
    search = client.post("/api/v1/search", {"query": "travel desk"}, "application/json", **carol_auth).json()
    assert [r["document_id"] for r in search["results"]] == [document.id]
    assert client.get(url, **dave_auth).status_code == 404
    search = client.post("/api/v1/search", {"query": "travel desk"}, "application/json", **dave_auth).json()
    assert search["results"] == []
    body = {"shared_with": [], "shared_with_all": False}
    assert client.patch(url, body, "application/json", **bob_auth).json()["shared_with"] == []
    assert client.get(url, **carol_auth).status_code == 404
    assert client.get(f"/api/v1/documents/{document.id}", **alice_auth).status_code == 404
    search = client.post("/api/v1/search", {"query": "travel desk"}, "application/json", **alice_auth).json()
    assert search["results"] == []


def test_unsafe_request_without_session_is_401_not_csrf(db, collection_a):
    # A script POSTing with a wrong key (or none) is unauthenticated; CSRF only guards sessions.
    client = Client(enforce_csrf_checks=True)
    for headers in ({}, {"HTTP_AUTHORIZATION": "Bearer dk_nope"}):
        response = client.post("/api/v1/search", {"query": "x"}, content_type="application/json", **headers)
        assert response.status_code == 401, headers
        assert response.json()["error"]["code"] == "unauthenticated"
        file = SimpleUploadedFile("a.txt", b"hello")
        response = client.post(f"/api/v1/collections/{collection_a.id}/documents", {"file": file}, **headers)
        assert response.status_code == 401, headers


def test_session_auth_needs_csrf(db, alice, collection_a):
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    assert client.get("/api/v1/collections").status_code == 200
    file = SimpleUploadedFile("a.txt", b"hello")
    response = client.post(f"/api/v1/collections/{collection_a.id}/documents", {"file": file})
    assert response.status_code == 403
    assert "CSRF" in response.json()["error"]["message"]
    client.get("/library/")  # sets the CSRF cookie
    token = client.cookies["csrftoken"].value
    file = SimpleUploadedFile("a.txt", b"hello")
    response = client.post(
        f"/api/v1/collections/{collection_a.id}/documents", {"file": file}, HTTP_X_CSRFTOKEN=token
    )
    assert response.status_code == 202


def test_openapi_document(client, db):
    response = client.get("/api/v1/openapi.json")
    assert response.status_code == 200
    paths = response.json()["paths"]
    assert "/api/v1/collections/{collection_id}/documents" in paths
    assert "/api/v1/documents/{document_id}" in paths
    upload = paths["/api/v1/collections/{collection_id}/documents"]["post"]["responses"]
    assert {"202", "413", "415", "429"} <= set(upload)
    assert "429" in paths["/api/v1/search"]["post"]["responses"]


def test_retry_failed_document(client, alice, collection_a, key_for, django_capture_on_commit_callbacks):
    document, _ = upload(collection_a, "bad.pdf", files.pdf_circular_xref(), enqueue=False)
    services.documents_ingest(document_ids=[document.id])
    assert Document.objects.get(id=document.id).status == "failed"
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = client.post(f"/api/v1/documents/{document.id}/retry", **key_for(alice))
    assert response.status_code == 202 and response.json()["status"] == "queued" and len(callbacks) == 1


def test_search_api(client, alice, collection_a, collection_b, key_for):
    document, _ = upload(collection_a, "faq.txt", b"The office opens at nine on weekdays.", enqueue=False)
    services.documents_ingest(document_ids=[document.id])
    other, _ = upload(collection_b, "secret.txt", b"The office opens at seven for team B.", enqueue=False)
    services.documents_ingest(document_ids=[other.id])
    response = client.post(
        "/api/v1/search",
        {"query": "when does the office open"},
        content_type="application/json",
        **key_for(alice),
    )
    assert response.status_code == 200
    body = response.json()
    assert [r["document_id"] for r in body["results"]] == [document.id]
    assert set(body["results"][0]) >= {"chunk_id", "document_id", "collection_id", "title", "text", "score"}
    assert body["results"][0]["language"] == "english"
    assert "offic" in body["terms"]
    foreign = client.post(
        "/api/v1/search",
        {"query": "office", "collections": [collection_b.id]},
        content_type="application/json",
        **key_for(alice),
    )
    assert foreign.status_code == 404
    hours, _ = upload(collection_a, "hours.txt", b"The office opens at ten on Saturdays.", enqueue=False)
    services.documents_ingest(document_ids=[hours.id])
    narrowed = client.post(
        "/api/v1/search",
        {"query": "when does the office open", "documents": [hours.id]},
        content_type="application/json",
        **key_for(alice),
    )
    assert [r["document_id"] for r in narrowed.json()["results"]] == [hours.id]
    # Empty lists narrow nothing, as in the chat: Alice's two documents, not Bob's.
    unnarrowed = client.post(
        "/api/v1/search",
        {"query": "when does the office open", "collections": [], "documents": []},
        content_type="application/json",
        **key_for(alice),
    )
    assert {r["document_id"] for r in unnarrowed.json()["results"]} == {document.id, hours.id}
    foreign_document = client.post(
        "/api/v1/search",
        {"query": "office", "documents": [hours.id, other.id]},
        content_type="application/json",
        **key_for(alice),
    )
    assert foreign_document.status_code == 404
    bad = client.post(
        "/api/v1/search",
        {"query": "office", "mode": "psychic"},
        content_type="application/json",
        **key_for(alice),
    )
    assert bad.status_code == 400


@pytest.fixture
def tight_limits(rate_limits):
    rate_limits(upload="2/d", search="2/d")


def test_upload_flood_is_429_with_retry_after(client, alice, bob, collection_a, key_for, tight_limits):
    """Past the rate, an upload is refused before it is stored, and says when to come back."""
    auth = key_for(alice)

    def send(n):
        file = SimpleUploadedFile(f"note{n}.txt", f"note number {n}".encode(), content_type="text/plain")
        return client.post(f"/api/v1/collections/{collection_a.id}/documents", {"file": file}, **auth)

    assert [send(n).status_code for n in range(2)] == [202, 202]
    refused = send(2)
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "rate_limited"
    assert 1 <= int(refused["Retry-After"]) <= 86400
    assert Document.objects.filter(collection=collection_a).count() == 2


def test_search_flood_is_429(client, alice, bob, collection_a, key_for, tight_limits):
    """Searches are counted per user: Alice's flood leaves Bob's searches alone."""

    def search(user):
        return client.post(
            "/api/v1/search", {"query": "office"}, content_type="application/json", **key_for(user)
        ).status_code

    assert [search(alice) for _ in range(3)] == [200, 200, 429]
    assert search(bob) == 200


def _upload_refused_by_the_database(client, collection, auth: dict, errcode: str, message: str):
    """An upload whose document row the database refuses with this SQLSTATE (a trigger raising it)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE FUNCTION test_refuse() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
            f" RAISE EXCEPTION USING ERRCODE = '{errcode}', MESSAGE = '{message}'; END $$;"
            " CREATE TRIGGER test_refuse BEFORE INSERT ON retrieval_document FOR EACH ROW EXECUTE FUNCTION test_refuse();"
        )
    file = SimpleUploadedFile("guide.md", b"# Guide\n\nHello there.", content_type="text/markdown")
    return client.post(f"/api/v1/collections/{collection.id}/documents", {"file": file}, **auth)


def test_a_database_refusing_writes_is_a_json_503(client, alice, collection_a, key_for):
    """An upload the database cannot store (restarting, failing over) is a JSON 503 with Retry-After,
    never Django's HTML error page."""
    response = _upload_refused_by_the_database(
        client, collection_a, key_for(alice), "57P03", "the database system is starting up"
    )
    assert response.status_code == 503 and response["Retry-After"] == "5"
    assert response.json() == {
        "error": {"code": "unavailable", "message": "the database is not answering; please try again"}
    }


def test_a_value_the_database_refuses_is_a_400(client, alice, collection_a, key_for):
    """A value out of the database's range is the request's doing: 400, not the 503 a client would
    send again to no end."""
    response = _upload_refused_by_the_database(client, collection_a, key_for(alice), "22003", "out of range")
    assert response.status_code == 400 and "Retry-After" not in response
    assert response.json() == {
        "error": {"code": "invalid", "message": "the request holds a value that cannot be stored"}
    }


GUIDE = b"# Guide\n\n## Install\n\nRun pip install.\n\n## Run\n\nStart it with make run.\n\n## Stop\n\nPress Ctrl-C.\n"


def test_a_documents_passages_in_reading_order_for_those_who_may_read_it(
    client, alice, bob, collection_a, key_for
):
    document, _ = upload(collection_a, "guide.md", GUIDE, enqueue=False)
    services.documents_ingest(document_ids=[document.id])
    url = f"/api/v1/documents/{document.id}/chunks"
    response = client.get(url, **key_for(alice))
    assert response.status_code == 200
    passages = response.json()
    assert [(c["ordinal"], c["heading_path"]) for c in passages] == [
        (0, "Guide > Install"),
        (1, "Guide > Run"),
        (2, "Guide > Stop"),
    ]
    assert passages[1]["text"] == "Start it with make run." and passages[1]["token_count"] > 0
    assert "embedding" not in passages[0]
    page = client.get(f"{url}?limit=1&offset=2", **key_for(alice))
    assert page["X-Total-Count"] == "3" and [c["ordinal"] for c in page.json()] == [2]
    assert client.get(url, **key_for(bob)).status_code == 404


def test_a_collections_failed_documents_are_queued_again_at_once(
    client, alice, collection_a, collection_b, key_for
):
    """After an outage outlasted the retries, say: every failed document of the collection, listed
    or not, with fresh attempts; another team's collection is a 404 and keeps its own."""
    failed = [upload(collection_a, f"f{i}.txt", f"failed {i}".encode(), enqueue=False)[0] for i in range(2)]
    ready, _ = upload(collection_a, "ok.txt", b"fine", enqueue=False)
    theirs, _ = upload(collection_b, "x.txt", b"theirs", enqueue=False)
    Document.objects.filter(id__in=[d.id for d in failed] + [theirs.id]).update(
        status="failed", error="the embedding provider answered 503", attempts=3
    )
    Document.objects.filter(id=ready.id).update(status="ready")
    response = client.post(f"/api/v1/collections/{collection_a.id}/retry", **key_for(alice))
    assert response.status_code == 202 and response.json() == {"queued": 2}
    assert sorted(
        Document.objects.filter(collection=collection_a).values_list("status", "error", "attempts")
    ) == [
        ("queued", "", 0),
        ("queued", "", 0),
        ("ready", "", 0),
    ]
    assert client.post(f"/api/v1/collections/{collection_b.id}/retry", **key_for(alice)).status_code == 404
    assert Document.objects.get(id=theirs.id).status == "failed"
    assert client.post(f"/api/v1/collections/{collection_a.id}/retry", **key_for(alice)).json() == {
        "queued": 0
    }


def test_team_admins_add_and_remove_members_and_keep_one_admin(
    client, alice, bob, team_a, collection_a, key_for, make_user
):
    """A team's admin adds a user by name (who then reads its collections), changes roles and
    removes members; members may list but not change; the last admin cannot leave the team without
    one; another team answers 404."""
    from retrieval.models import Membership

    carol = make_user("carol")
    admin, member = key_for(alice), key_for(carol)
    members = lambda auth: client.get(f"/api/v1/teams/{team_a.id}/members", **auth)  # noqa: E731
    put = lambda auth, name, role="member": client.put(  # noqa: E731
        f"/api/v1/teams/{team_a.id}/members/{name}", {"role": role}, content_type="application/json", **auth
    )
    delete = lambda auth, name: client.delete(f"/api/v1/teams/{team_a.id}/members/{name}", **auth)  # noqa: E731

    assert put(admin, "carol").status_code == 403  # alice is a plain member of Team A so far
    Membership.objects.filter(team=team_a, user=alice).update(role="admin")
    assert client.get(f"/api/v1/collections/{collection_a.id}", **member).status_code == 404
    response = put(admin, "carol")
    assert response.status_code == 200 and response.json() == {
        "user_id": carol.id,
        "username": "carol",
        "role": "member",
        "from_sso": False,
    }
    assert client.get(f"/api/v1/collections/{collection_a.id}", **member).status_code == 200
    assert [(m["username"], m["role"]) for m in members(member).json()] == [
        ("alice", "admin"),
        ("carol", "member"),
    ]
    assert put(member, "bob").status_code == 403 and delete(member, "alice").status_code == 403
    assert put(admin, "nobody").status_code == 404
    assert put(admin, "carol", role="owner").status_code == 400

    # The last admin can neither step down nor leave; with a second admin, either can.
    assert put(admin, "alice", role="member").status_code == 409
    assert delete(admin, "alice").status_code == 409
    assert put(admin, "carol", role="admin").json()["role"] == "admin"
    assert put(admin, "alice", role="member").status_code == 200
    assert delete(member, "alice").status_code == 204
    assert client.get(f"/api/v1/collections/{collection_a.id}", **admin).status_code == 404
    assert client.get(f"/api/v1/teams/{team_a.id}/members", **admin).status_code == 404
    assert delete(member, "bob").status_code == 404  # not a member of Team A
    # Another team's members are not listed, nor changed.
    assert client.get(f"/api/v1/teams/{team_a.id}/members", **key_for(bob)).status_code == 404


def test_a_collections_suggested_questions_are_set_by_its_teams_admins(
    client, alice, make_user, collection_a, key_for
):
    """Each once, on one line, blank ones dropped; at most 4 of at most 200 characters (400 past
    that, the questions before kept); members read them, only admins set them."""
    from retrieval.models import Membership

    carol = make_user("carol")
    services.membership_set(team=collection_a.team, user=carol, role=Membership.Role.ADMIN)
    url = f"/api/v1/collections/{collection_a.id}"

    def patch(user, questions):
        return client.patch(
            url, {"starter_questions": questions}, content_type="application/json", **key_for(user)
        )

    assert client.get(url, **key_for(alice)).json()["starter_questions"] == []
    saved = patch(carol, ["Who approves leave?", "", "  How much\nleave is there? ", "Who approves leave?"])
    assert saved.status_code == 200
    assert saved.json()["starter_questions"] == ["Who approves leave?", "How much leave is there?"]
    assert [c["starter_questions"] for c in client.get("/api/v1/collections", **key_for(alice)).json()] == [
        ["Who approves leave?", "How much leave is there?"]
    ]
    assert patch(alice, ["Mine?"]).status_code == 403
    too_many = patch(carol, [f"Question {i}?" for i in range(5)])
    too_long = patch(carol, ["Why" * 100 + "?"])
    assert too_many.status_code == too_long.status_code == 400
    assert "at most 4 questions" in too_many.json()["error"]["message"]
    assert "200 characters" in too_long.json()["error"]["message"]
    assert patch(carol, "Who?").status_code == 400
    assert client.get(url, **key_for(alice)).json()["starter_questions"] == [
        "Who approves leave?",
        "How much leave is there?",
    ]
    assert patch(carol, []).json()["starter_questions"] == []


def test_web_sources_are_added_listed_read_again_and_removed(
    client, alice, collection_a, key_for, django_capture_on_commit_callbacks, settings
):
    from retrieval.models import WebSource

    auth = key_for(alice)
    url = f"/api/v1/collections/{collection_a.id}/web-sources"
    with django_capture_on_commit_callbacks() as callbacks:
        response = client.post(
            url,
            {"url": "https://docs.example.org/guide/#top", "crawl": True, "max_pages": 20},
            "application/json",
            **auth,
        )
    assert response.status_code == 201
    body = response.json()
    assert body | {"id": 0, "created_at": ""} == {
        "id": 0,
        "collection_id": collection_a.id,
        "url": "https://docs.example.org/guide/",
        "crawl": True,
        "max_pages": 20,
        "refresh_hours": 24,
        "status": "queued",
        "error": None,
        "pages": 0,
        "documents": 0,
        "skipped": [],
        "created_at": "",
        "synced_at": None,
        "next_sync_at": None,
        "failures": 0,
        "header_name": None,
        "progress": None,
    }
    assert len(callbacks) == 1  # the reading, queued once the source is committed

    # Added again (as the chat's composer attaches a page): the source as it stands, no new reading.
    with django_capture_on_commit_callbacks() as callbacks:
        again = client.post(url, {"url": "https://docs.example.org/guide/"}, "application/json", **auth)
    assert again.status_code == 200 and again.json()["id"] == body["id"] and callbacks == []
    settings.DOCENT_WEB_MAX_SOURCES = 1
    full = client.post(url, {"url": "https://docs.example.org/other/"}, "application/json", **auth)
    assert full.status_code == 409 and "its most" in full.json()["error"]["message"]
    settings.DOCENT_WEB_PRIVATE_HOSTS = []
    for private in (
        "http://127.0.0.1:8000/admin/",
        "http://[::1]/",
        "http://localhost/",
        "http://169.254.169.254/",
    ):
        response = client.post(url, {"url": private}, "application/json", **auth)
        assert response.status_code == 400 and "private address" in response.json()["error"]["message"]
    for bad, said in (
        ({"url": "file:///etc/passwd"}, "http:// or https://"),
        (
            {"url": "http://x.org/", "max_pages": settings.DOCENT_WEB_MAX_PAGES + 1},
            "max_pages must be between",
        ),
    ):
        response = client.post(url, bad, "application/json", **auth)
        assert response.status_code == 400 and said in response.json()["error"]["message"], bad
    assert [s["url"] for s in client.get(url, **auth).json()] == ["https://docs.example.org/guide/"]

    source = WebSource.objects.get()
    WebSource.objects.filter(id=source.id).update(status="ok")
    with django_capture_on_commit_callbacks() as callbacks:
        response = client.post(f"/api/v1/web-sources/{source.id}/sync", **auth)
    assert response.status_code == 202 and response.json()["status"] == "queued" and len(callbacks) == 1
    # One reading at a time: asking while one is under way queues none.
    WebSource.objects.filter(id=source.id).update(status="syncing", started_at=timezone.now())
    with django_capture_on_commit_callbacks() as callbacks:
        assert client.post(f"/api/v1/web-sources/{source.id}/sync", **auth).json()["status"] == "syncing"
    assert callbacks == []

    page, _ = upload(
        collection_a, "docs.example.org/guide/", b"<html><body>Guide</body></html>", enqueue=False
    )
    Document.objects.filter(id=page.id).update(source=source, source_url="https://docs.example.org/guide/")
    other, _ = upload(collection_a, "notes.txt", b"Not from the web.", enqueue=False)
    found = client.get(f"{url.replace('web-sources', 'documents')}?source={source.id}", **auth)
    assert [d["id"] for d in found.json()] == [page.id] and found["X-Total-Count"] == "1"
    listed = client.get(f"/api/v1/documents/{page.id}", **auth).json()
    assert (listed["url"], listed["source_id"]) == ("https://docs.example.org/guide/", source.id)
    assert client.get(url, **auth).json()[0]["documents"] == 1
    assert client.delete(f"/api/v1/web-sources/{source.id}", **auth).status_code == 204
    assert not WebSource.objects.exists() and list(Document.objects.values_list("id", flat=True)) == [
        other.id
    ]


def test_another_teams_web_sources_are_404_and_a_shared_collections_are_read_only(
    client, alice, bob, team_a, collection_b, key_for
):
    from retrieval.models import WebSource

    source = WebSource.objects.create(collection=collection_b, url="https://example.org/")
    auth = key_for(alice)
    routes = [
        ("get", f"/api/v1/collections/{collection_b.id}/web-sources"),
        ("post", f"/api/v1/collections/{collection_b.id}/web-sources"),
        ("post", f"/api/v1/web-sources/{source.id}/sync"),
        ("delete", f"/api/v1/web-sources/{source.id}"),
    ]
    body = {"data": {"url": "https://example.com/"}, "content_type": "application/json"}
    for method, path in routes:
        assert getattr(client, method)(path, **body, **auth).status_code == 404, (method, path)
    collection_b.shared_with.add(team_a)
    assert client.get(routes[0][1], **auth).status_code == 200
    for method, path in routes[1:]:
        assert getattr(client, method)(path, **body, **auth).status_code == 403, (method, path)
    assert WebSource.objects.filter(id=source.id, status="queued").count() == 1
    assert [s["url"] for s in client.get(routes[0][1], **key_for(bob)).json()] == ["https://example.org/"]
