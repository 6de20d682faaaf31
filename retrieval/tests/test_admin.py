"""Django admin for teams, collections, documents, chunks and API keys, as a superuser sees it."""

import pytest
from django.utils import timezone

from retrieval import services
from retrieval.models import ApiKey, Chunk, Document, SsoIdentity, Team

from . import files
from .helpers import upload


@pytest.fixture
def admin_client(client, make_user):
    client.force_login(make_user("root", is_staff=True, is_superuser=True))
    return client


@pytest.fixture
def documents(collection_a):
    ready, _ = upload(collection_a, "leave.md", b"# Leave\n\nEmployees get 25 days of leave.", enqueue=False)
    failed, _ = upload(collection_a, "bad.pdf", files.pdf_circular_xref(), enqueue=False)
    services.documents_ingest(document_ids=[ready.id, failed.id])
    return Document.objects.get(id=ready.id), Document.objects.get(id=failed.id)


def test_every_page_opens(admin_client, alice, documents):
    """Each model's list and a change page of each answer 200, the chunks searchable by their text."""
    ready, failed = documents
    services.api_key_create(user=alice, name="ci")
    chunk = Chunk.objects.filter(document=ready).first()
    for model in ("team", "membership", "collection", "document", "chunk", "apikey"):
        assert admin_client.get(f"/admin/retrieval/{model}/").status_code == 200, model
    for path in (f"document/{failed.id}", f"chunk/{chunk.id}", f"apikey/{ApiKey.objects.get().id}"):
        assert admin_client.get(f"/admin/retrieval/{path}/change/").status_code == 200, path
    link = f"/admin/retrieval/chunk/{chunk.id}/change/".encode()
    assert link in admin_client.get("/admin/retrieval/chunk/", {"q": "25 days"}).content
    assert link not in admin_client.get("/admin/retrieval/chunk/", {"q": "zebra"}).content
    listed = admin_client.get("/admin/retrieval/document/", {"status__exact": "failed"}).content
    assert f"/document/{failed.id}/change/".encode() in listed
    assert f"/document/{ready.id}/change/".encode() not in listed
    assert b"damaged or malformed" in listed  # the reason, in the list


def test_the_admin_is_named_for_docent_and_names_api_keys_so(admin_client):
    index = admin_client.get("/admin/").content.decode()
    assert "Docent administration" in index and "Django administration" not in index
    assert ">API keys<" in index


def test_a_documents_page_links_its_file_and_only_staff_open_it(admin_client, client, make_user, documents):
    """The change page links the stored file (the storage's own URL is not served); the link hands
    the file back the safe way, and a signed-in user who is not staff is sent to the admin sign-in."""
    ready, failed = documents
    url = f"/admin/retrieval/document/{failed.id}/file/"
    assert url.encode() in admin_client.get(f"/admin/retrieval/document/{failed.id}/change/").content
    response = admin_client.get(url)
    assert response.status_code == 200 and response["Content-Type"] == "application/pdf"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert b"".join(response.streaming_content) == files.pdf_circular_xref()
    shown = admin_client.get(f"/admin/retrieval/document/{ready.id}/file/")
    assert shown["Content-Type"] == "text/plain; charset=utf-8"
    assert admin_client.get("/admin/retrieval/document/987654/file/").status_code == 404
    client.force_login(make_user("mallory"))
    assert client.get(url).status_code == 302


def test_document_actions(admin_client, documents, django_capture_on_commit_callbacks):
    """Retry failed queues only the failed one; re-ingest queues any; delete takes the chunks with it."""
    ready, failed = documents

    def act(action, *docs):
        with django_capture_on_commit_callbacks(execute=False) as queued:
            response = admin_client.post(
                "/admin/retrieval/document/",
                {"action": action, "_selected_action": [d.id for d in docs]},
            )
        assert response.status_code == 302
        return len(queued)

    assert act("retry_failed", ready, failed) == 1
    assert Document.objects.get(id=failed.id).status == "queued"
    assert Document.objects.get(id=ready.id).status == "ready"
    assert act("reingest", ready) == 1
    assert Document.objects.get(id=ready.id).status == "queued"
    act("delete_with_chunks", ready)
    assert not Document.objects.filter(id=ready.id).exists()
    assert not Chunk.objects.filter(document_id=ready.id).exists()


def test_chunks_and_keys_cannot_be_written(admin_client, alice, documents):
    """Chunks are read-only; an API key shows its hash, never a usable key, and none is added here."""
    chunk = Chunk.objects.first()
    response = admin_client.post(f"/admin/retrieval/chunk/{chunk.id}/change/", {"text": "changed"})
    assert response.status_code == 403
    assert Chunk.objects.get(id=chunk.id).text != "changed"
    assert admin_client.get("/admin/retrieval/chunk/add/").status_code == 403
    assert admin_client.get("/admin/retrieval/apikey/add/").status_code == 403
    key, raw = services.api_key_create(user=alice)
    page = admin_client.get(f"/admin/retrieval/apikey/{key.id}/change/").content.decode()
    assert key.hashed_key in page and raw not in page and raw[len(key.prefix) :] not in page


@pytest.mark.parametrize("model", ["collection", "team"])
def test_deleting_a_collection_or_team_in_admin_takes_its_files_and_passages(
    admin_client, documents, collection_a, settings, django_capture_on_commit_callbacks, model
):
    from pathlib import Path

    from retrieval.models import Collection

    stored = [Path(settings.MEDIA_ROOT) / d.file.name for d in documents]
    assert all(p.exists() for p in stored)
    selected = collection_a.id if model == "collection" else collection_a.team_id
    # The confirmation counts in SQL instead of listing every passage.
    passages = Chunk.objects.filter(collection_id=collection_a.id).count()
    confirm = admin_client.post(
        f"/admin/retrieval/{model}/", {"action": "delete_selected", "_selected_action": [selected]}
    )
    page = confirm.content.decode()
    assert confirm.status_code == 200 and passages > 0
    assert f"Documents: {len(documents)}" in page and f"Passages: {passages}" in page
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(
            f"/admin/retrieval/{model}/",
            {"action": "delete_selected", "_selected_action": [selected], "post": "yes"},
        )
    assert response.status_code == 302
    # Gone at once for everyone; the passages are purged by a task, and a team's row after them.
    assert Collection.objects.get(id=collection_a.id).deleted_at is not None
    assert all(p.exists() for p in stored)
    with django_capture_on_commit_callbacks(execute=True):
        services.collection_purge(collection_id=collection_a.id)
    assert not Collection.objects.filter(id=collection_a.id).exists()
    assert not Team.objects.filter(id=collection_a.team_id).exists() or model == "collection"
    assert not Chunk.objects.filter(collection_id=collection_a.id).exists()
    assert not any(p.exists() for p in stored)


def test_a_deleted_team_is_shown_until_purged_and_offered_for_nothing(
    admin_client, alice, collection_a, make_team
):
    team, live = collection_a.team, make_team("Live")
    services.team_delete(team=team)
    listed = admin_client.get("/admin/retrieval/team/").content.decode()
    assert team.name in listed
    # Read-only: no members can be added back while its collections are purged.
    page = admin_client.get(f"/admin/retrieval/team/{team.id}/change/").content.decode()
    assert 'name="_save"' not in page
    form = admin_client.get("/admin/retrieval/collection/add/").content.decode()
    choices = form.split('name="team"')[1].split("</select>")[0]
    assert f'value="{team.id}"' not in choices and f'value="{live.id}"' in choices
    refused = admin_client.post(
        "/admin/retrieval/membership/add/", {"user": alice.id, "team": team.id, "role": "member"}
    )
    assert refused.status_code == 200 and "Select a valid choice" in refused.content.decode()


def test_removing_a_member_in_admin_tells_their_open_pages(
    admin_client, alice, team_a, monkeypatch, django_capture_on_commit_callbacks
):
    """Deleting a membership, on its own page or from the team's inline, announces the removal."""
    from retrieval import progress
    from retrieval.models import Membership

    told = []
    monkeypatch.setattr(progress, "publish_member_removed", lambda **kw: told.append(kw))
    membership = Membership.objects.get(team=team_a, user=alice)
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(f"/admin/retrieval/membership/{membership.id}/delete/", {"post": "yes"})
    assert response.status_code == 302 and told == [{"team_id": team_a.id, "user_id": alice.id}]

    membership = Membership.objects.create(team=team_a, user=alice)
    told.clear()
    form = {
        "name": team_a.name,
        "memberships-TOTAL_FORMS": "1",
        "memberships-INITIAL_FORMS": "1",
        "memberships-0-id": str(membership.id),
        "memberships-0-team": str(team_a.id),
        "memberships-0-user": str(alice.id),
        "memberships-0-role": "member",
        "memberships-0-DELETE": "on",
    }
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(f"/admin/retrieval/team/{team_a.id}/change/", form)
    assert response.status_code == 302, response.content.decode()[:2000]
    assert told == [{"team_id": team_a.id, "user_id": alice.id}]
    assert not Membership.objects.filter(team=team_a, user=alice).exists()


def test_a_collections_language_changed_in_admin_rebuilds_its_index_or_is_refused(
    admin_client, collection_a, monkeypatch, django_capture_on_commit_callbacks
):
    from retrieval import tasks

    queued = []
    monkeypatch.setattr(tasks.rekey_collection, "delay", queued.append)
    url = f"/admin/retrieval/collection/{collection_a.id}/change/"
    form = {"team": collection_a.team_id, "name": collection_a.name, "description": "", "instructions": ""}
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(url, {**form, "language": "german"})
    assert response.status_code == 302
    collection_a.refresh_from_db()
    assert (collection_a.language, collection_a.indexed_language) == ("german", "english")
    assert queued == [collection_a.id]  # the rebuild's task
    # A configuration the database server lacks (an older PostgreSQL) is refused on the form.
    monkeypatch.setattr(services, "_server_has_language", lambda language: language != "french")
    response = admin_client.post(url, {**form, "language": "french"})
    assert response.status_code == 200
    assert "no text search configuration for french" in response.content.decode()
    collection_a.refresh_from_db()
    assert collection_a.language == "german"


def test_a_collection_is_shared_in_admin_with_live_teams_only(
    admin_client, alice, bob, collection_a, team_b, make_team, monkeypatch, django_capture_on_commit_callbacks
):
    """The collection form lists the teams it may be shared with (a deleted one is no choice), and a
    team chosen there reads the collection; the open pages of that team are told."""
    from retrieval import progress, selectors

    told = []
    monkeypatch.setattr(progress, "publish_readers_changed", lambda **kw: told.append(kw))

    gone = make_team("Gone")
    services.team_delete(team=gone)
    url = f"/admin/retrieval/collection/{collection_a.id}/change/"
    page = admin_client.get(url).content.decode()
    assert f'<option value="{team_b.id}">Team B</option>' in page and ">Gone<" not in page
    form = {"team": collection_a.team_id, "name": collection_a.name, "description": "", "instructions": ""}
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(url, {**form, "language": "english", "shared_with": [team_b.id]})
    assert response.status_code == 302, response.content.decode()[:2000]
    own = {collection_a.team_id}
    assert told == [
        {"collection_id": collection_a.id, "before": (own, False), "after": (own | {team_b.id}, False)}
    ]
    assert collection_a.id in selectors.collection_ids_for_user(user=bob)
    assert collection_a.team_id not in selectors.team_ids_for_user(user=bob)  # to read only


def test_a_collections_suggested_questions_in_admin_are_cleaned_as_in_the_library(admin_client, collection_a):
    url = f"/admin/retrieval/collection/{collection_a.id}/change/"
    form = {"team": collection_a.team_id, "name": collection_a.name, "language": "english"}
    response = admin_client.post(url, {**form, "starter_questions": '["Who?", " Who? ", "", "Why?"]'})
    assert response.status_code == 302
    collection_a.refresh_from_db()
    assert collection_a.starter_questions == ["Who?", "Why?"]
    for refused, reason in (('["1", "2", "3", "4", "5"]', "at most 4"), ('{"q": "Who?"}', "a list of text")):
        response = admin_client.post(url, {**form, "starter_questions": refused})
        assert response.status_code == 200 and reason in response.content.decode()
    collection_a.refresh_from_db()
    assert collection_a.starter_questions == ["Who?", "Why?"]


def test_a_user_added_in_admin_is_put_in_a_team_on_the_same_page(admin_client, collection_a, make_team):
    """The user's page lists their teams: an account made there reads its team's collections at
    once. A deleted team is no choice."""
    from django.contrib.auth import get_user_model
    from django.utils import timezone

    from retrieval import selectors

    gone = make_team("Gone")
    Team.objects.filter(id=gone.id).update(deleted_at=timezone.now())
    form = {
        "username": "newcomer",
        "usable_password": "true",
        "password1": "pw-newcomer-2026",
        "password2": "pw-newcomer-2026",
        "memberships-TOTAL_FORMS": "1",
        "memberships-INITIAL_FORMS": "0",
        "memberships-0-team": str(collection_a.team_id),
        "memberships-0-role": "member",
    }
    refused = admin_client.post("/admin/auth/user/add/", {**form, "memberships-0-team": str(gone.id)})
    assert refused.status_code == 200 and not get_user_model().objects.filter(username="newcomer").exists()
    response = admin_client.post("/admin/auth/user/add/", form)
    assert response.status_code == 302, response.content.decode()[:2000]
    newcomer = get_user_model().objects.get(username="newcomer")
    assert [c.id for c in selectors.collections_for_user(user=newcomer)] == [collection_a.id]
    assert b"Teams" in admin_client.get(f"/admin/auth/user/{newcomer.id}/change/").content


def test_an_admin_emails_links_to_set_a_password_to_the_users_it_can_reach(
    admin_client, make_user, settings, django_capture_on_commit_callbacks
):
    """The way to invite someone made with an address and no password, or to help one locked out."""
    carol = make_user("carol", email="carol@example.org")
    dave = make_user("dave")  # no address
    gone = make_user("erin", email="erin@example.org", is_active=False)

    def act():
        with django_capture_on_commit_callbacks(execute=False) as queued:
            response = admin_client.post(
                "/admin/auth/user/",
                {"action": "email_password_reset", "_selected_action": [carol.id, dave.id, gone.id]},
                follow=True,
            )
        return len(queued), [str(m) for m in response.context["messages"]]

    queued, said = act()
    assert queued == 0 and said == [
        "No mail server is configured (EMAIL_HOST): set the password on the user's page instead."
    ]
    settings.DOCENT_PASSWORD_RESET = True
    queued, said = act()
    assert queued == 1
    assert said == [
        "A link to set a new password is on its way to carol@example.org.",
        "No link for dave, erin: inactive, or no email address on their page.",
    ]


def test_single_sign_on_identities_are_read_and_unlinked_in_admin(admin_client, make_team, settings):
    """An identity is listed and shown on its user's page, never made or changed there; deleting it
    unlinks it. Memberships given by the provider's groups say so."""
    settings.DOCENT_OIDC_GROUPS_CLAIM = "groups"
    make_team("Research")
    claims = {"sub": "u-42", "preferred_username": "dana", "groups": ["research"]}
    user = services.sso_sign_in(issuer="https://login.example.com", claims=claims)
    identity = SsoIdentity.objects.get()
    listed = admin_client.get("/admin/retrieval/ssoidentity/", {"q": "dana"}).content.decode()
    assert "u-42" in listed and "https://login.example.com" in listed
    assert "u-42" in admin_client.get(f"/admin/auth/user/{user.id}/change/").content.decode()
    assert admin_client.get("/admin/retrieval/ssoidentity/add/").status_code == 403
    admin_client.post(f"/admin/retrieval/ssoidentity/{identity.id}/change/", {"subject": "someone-else"})
    assert SsoIdentity.objects.get().subject == "u-42"
    from_groups = admin_client.get("/admin/retrieval/membership/", {"from_sso__exact": "1"}).content.decode()
    assert "dana" in from_groups
    admin_client.post(f"/admin/retrieval/ssoidentity/{identity.id}/delete/", {"post": "yes"})
    assert not SsoIdentity.objects.exists()


def test_web_sources_are_added_read_again_and_removed_in_admin(
    admin_client, collection_a, django_capture_on_commit_callbacks
):
    from retrieval.models import WebSource

    form = {
        "collection": collection_a.id,
        "url": "https://me:pw@example.org/",
        "max_pages": 50,
        "refresh_hours": 24,
    }
    response = admin_client.post("/admin/retrieval/websource/add/", form)
    assert response.status_code == 200 and b"user name or password" in response.content
    form |= {"url": "https://Docs.Example.org/guide/", "crawl": "on"}
    with django_capture_on_commit_callbacks() as callbacks:
        assert admin_client.post("/admin/retrieval/websource/add/", form).status_code == 302
    source = WebSource.objects.get()
    assert (source.url, source.crawl, source.added_by.username, source.status) == (
        "https://docs.example.org/guide/",
        True,
        "root",
        "queued",
    )
    assert len(callbacks) == 1
    page, _ = upload(
        collection_a, "docs.example.org/guide/", b"<html><body>Guide</body></html>", enqueue=False
    )
    Document.objects.filter(id=page.id).update(source=source, source_url=source.url)
    assert admin_client.get("/admin/retrieval/websource/").status_code == 200
    assert admin_client.get(f"/admin/retrieval/websource/{source.id}/change/").status_code == 200
    assert admin_client.get(f"/admin/retrieval/document/{page.id}/change/").status_code == 200
    # A sign-in header: its name alone is refused, its value kept sealed and never shown; left
    # empty it stays, and clearing the name takes it away.
    from retrieval import sealed

    change = f"/admin/retrieval/websource/{source.id}/change/"
    form |= {"url": source.url, "header_name": "Authorization"}
    assert b"give the header" in admin_client.post(change, form).content
    assert admin_client.post(change, form | {"header_value": "Bearer s3cret"}).status_code == 302
    source.refresh_from_db()
    assert source.header_name == "Authorization" and sealed.unseal(source.header_sealed) == "Bearer s3cret"
    assert b"s3cret" not in admin_client.get(change).content
    assert admin_client.post(change, form).status_code == 302  # the value left empty: kept
    source.refresh_from_db()
    assert sealed.unseal(source.header_sealed) == "Bearer s3cret"
    assert admin_client.post(change, form | {"header_name": ""}).status_code == 302
    source.refresh_from_db()
    assert (source.header_name, source.header_sealed) == ("", "")
    # Read again now: queued, unless a reading is under way.
    WebSource.objects.filter(id=source.id).update(status="ok")
    with django_capture_on_commit_callbacks() as callbacks:
        response = admin_client.post(
            "/admin/retrieval/websource/",
            {"action": "read_now", "_selected_action": [source.id]},
            follow=True,
        )
    assert "queued 1 readings" in [str(m) for m in response.context["messages"]]
    assert WebSource.objects.get(id=source.id).status == "queued" and len(callbacks) == 1
    WebSource.objects.filter(id=source.id).update(status="syncing", started_at=timezone.now())
    response = admin_client.post(
        "/admin/retrieval/websource/", {"action": "read_now", "_selected_action": [source.id]}, follow=True
    )
    assert "queued 0 readings" in [str(m) for m in response.context["messages"]]
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(
            "/admin/retrieval/websource/",
            {"action": "remove_with_documents", "_selected_action": [source.id]},
            follow=True,
        )
    assert "removed 1 sources and 1 documents" in [str(m) for m in response.context["messages"]]
    assert not WebSource.objects.exists() and not Document.objects.exists()
