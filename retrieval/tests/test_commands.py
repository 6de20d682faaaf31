import io

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command

from retrieval.models import ApiKey, Document, Membership
from retrieval.selectors import api_key_user


def run(*args) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


def test_create_user_creates_team_and_updates_password(db):
    run("create_user", "carol", "--team", "Research", "--password", "first-pass-1", "--team-admin")
    user = get_user_model().objects.get(username="carol")
    assert user.check_password("first-pass-1")
    assert Membership.objects.get(user=user).role == "admin"
    run("create_user", "carol", "--team", "Research", "--password", "second-pass-2")
    user.refresh_from_db()
    assert user.check_password("second-pass-2")
    assert Membership.objects.filter(user=user).count() == 1


def test_create_api_key_prints_key_once_and_stores_hash(db, alice):
    out = run("create_api_key", "alice", "--name", "ci")
    raw = out.strip().splitlines()[-1]
    assert raw.startswith("dk_")
    key = ApiKey.objects.get(user=alice)
    assert key.name == "ci" and raw not in key.hashed_key and len(key.hashed_key) == 64
    assert api_key_user(raw=raw) == alice


def test_ingest_sync_folder(db, tmp_path):
    (tmp_path / "a.md").write_text("# A\n\nAlpha text.")
    (tmp_path / "b.txt").write_text("Beta text.")
    (tmp_path / "skip.png").write_bytes(b"\x89PNG")
    run("ingest", str(tmp_path), "--collection", "docs", "--team", "Ops", "--sync")
    assert sorted(Document.objects.values_list("status", flat=True)) == ["ready", "ready"]
    run("ingest", str(tmp_path), "--collection", "docs", "--team", "Ops", "--sync")
    assert Document.objects.count() == 2  # a rerun adds nothing


def test_ingest_exits_nonzero_when_a_file_fails(db, tmp_path):
    (tmp_path / "bad.txt").write_bytes(b"\xff\xfe broken")
    with pytest.raises(SystemExit):
        run("ingest", str(tmp_path), "--collection", "docs", "--team", "Ops", "--sync")


def test_bootstrap_demo_adds_nothing_twice_and_replaces_a_changed_page(db, tmp_path, settings):
    """The demo mirrors docs/: a rerun adds nothing; a page that changed replaces its older version."""
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.md").write_text("# A\n\nFirst version.\n")
    (tmp_path / "docs" / "b.md").write_text("# B\n\nUnchanged.\n")
    settings.BASE_DIR = tmp_path
    for _ in range(2):
        call_command("bootstrap_demo", stdout=io.StringIO())
    assert sorted(Document.objects.values_list("original_name", flat=True)) == ["a.md", "b.md"]
    b = Document.objects.get(original_name="b.md")
    (tmp_path / "docs" / "a.md").write_text("# A\n\nSecond version.\n")
    call_command("bootstrap_demo", stdout=io.StringIO())
    assert sorted(Document.objects.values_list("original_name", flat=True)) == ["a.md", "b.md"]
    a = Document.objects.get(original_name="a.md")
    assert a.file.open("rb").read() == b"# A\n\nSecond version.\n"
    assert Document.objects.get(original_name="b.md").id == b.id
