"""The browser pages of retrieval: API keys, made and revoked by their owner."""

import re

from retrieval.models import ApiKey


def test_a_user_makes_a_key_sees_it_once_uses_it_and_revokes_it(client, alice, make_user):
    client.force_login(alice)
    page = client.get("/keys/")
    assert page.status_code == 200 and b"No keys yet." in page.content
    made = client.post("/keys/", {"name": "laptop script"})
    assert made["Cache-Control"] == "no-store"
    raw = re.search(r'<code id="new-key">(dk_[\w-]+)</code>', made.content.decode()).group(1)
    key = ApiKey.objects.get(user=alice)
    assert key.name == "laptop script" and raw.startswith(key.prefix) and raw not in key.hashed_key
    again = client.get("/keys/").content.decode()
    assert raw not in again and f"{key.prefix}…" in again  # shown once, then only its start
    bearer = {"HTTP_AUTHORIZATION": f"Bearer {raw}"}
    anonymous = client.__class__()
    assert anonymous.get("/v1/models", **bearer).status_code == 200
    assert client.post(f"/keys/{key.id}/revoke/").status_code == 302
    assert anonymous.get("/v1/models", **bearer).status_code == 401
    assert "revoked" in client.get("/keys/").content.decode()


def test_keys_are_ones_own_and_a_name_is_needed(client, alice, bob):
    client.force_login(alice)
    assert "Give the key a name" in client.post("/keys/", {"name": "  "}).content.decode()
    assert not ApiKey.objects.exists()
    client.post("/keys/", {"name": "alice's"})
    theirs = ApiKey.objects.get()
    client.force_login(bob)
    assert "alice&#x27;s" not in client.get("/keys/").content.decode()
    assert client.post(f"/keys/{theirs.id}/revoke/").status_code == 404
    assert ApiKey.objects.get().revoked_at is None
    assert client.get(f"/keys/{theirs.id}/revoke/").status_code == 405
    client.logout()
    assert client.get("/keys/").status_code == 302  # to sign-in


def test_a_documents_passages_page_is_for_those_who_may_read_it(client, alice, bob, collection_a):
    from retrieval import services, views

    from .helpers import upload

    body = "# Guide\n\n" + "".join(f"## Step {i}\n\nDo thing {i}.\n\n" for i in range(60))
    document, _ = upload(collection_a, "guide.md", body.encode(), user=alice, enqueue=False)
    services.documents_ingest(document_ids=[document.id])
    url = f"/library/documents/{document.id}/"
    assert client.get(url).status_code == 302  # to sign-in
    client.force_login(alice)
    first = client.get(url).content.decode()
    day = document.created_at.strftime("%-d %b %Y")
    assert f"Markdown · 1.5\xa0KB · uploaded by alice on {day} · ready · 60 passages" in first
    assert "guide" in first and "#1 · Guide &gt; Step 0" in first and "Do thing 0." in first
    assert f"1–{views.PASSAGES_PER_PAGE} of 60" in first and "Do thing 59." not in first
    assert "Do thing 59." in client.get(f"{url}?page=2").content.decode()
    # A cited passage (the chat's source panel links it) opens on its page, anchored.
    cited = document.chunks.get(ordinal=55)
    assert client.get(f"{url}?chunk={cited.id}")["Location"] == f"{url}?page=2#passage-56"
    assert client.get(f"{url}?chunk=999999").status_code == 200  # gone since: the first page
    client.force_login(bob)
    assert client.get(url).status_code == 404


def test_the_library_offers_to_retry_a_collections_failed_documents_only_when_it_has_some(
    client, alice, collection_a
):
    from retrieval.models import Document

    from .helpers import upload

    document, _ = upload(collection_a, "a.txt", b"words", enqueue=False)
    client.force_login(alice)
    button = re.compile(r'<button[^>]*data-action="retry-failed"[^>]*>')
    assert " hidden" in button.search(client.get("/library/").content.decode()).group(0)
    Document.objects.filter(id=document.id).update(status="failed")
    assert " hidden" not in button.search(client.get("/library/").content.decode()).group(0)


def test_the_library_lists_each_collections_newest_in_queries_that_do_not_grow_with_collections(
    client, alice, collection_a, make_collection, django_assert_max_num_queries
):
    from retrieval import views

    from .helpers import upload

    names = [f"note-{i:02}.txt" for i in range(views.LIBRARY_ROWS + 2)]
    for name in names:
        upload(collection_a, name, f"{name} body".encode(), enqueue=False)
    client.force_login(alice)
    with django_assert_max_num_queries(12) as one:
        page = client.get("/library/").content.decode()
    shown = re.findall(r"note-\d\d", page)
    # The newest LIBRARY_ROWS, newest first; the two oldest are found through the search box.
    assert sorted(set(shown), reverse=True) == [n[:-4] for n in names[::-1][: views.LIBRARY_ROWS]]
    for i in range(5):
        other = make_collection(collection_a.team, f"more-{i}")
        upload(other, f"more-{i}.txt", b"body", enqueue=False)
    with django_assert_max_num_queries(len(one.captured_queries)):
        page = client.get("/library/").content.decode()
    assert all(f"more-{i}" in page for i in range(5))


def test_one_collections_section_is_served_to_those_who_read_it(client, alice, bob, collection_a, team_b):
    """The section a library page adds when a collection is newly shared with the user's team: as the
    page lists it (read-only for a reader), and 404 for anyone who does not read it."""
    from retrieval import services

    from .helpers import upload

    upload(collection_a, "runbook.md", b"# Runbook\n\nSteps.", enqueue=False)
    url = f"/library/collections/{collection_a.id}/"
    client.force_login(bob)
    assert client.get(url).status_code == 404
    services.collection_share(collection=collection_a, teams=[team_b.id])
    section = client.get(url).content.decode()
    assert section.strip().startswith("<section") and 'data-readonly="1"' in section
    assert "runbook" in section and "shared by" in section and 'data-action="delete"' not in section
    client.force_login(alice)
    own = client.get(url).content.decode()
    assert "data-readonly" not in own and 'data-action="delete"' in own
    services.collection_delete(collection=collection_a)
    assert client.get(url).status_code == 404
