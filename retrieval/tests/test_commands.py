import io

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command

from retrieval import services
from retrieval.models import ApiKey, Chunk, Collection, Document, Membership
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


def test_create_user_keeps_an_email_address_and_refuses_a_malformed_one(db):
    run("create_user", "carol", "--team", "Research", "--email", "carol@Example.ORG")
    assert get_user_model().objects.get(username="carol").email == "carol@example.org"
    run("create_user", "carol", "--team", "Research", "--password", "first-pass-1")  # address kept
    assert get_user_model().objects.get(username="carol").email == "carol@example.org"
    with pytest.raises(CommandError, match="--email: Enter a valid email address"):
        run("create_user", "dave", "--team", "Research", "--email", "dave-at-example")
    assert not get_user_model().objects.filter(username="dave").exists()


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
    (tmp_path / "skip.png").write_bytes(b"\x89PNG")  # a folder's images are left out (diagrams, icons)
    run("ingest", str(tmp_path), "--collection", "docs", "--team", "Ops", "--sync")
    assert sorted(Document.objects.values_list("status", flat=True)) == ["ready", "ready"]
    run("ingest", str(tmp_path), "--collection", "docs", "--team", "Ops", "--sync")
    assert Document.objects.count() == 2  # a rerun adds nothing


def test_ingest_replace_makes_each_file_a_new_version(db, tmp_path):
    page = tmp_path / "rota.md"
    page.write_text("# Rota\n\nMondays.\n")
    run("ingest", str(page), "--collection", "docs", "--team", "Ops", "--sync")
    page.write_text("# Rota\n\nThursdays.\n")
    run("ingest", str(page), "--collection", "docs", "--team", "Ops", "--sync", "--replace")
    (only,) = Document.objects.filter(original_name="rota.md")
    assert only.status == "ready" and only.file.open("rb").read() == b"# Rota\n\nThursdays.\n"
    page.write_text("# Rota\n\nFridays.\n")
    run("ingest", str(page), "--collection", "docs", "--team", "Ops", "--sync")
    assert Document.objects.filter(original_name="rota.md").count() == 2  # without --replace, both


def test_ingest_names_a_folders_files_by_their_path_in_it(db, tmp_path):
    for sub in ("a", "b"):
        (tmp_path / "wiki" / sub).mkdir(parents=True)
        (tmp_path / "wiki" / sub / "README.md").write_text(f"# {sub}\n\nAbout {sub}.\n")
    for _ in range(2):  # the second run, with --replace, changes nothing: same bytes, same names
        run("ingest", str(tmp_path / "wiki"), "--collection", "docs", "--team", "Ops", "--sync", "--replace")
    names = sorted(Document.objects.values_list("original_name", flat=True))
    assert names == ["wiki/a/README.md", "wiki/b/README.md"]


def test_ingest_with_prune_keeps_a_collection_in_step_with_its_folder(db, tmp_path):
    """Run again with --replace --prune (from cron, say): a changed file replaces its document, a
    removed one is deleted, and documents from elsewhere in the collection stay."""
    wiki = tmp_path / "wiki"
    wiki.mkdir()
    (wiki / "keep.md").write_text("# Keep\n\nStays.\n")
    (wiki / "edit.md").write_text("# Edit\n\nFirst version.\n")
    (wiki / "drop.md").write_text("# Drop\n\nGoes away.\n")
    (tmp_path / "wikipedia").mkdir()
    (tmp_path / "wikipedia" / "other.md").write_text("# Other\n\nAnother folder.\n")
    args = ("--collection", "docs", "--team", "Ops", "--sync", "--replace", "--prune")
    run("ingest", str(wiki), *args)
    run("ingest", str(tmp_path / "wikipedia"), "--collection", "docs", "--team", "Ops", "--sync")
    kept = Document.objects.get(original_name="wiki/keep.md")
    (wiki / "drop.md").unlink()
    (wiki / "edit.md").write_text("# Edit\n\nSecond version.\n")
    out = run("ingest", str(wiki), *args)
    assert "wiki/drop.md: gone from the folder, deleted" in out
    names = sorted(Document.objects.values_list("original_name", flat=True))
    assert names == ["wiki/edit.md", "wiki/keep.md", "wikipedia/other.md"]
    assert Document.objects.get(original_name="wiki/keep.md").id == kept.id
    assert (
        Document.objects.get(original_name="wiki/edit.md").file.open("rb").read()
        == b"# Edit\n\nSecond version.\n"
    )
    assert not Chunk.objects.filter(text__contains="Goes away").exists()


def test_ingest_takes_a_repos_code_and_docs_but_not_its_hidden_or_dependency_folders(db, tmp_path):
    repo = tmp_path / "tool"
    for sub in ("docs", "src", ".git", "node_modules/left-pad", "src/__pycache__"):
        (repo / sub).mkdir(parents=True)
    (repo / "docs" / "guide.md").write_text("# Guide\n\nRun the tool.\n")
    (repo / "src" / "cli.py").write_text("def main():\n    print('tool')\n")
    (repo / "config.yaml").write_text("retries: 3\n")
    (repo / ".git" / "description").write_text("Unnamed repository.\n")
    (repo / ".eslintrc.json").write_text("{}\n")
    (repo / "node_modules" / "left-pad" / "README.md").write_text("# left-pad\n\nPads.\n")
    (repo / "node_modules" / "left-pad" / "index.js").write_text("module.exports = 1;\n")
    run("ingest", str(repo), "--collection", "docs", "--team", "Ops", "--sync")
    documents = dict(Document.objects.values_list("original_name", "kind"))
    assert documents == {
        "tool/docs/guide.md": "markdown",
        "tool/src/cli.py": "code",
        "tool/config.yaml": "code",
    }
    assert set(Document.objects.values_list("status", flat=True)) == {"ready"}


def test_ingest_exits_nonzero_when_a_file_fails(db, tmp_path):
    (tmp_path / "bad.txt").write_bytes(b"\xff\xfe broken")
    with pytest.raises(SystemExit):
        run("ingest", str(tmp_path), "--collection", "docs", "--team", "Ops", "--sync")


def test_bootstrap_demo_adds_nothing_twice_and_replaces_a_changed_page(db, tmp_path, settings):
    """The demo mirrors docs/: a rerun adds nothing; a page that changed replaces its older version
    once the new one is ready (until then the old one answers); a page changed back is current again."""
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.md").write_text("# A\n\nFirst version.\n")
    (tmp_path / "docs" / "b.md").write_text("# B\n\nUnchanged.\n")
    settings.BASE_DIR = tmp_path
    for _ in range(2):
        call_command("bootstrap_demo", stdout=io.StringIO())
    assert sorted(Document.objects.values_list("original_name", flat=True)) == ["a.md", "b.md"]
    # The demo suggests questions to start with; an admin's own choice survives a rerun.
    demo = Collection.objects.get(name="demo")
    assert "How do I upload documents?" in demo.starter_questions
    services.collection_update(collection=demo, starter_questions=["Ours?"])
    call_command("bootstrap_demo", stdout=io.StringIO())
    assert Collection.objects.get(id=demo.id).starter_questions == ["Ours?"]
    b = Document.objects.get(original_name="b.md")
    services.documents_ingest(document_ids=list(Document.objects.values_list("id", flat=True)))
    first = Document.objects.get(original_name="a.md")
    (tmp_path / "docs" / "a.md").write_text("# A\n\nSecond version.\n")
    call_command("bootstrap_demo", stdout=io.StringIO())
    assert Document.objects.filter(original_name="a.md").count() == 2
    assert Document.objects.get(id=first.id).status == "ready"
    services.documents_ingest(
        document_ids=list(Document.objects.filter(status="queued").values_list("id", flat=True))
    )
    assert sorted(Document.objects.values_list("original_name", flat=True)) == ["a.md", "b.md"]
    a = Document.objects.get(original_name="a.md")
    assert a.file.open("rb").read() == b"# A\n\nSecond version.\n"
    assert Document.objects.get(original_name="b.md").id == b.id
    # Changed back before the second version was ingested anywhere else: the first text is current.
    (tmp_path / "docs" / "a.md").write_text("# A\n\nThird version.\n")
    call_command("bootstrap_demo", stdout=io.StringIO())
    (tmp_path / "docs" / "a.md").write_text("# A\n\nSecond version.\n")
    call_command("bootstrap_demo", stdout=io.StringIO())
    services.documents_ingest(
        document_ids=list(Document.objects.filter(status="queued").values_list("id", flat=True))
    )
    assert [d.id for d in Document.objects.filter(original_name="a.md")] == [a.id]
