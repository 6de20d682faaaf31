"""The audit log: what changes who reads what, and sign-ins, each recorded with who, when, from where
and in which request; a team's admins read their team's; an action rolled back leaves nothing."""

from datetime import timedelta

import pytest
from django.utils import timezone

from retrieval import audit, services
from retrieval.models import AuditEvent, Document

from .helpers import upload


@pytest.fixture
def key_for(db):
    def make(user):
        return {"HTTP_AUTHORIZATION": f"Bearer {services.api_key_create(user=user)[1]}"}

    return make


def _events(**filters) -> list[tuple]:
    return [
        (e.actor_name, e.action, e.target, e.team.name if e.team else None, e.details)
        for e in AuditEvent.objects.filter(**filters).select_related("team").order_by("id")
    ]


def test_a_teams_changes_are_recorded_and_read_by_its_admins(
    client, alice, bob, make_user, make_team, collection_b, key_for, fake_site
):
    ops = make_team("Ops", members=[alice], role="admin")
    carol = make_user("carol")
    auth = key_for(alice)
    AuditEvent.objects.all().delete()  # the keys made above

    def api(method, path, body=None, who=auth):
        return getattr(client, method)(f"/api/v1{path}", body, content_type="application/json", **who)

    assert api("put", f"/teams/{ops.id}/members/bob", {"role": "member"}).status_code == 200
    assert api("put", f"/teams/{ops.id}/members/bob", {"role": "admin"}).status_code == 200
    assert api("put", f"/teams/{ops.id}/members/bob", {"role": "admin"}).status_code == 200  # no change
    assert api("delete", f"/teams/{ops.id}/members/bob").status_code == 204
    made = api("post", "/collections", {"name": "runbooks", "team": ops.id}).json()
    assert api("patch", f"/collections/{made['id']}", {"name": "Runbooks"}).status_code == 200
    other = collection_b.team
    assert api("patch", f"/collections/{made['id']}", {"shared_with": [other.id]}).status_code == 200
    from retrieval.models import Collection

    document, _ = upload(Collection.objects.get(id=made["id"]), "boiler.txt", b"Bleed it.", enqueue=False)
    assert api("delete", f"/documents/{document.id}").status_code == 204
    source = api("post", f"/collections/{made['id']}/web-sources", {"url": f"{fake_site.origin}/faq"})
    assert api("delete", f"/web-sources/{source.json()['id']}").status_code == 204
    assert api("delete", f"/collections/{made['id']}").status_code == 204

    assert _events() == [
        ("alice", "member_add", "bob", "Ops", {"role": "member", "was": None}),
        ("alice", "member_role", "bob", "Ops", {"role": "admin", "was": "member"}),
        ("alice", "member_remove", "bob", "Ops", {"was": "admin"}),
        ("alice", "collection_create", "Ops/runbooks", "Ops", {}),
        ("alice", "collection_update", "Ops/Runbooks", "Ops", {"changed": ["name"], "was": "runbooks"}),
        (
            "alice",
            "collection_share",
            "Ops/Runbooks",
            "Ops",
            {"teams": ["Team B"], "was": [], "everyone": False, "everyone_was": False},
        ),
        ("alice", "document_delete", "boiler.txt", "Ops", {"collection": "Runbooks"}),
        (
            "alice",
            "web_source_add",
            f"{fake_site.origin}/faq",
            "Ops",
            {"collection": "Runbooks", "crawl": False, "max_pages": 50},
        ),
        (
            "alice",
            "web_source_remove",
            f"{fake_site.origin}/faq",
            "Ops",
            {"collection": "Runbooks", "documents": 0},
        ),
        ("alice", "collection_delete", "Ops/Runbooks", "Ops", {}),
    ]
    # Where and in which request each happened: the address and the X-Request-ID answered.
    first = AuditEvent.objects.order_by("id").first()
    assert first.ip == "127.0.0.1" and len(first.request_id) == 32 and first.actor_id == alice.id
    assert len({e.request_id for e in AuditEvent.objects.all()}) == 10  # one request each

    # The team's admins read its activity, newest first, narrowed by kind; members may not; others
    # do not see the team at all.
    listed = api("get", f"/teams/{ops.id}/audit?limit=2")
    assert listed.status_code == 200 and listed["X-Total-Count"] == "10"
    assert set(listed.json()[0]) == {
        "at",
        "actor",
        "action",
        "what",
        "target_type",
        "target_id",
        "target",
        "details",
    }
    assert [(e["actor"], e["action"], e["what"], e["target"]) for e in listed.json()] == [
        ("alice", "collection_delete", "deleted the collection", "Ops/Runbooks"),
        ("alice", "web_source_remove", "removed a web source", f"{fake_site.origin}/faq"),
    ]
    members = api("get", f"/teams/{ops.id}/audit?action=member_role").json()
    assert [e["details"] for e in members] == [{"role": "admin", "was": "member"}]
    # A proxy's X-Request-ID is the one recorded.
    added = api(
        "put",
        f"/teams/{ops.id}/members/carol",
        {"role": "member"},
        who=auth | {"HTTP_X_REQUEST_ID": "req-42"},
    )
    assert added.status_code == 200
    assert AuditEvent.objects.get(request_id="req-42").action == "member_add"
    assert api("get", f"/teams/{ops.id}/audit", who=key_for(carol)).status_code == 403
    assert api("get", f"/teams/{ops.id}/audit", who=key_for(bob)).status_code == 404


def test_uploads_and_retries_people_ask_for_are_recorded_not_the_systems(
    client, alice, collection_a, key_for
):
    """An upload and a retry through the API (or the library, which uses it) are recorded with the
    file's name; a duplicate upload, a retry with nothing failed, a script's upload and the stuck
    documents' sweep are not."""
    from django.core.files.uploadedfile import SimpleUploadedFile

    auth = key_for(alice)
    AuditEvent.objects.all().delete()
    url = f"/api/v1/collections/{collection_a.id}"
    for _ in range(2):  # the second is the same bytes: a duplicate, not another document
        file = SimpleUploadedFile("runbook.md", b"# Boiler\n\nBleed it.")
        response = client.post(f"{url}/documents", {"file": file, "path": "ops/runbook.md"}, **auth)
    document = Document.objects.get(id=response.json()["id"])
    services.document_fail(document=document, reason="the embedder was away")
    assert client.post(f"/api/v1/documents/{document.id}/retry", **auth).status_code == 202
    services.document_fail(document=document, reason="the embedder was away")
    assert client.post(f"{url}/retry", **auth).json() == {"queued": 1}
    assert client.post(f"{url}/retry", **auth).json() == {"queued": 0}
    services.document_requeue(document=document)  # the sweep's
    upload(collection_a, "script.txt", b"From a script.", enqueue=False)
    assert _events() == [
        (
            "alice",
            "document_upload",
            "ops/runbook.md",
            "Team A",
            {"collection": collection_a.name, "size": 19, "kind": "markdown", "replace": False},
        ),
        (
            "alice",
            "document_retry",
            "ops/runbook.md",
            "Team A",
            {"collection": collection_a.name, "status": "failed"},
        ),  # fmt: skip
        ("alice", "collection_retry", str(collection_a), "Team A", {"queued": 1}),
    ]


def test_an_action_that_fails_records_nothing(alice, team_a):
    services.membership_set(team=team_a, user=alice, role="admin")
    with pytest.raises(services.LastTeamAdmin):
        services.membership_change(team=team_a, user=alice, role="member", actor=alice)
    assert not AuditEvent.objects.exists()


def test_sign_ins_sign_outs_and_password_changes_are_recorded(client, make_user):
    make_user("dora", password="pw-dora-12345")
    client.post("/accounts/login/", {"username": "dora", "password": "wrong"})
    client.post("/accounts/login/", {"username": "dora", "password": "pw-dora-12345"})
    changed = client.post(
        "/accounts/password/",
        {"old_password": "pw-dora-12345", "new_password1": "a-new-pw-4567", "new_password2": "a-new-pw-4567"},
    )
    assert changed.status_code == 302
    client.post("/accounts/logout/")
    assert [(e[0], e[1], e[2], e[4]) for e in _events()] == [
        ("", "sign_in_failed", "dora", {"username": "dora", "via": "password"}),
        ("dora", "sign_in", "dora", {"via": "password"}),
        ("dora", "password_change", "dora", {"via": "account"}),
        ("dora", "sign_out", "dora", {}),
    ]
    assert "wrong" not in str(list(AuditEvent.objects.values()))  # no password kept


def test_api_keys_made_and_revoked_on_their_page_are_recorded(client, alice):
    client.force_login(alice)
    client.post("/keys/", {"name": "laptop"})
    from retrieval.models import ApiKey

    key = ApiKey.objects.get(user=alice)
    client.post(f"/keys/{key.id}/revoke/")
    client.post(f"/keys/{key.id}/revoke/")  # revoked already: nothing more
    assert [(e[0], e[1], e[2]) for e in _events(action__startswith="api_key")] == [
        ("alice", "api_key_create", f"laptop ({key.prefix}…)"),
        ("alice", "api_key_revoke", f"laptop ({key.prefix}…)"),
    ]


def test_old_events_are_purged_after_the_retention(settings, alice):
    old = audit.record("sign_in", actor=alice, target=alice)
    new = audit.record("sign_out", actor=alice, target=alice)
    AuditEvent.objects.filter(id=old.id).update(at=timezone.now() - timedelta(days=366))
    settings.DOCENT_AUDIT_RETENTION_DAYS = 0
    assert audit.purge_old() == 0
    settings.DOCENT_AUDIT_RETENTION_DAYS = 365
    assert audit.purge_old() == 1
    assert list(AuditEvent.objects.values_list("id", flat=True)) == [new.id]
    with pytest.raises(ValueError, match="unknown audit action"):
        audit.record("made_up")


def test_the_audit_log_is_read_only_in_the_admin(admin_client, alice):
    event = audit.record("sign_in", actor=alice, target=alice, details={"via": "password"})
    listed = admin_client.get("/admin/retrieval/auditevent/").content.decode()
    assert "signed in" in listed and "alice" in listed
    assert admin_client.get(f"/admin/retrieval/auditevent/{event.id}/change/").status_code == 200
    assert admin_client.get("/admin/retrieval/auditevent/add/").status_code == 403
    assert (
        admin_client.post(f"/admin/retrieval/auditevent/{event.id}/delete/", {"post": "yes"}).status_code
        == 403
    )
    assert AuditEvent.objects.filter(id=event.id).exists()


def test_what_staff_add_change_and_delete_in_the_admin_is_recorded(admin_client, admin_user):
    """Django admin's own forms and actions ("Recent actions") go into the audit log too: who, which
    object (its kind, id and name), and for a change, what changed."""
    from chat.models import ModerationRule

    AuditEvent.objects.all().delete()
    form = {
        "pattern": "salary of",
        "kind": "phrase",
        "applies_to": "question",
        "category": "hr",
        "enabled": "on",
    }
    assert admin_client.post("/admin/chat/moderationrule/add/", form).status_code == 302
    rule = ModerationRule.objects.get()
    changed = {**form, "category": "pay"}
    assert admin_client.post(f"/admin/chat/moderationrule/{rule.id}/change/", changed).status_code == 302
    deleted = admin_client.post(f"/admin/chat/moderationrule/{rule.id}/delete/", {"post": "yes"})
    assert deleted.status_code == 302 and not ModerationRule.objects.exists()
    events = list(AuditEvent.objects.order_by("id"))
    assert [(e.actor_id, e.action, e.target_type, e.target_id, e.target) for e in events] == [
        (admin_user.id, action, "moderationrule", str(rule.id), name)
        for action, name in [
            ("admin_add", "hr: salary of"),
            ("admin_change", "pay: salary of"),  # as it was then
            ("admin_delete", "pay: salary of"),
        ]
    ]
    assert events[1].details == {"change": "Changed Category."}


def test_events_are_downloaded_as_csv_from_the_admin(admin_client, alice, make_team):
    team = make_team("Ops")
    first = audit.record("member_add", actor=alice, target=alice, team=team, details={"role": "member"})
    second = audit.record("sign_in_failed", name="=HYPERLINK(1)", details={"username": "=HYPERLINK(1)"})
    response = admin_client.post(
        "/admin/retrieval/auditevent/",
        {"action": "download_csv", "_selected_action": [second.id, first.id]},
    )
    assert response.status_code == 200 and response["Content-Type"] == "text/csv; charset=utf-8"
    import csv
    import io

    rows = list(csv.reader(io.StringIO(response.content.decode())))
    assert rows[0][:4] == ["at", "actor_name", "action", "team"]
    assert [r[1:8] for r in rows[1:]] == [
        ["alice", "member_add", "Ops", "user", str(alice.id), "alice", '{"role": "member"}'],
        ["system", "sign_in_failed", "", "", "", "'=HYPERLINK(1)", '{"username": "=HYPERLINK(1)"}'],
    ]


def test_staff_read_the_whole_log_with_a_cursor_and_others_may_not(client, alice, make_user, key_for):
    staff = make_user("sam", is_staff=True)
    AuditEvent.objects.all().delete()
    first = audit.record("sign_in", actor=alice, target=alice, details={"via": "password"})
    second = audit.record("sign_out", actor=alice, target=alice)
    fresh = audit.record("sign_in", actor=alice, target=alice)  # under a minute old: not yet
    AuditEvent.objects.filter(id__in=[first.id, second.id]).update(at=timezone.now() - timedelta(minutes=5))
    auth = key_for(staff)
    listed = client.get("/api/v1/audit", **auth).json()
    assert [(e["id"], e["action"], e["actor"]) for e in listed] == [
        (first.id, "sign_in", "alice"),
        (second.id, "sign_out", "alice"),
    ]
    assert listed[0]["details"] == {"via": "password"} and "ip" in listed[0] and "request_id" in listed[0]
    assert [e["id"] for e in client.get(f"/api/v1/audit?since_id={first.id}", **auth).json()] == [second.id]
    assert client.get("/api/v1/audit?action=sign_out", **auth).json()[0]["id"] == second.id
    AuditEvent.objects.filter(id=fresh.id).update(at=timezone.now() - timedelta(minutes=2))
    assert [e["id"] for e in client.get(f"/api/v1/audit?since_id={second.id}", **auth).json()] == [fresh.id]
    forbidden = client.get("/api/v1/audit", **key_for(alice))
    assert forbidden.status_code == 403 and forbidden.json()["error"]["code"] == "forbidden"
