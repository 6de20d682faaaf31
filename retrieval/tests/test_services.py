import io

import numpy as np
import pytest
from django.core.management import call_command

from retrieval import services
from retrieval.embeddings import get_embedder
from retrieval.models import Chunk, Document

from . import files
from .helpers import upload, wait_done

SAMPLES = {
    "report.pdf": files.pdf_bytes(
        ["Quarterly revenue grew by twelve percent.", "Costs fell in the second half."]
    ),
    "policy.docx": files.docx_bytes("Leave policy", ["Employees get twenty five days of paid leave."]),
    "guide.md": b"# Setup\n\nInstall the package with pip.\n\n## Running\n\nStart the server with make run.\n",
    "page.html": b"<html><body><h1>FAQ</h1><p>The office opens at nine.</p><script>x()</script></body></html>",
    "notes.txt": b"The backup runs every night at two.\n\nRestores take an hour.",
    "caps.csv": b"city,nightly cap\nLondon,220 GBP\nBerlin,160 EUR\n",
    "deck.pptx": files.pptx_bytes([("Roadmap", ["Launch in March."], "Mention the pilot.")]),
    "budget.xlsx": files.xlsx_bytes({"2026": [["team", "budget"], ["Ops", 120000]]}),
    "outage.eml": files.eml_bytes("Outage", "The queue drained at ten.\n", attachments=("log.pdf",)),
    "guide.epub": files.epub_bytes("Field Guide", [("Maps", ["North is up."])]),
    "memo.odt": files.odt_bytes(
        '<text:h text:outline-level="1">Memo</text:h><text:p>Audit on Monday.</text:p>'
    ),
    "scan.pdf": files.scanned_pdf_bytes([[("The boiler is serviced every October.", 34)]]),
    "notice.png": files.photo_bytes([("The lift is out of order until Thursday.", 30)]),
}


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_upload_reaches_ready_with_vectors(worker, collection_a, name):
    """Every supported type goes from upload to ready through the real worker, with stored vectors."""
    document, created = upload(collection_a, name, SAMPLES[name])
    assert created and document.status == "queued"
    document = wait_done(document.id)
    assert document.status == "ready", document.error
    assert document.progress == 1.0 and document.chunk_count >= 1
    chunks = list(Chunk.objects.filter(document=document))
    assert len(chunks) == document.chunk_count
    for chunk in chunks:
        assert chunk.embedding.shape == (384,)
        assert abs(np.linalg.norm(chunk.embedding) - 1.0) < 1e-3
        assert chunk.embedding_model == get_embedder().model_name
        assert chunk.collection_id == collection_a.id


def test_collection_instructions_are_bounded_by_the_service_and_the_database(db, collection_a):
    """Over the limit is refused by the service, and by the database for a write that skips it."""
    from django.db import IntegrityError, transaction

    from retrieval.models import INSTRUCTIONS_MAX_CHARS, Collection

    services.collection_update(collection=collection_a, instructions="  Answer in German.  ")
    assert Collection.objects.get(id=collection_a.id).instructions == "Answer in German."
    with pytest.raises(ValueError, match="limited"):
        services.collection_update(collection=collection_a, instructions="x" * (INSTRUCTIONS_MAX_CHARS + 1))
    with pytest.raises(IntegrityError, match="collection_instructions_length"), transaction.atomic():
        Collection.objects.filter(id=collection_a.id).update(instructions="x" * (INSTRUCTIONS_MAX_CHARS + 1))
    assert Collection.objects.get(id=collection_a.id).instructions == "Answer in German."


def test_an_outline_only_file_is_ready_and_found_by_its_headings(db, collection_a, alice):
    """A Markdown file of headings alone (a roadmap's outline) is read, not failed as empty, and a
    search for a word of an empty section's heading finds it."""
    from retrieval import selectors

    body = b"# Roadmap\n\n## Single sign-on with Keycloak\n\n## Audit log export\n"
    document, _ = upload(collection_a, "roadmap.md", body, enqueue=False)
    services.documents_ingest(document_ids=[document.id])
    document.refresh_from_db()
    assert document.status == "ready" and document.chunk_count >= 1
    hits = selectors.search(
        user=alice, query="Keycloak", collection_ids=[collection_a.id], k=3, mode="keyword"
    )
    assert [h.document_id for h in hits] == [document.id] and "Keycloak" in hits[0].text


def test_pdf_chunks_keep_pages(db, collection_a):
    document, _ = upload(collection_a, "r.pdf", SAMPLES["report.pdf"], enqueue=False)
    services.documents_ingest(document_ids=[document.id])
    assert sorted(Chunk.objects.filter(document=document).values_list("page", flat=True)) == [1, 2]


def test_a_scanned_pdf_moves_its_bar_page_by_page_and_is_found_by_its_words(
    db, collection_a, alice, monkeypatch
):
    """OCR is the slow part of a scan: each page read moves the bar (never backwards afterwards) and
    the stored heartbeat, so the sweep does not take a long scan for a dead worker."""
    from retrieval import progress, selectors

    pages = [
        [("The boiler is serviced every October.", 34)],
        [("Radiators are bled before the winter.", 34)],
        [("Filters are changed twice a year.", 34)],
    ]
    document, _ = upload(collection_a, "scan.pdf", files.scanned_pdf_bytes(pages), enqueue=False)
    seen = []

    def publish(doc):
        stored = Document.objects.get(id=doc.id)
        seen.append((round(doc.progress, 3), round(stored.progress, 3), stored.heartbeat_at))

    monkeypatch.setattr(progress, "publish", publish)
    monkeypatch.setattr(progress, "publish_bulk", lambda documents: [publish(d) for d in documents])
    services.documents_ingest(document_ids=[document.id])
    document.refresh_from_db()
    assert document.status == "ready", document.error
    shown = [p for p, _, _ in seen]
    assert shown[1:4] == [0.233, 0.417, 0.6]  # after the first event (0.05, processing)
    assert shown == sorted(shown) and shown[-1] == 1.0
    assert [stored for _, stored, _ in seen[1:4]] == shown[1:4]
    beats = [beat for _, _, beat in seen[:4]]
    assert beats == sorted(beats) and len(set(beats)) == 4
    hits = selectors.search(user=alice, query="boiler October", collection_ids=[collection_a.id], k=3)
    assert hits and hits[0].document_id == document.id and hits[0].page in (1, 2, 3)


def test_documents_waiting_behind_a_long_scan_keep_their_heartbeat(db, collection_a, monkeypatch):
    """A batch's documents wait while one of them is read by OCR; their heartbeat goes on, or the
    sweep would take them for a dead worker's and queue them twice."""
    from retrieval import progress

    scan, _ = upload(
        collection_a,
        "scan.pdf",
        files.scanned_pdf_bytes([[("Boilers are serviced in October.", 34)]] * 2),
        enqueue=False,
    )
    note, _ = upload(collection_a, "note.md", b"# Note\n\nRadiators are bled in winter.", enqueue=False)
    monkeypatch.setattr(services._Heartbeat, "EVERY_S", 0.0)
    started, seen = {}, []

    def publish(doc):
        waiting = Document.objects.get(id=note.id)
        started.setdefault("at", waiting.heartbeat_at)
        if doc.id == scan.id and 0.05 < doc.progress <= services.OCR_PROGRESS_END:
            seen.append(waiting.heartbeat_at)

    monkeypatch.setattr(progress, "publish", publish)
    monkeypatch.setattr(progress, "publish_bulk", lambda documents: [publish(d) for d in documents])
    services.documents_ingest(document_ids=[scan.id, note.id])
    assert len(seen) >= 2 and started["at"] < seen[0] < seen[1]  # one beat per page read
    assert {d.status for d in Document.objects.filter(id__in=[scan.id, note.id])} == {"ready"}


def test_same_bytes_same_collection_returns_existing(db, collection_a):
    first, created = upload(collection_a, "a.txt", b"same content", enqueue=False)
    again, created_again = upload(collection_a, "b.txt", b"same content", enqueue=False)
    assert created and not created_again and again.id == first.id
    assert Document.objects.count() == 1


def test_duplicate_content_is_not_embedded_again(db, collection_a, collection_b):
    """A second copy of a document reuses the vectors the same model already made."""
    text = "\n\n".join(
        f"Paragraph {i} describes the rollout plan for region {i}." for i in range(40)
    ).encode()
    one, _ = upload(collection_a, "plan.txt", text, enqueue=False)
    stats = services.documents_ingest(document_ids=[one.id])
    assert stats.embedded > 0 and stats.reused == 0
    two, _ = upload(collection_b, "plan-copy.txt", text, enqueue=False)
    stats = services.documents_ingest(document_ids=[two.id])
    assert stats.embedded == 0 and stats.reused == stats.chunks > 0
    a = list(Chunk.objects.filter(document=one).order_by("ordinal").values_list("embedding", flat=True))
    b = list(Chunk.objects.filter(document=two).order_by("ordinal").values_list("embedding", flat=True))
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))


def _found(user, query: str) -> set[int]:
    from retrieval.selectors import search

    return {hit.document_id for hit in search(user=user, query=query, k=10, mode="keyword")}


def test_a_new_version_replaces_the_old_once_ready(
    db, alice, collection_a, collection_b, settings, django_capture_on_commit_callbacks
):
    """The old version is searched until the new one is ready, then it is gone: document, chunks and
    file. Other names, and the same name in another collection, are not touched."""
    from pathlib import Path

    old, _ = upload(collection_a, "rota.md", b"# Rota\n\nThe pager rotates every Monday.\n", enqueue=False)
    other, _ = upload(collection_a, "other.md", b"# Other\n\nThe pager has a spare.\n", enqueue=False)
    elsewhere, _ = upload(
        collection_b, "rota.md", b"# Rota\n\nThe pager rotates on Fridays.\n", enqueue=False
    )
    services.documents_ingest(document_ids=[old.id, other.id, elsewhere.id])
    old_file = Path(settings.MEDIA_ROOT) / old.file.name

    new, created = upload(
        collection_a, "rota.md", b"# Rota\n\nThe pager rotates every Thursday.\n", enqueue=False, replace=True
    )
    assert created and new.replace_older
    assert _found(alice, "pager rotates Monday") >= {old.id}  # still answering until the new one is ready

    with django_capture_on_commit_callbacks(execute=True):
        services.documents_ingest(document_ids=[new.id])
    assert not Document.objects.filter(id=old.id).exists()
    assert not Chunk.objects.filter(document_id=old.id).exists()
    assert not old_file.exists()
    assert Document.objects.get(id=new.id).status == "ready"
    assert Document.objects.filter(id__in=[other.id, elsewhere.id]).count() == 2
    assert old.id not in _found(alice, "pager rotates Monday")
    assert new.id in _found(alice, "pager rotates Thursday")


def test_a_new_version_that_fails_leaves_the_old_one(db, collection_a):
    old, _ = upload(collection_a, "report.pdf", SAMPLES["report.pdf"], enqueue=False)
    services.documents_ingest(document_ids=[old.id])
    new, _ = upload(collection_a, "report.pdf", files.pdf_circular_xref(), enqueue=False, replace=True)
    services.documents_ingest(document_ids=[new.id])
    assert Document.objects.get(id=new.id).status == "failed"
    assert Document.objects.get(id=old.id).status == "ready"
    assert Chunk.objects.filter(document_id=old.id).exists()


def test_two_new_versions_in_one_batch_leave_the_newest(db, collection_a):
    v1, _ = upload(collection_a, "faq.md", b"# FAQ\n\nOne.", enqueue=False)
    services.documents_ingest(document_ids=[v1.id])
    v2, _ = upload(collection_a, "faq.md", b"# FAQ\n\nTwo.", enqueue=False, replace=True)
    v3, _ = upload(collection_a, "faq.md", b"# FAQ\n\nThree.", enqueue=False, replace=True)
    stats = services.documents_ingest(document_ids=[v2.id, v3.id])
    assert list(Document.objects.filter(original_name="faq.md").values_list("id", flat=True)) == [v3.id]
    assert stats.ready == 1
    assert set(Chunk.objects.values_list("document_id", flat=True)) == {v3.id}


def test_an_upload_keeps_its_path_inside_a_folder_but_nothing_above_it():
    assert services.upload_name("wiki/howto/README.md") == "wiki/howto/README.md"
    assert services.upload_name("../../etc/passwd") == "etc/passwd"
    assert services.upload_name("/abs//a/./b.md") == "abs/a/b.md"
    assert services.upload_name("C:\\Users\\me\\notes.txt") == "C:/Users/me/notes.txt"
    assert services.upload_name("") == services.upload_name(None) == "upload"
    # What PostgreSQL cannot keep, or no one can read, goes; a tab or line break becomes a space.
    assert services.upload_name("a\x00b\x1b/c\ud800\td.md") == "ab/c d.md"


def test_two_files_of_one_name_in_a_folder_are_two_documents_and_versions_replace_their_own(db, collection_a):
    a, _ = upload(collection_a, "wiki/a/README.md", b"# A\n\nAlpha.", enqueue=False, replace=True)
    b, _ = upload(collection_a, "wiki/b/README.md", b"# B\n\nBeta.", enqueue=False, replace=True)
    services.documents_ingest(document_ids=[a.id, b.id])
    assert Document.objects.filter(status="ready").count() == 2
    assert (a.title, a.original_name) == ("README", "wiki/a/README.md")
    a2, _ = upload(collection_a, "wiki/a/README.md", b"# A\n\nAlpha, again.", enqueue=False, replace=True)
    services.documents_ingest(document_ids=[a2.id])
    assert set(Document.objects.values_list("id", flat=True)) == {a2.id, b.id}


def test_without_replace_both_versions_stay(db, collection_a):
    one, _ = upload(collection_a, "notes.txt", b"First notes.", enqueue=False)
    two, _ = upload(collection_a, "notes.txt", b"Second notes.", enqueue=False)
    services.documents_ingest(document_ids=[one.id, two.id])
    assert Document.objects.filter(id__in=[one.id, two.id], status="ready").count() == 2


def test_rerun_leaves_no_duplicate_chunks(db, collection_a):
    """Ingesting the same document again (a redelivered task) replaces its chunks."""
    document, _ = upload(collection_a, "notes.txt", SAMPLES["notes.txt"], enqueue=False)
    services.documents_ingest(document_ids=[document.id])
    n = Chunk.objects.filter(document=document).count()
    services.documents_ingest(document_ids=[document.id], force=True)
    assert Chunk.objects.filter(document=document).count() == n


HOSTILE = {
    "bomb.pdf": files.pdf_decompression_bomb,
    "loop.pdf": files.pdf_circular_xref,
    "scan-bomb.pdf": files.pdf_image_bomb,
    "bomb.docx": files.docx_zip_bomb,
    "bomb.xlsx": lambda: files.docx_zip_bomb("xl/workbook.xml"),
    "bad.txt": lambda: b"valid start \xff\xfe\xfd invalid utf-8",
}


@pytest.mark.slow
def test_hostile_files_fail_alone_and_worker_keeps_going(worker, collection_a):
    """Each hostile file fails its own document with a readable reason; the next one still ingests."""
    hostile = [upload(collection_a, name, make())[0] for name, make in HOSTILE.items()]
    good, _ = upload(collection_a, "good.md", b"# Fine\n\nThis one is fine.")
    for document in hostile:
        document = wait_done(document.id, timeout=120)
        assert document.status == "failed"
        assert document.error and len(document.error) < 400 and "Traceback" not in document.error
        assert not Chunk.objects.filter(document=document).exists()
    assert wait_done(good.id).status == "ready"


def test_delete_removes_chunks_and_file(db, collection_a, settings):
    from pathlib import Path

    document, _ = upload(collection_a, "notes.txt", SAMPLES["notes.txt"], enqueue=False)
    services.documents_ingest(document_ids=[document.id])
    path = Path(settings.MEDIA_ROOT) / document.file.name
    assert path.exists()
    with pytest.MonkeyPatch.context():
        from django.db import transaction

        with transaction.atomic():
            services.document_delete(document=document)
    assert not Chunk.objects.filter(document_id=document.id).exists()
    assert not Document.objects.filter(id=document.id).exists()


def _collection_statistics(collection_id: int) -> tuple:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.indexed_chunks, c.indexed_terms,"
            " (SELECT count(*) FROM retrieval_term t WHERE t.collection_id = c.id),"
            " (SELECT count(*) FROM retrieval_posting p WHERE p.collection_id = c.id)"
            " FROM retrieval_collection c WHERE c.id = %s",
            [collection_id],
        )
        return cursor.fetchone()


def test_a_deleted_collection_is_purged_in_batches_leaving_the_others(
    db, collection_a, make_collection, monkeypatch, settings, django_capture_on_commit_callbacks
):
    """Deleting marks the collection (gone for search at once); the purge then deletes its documents
    a bounded batch per transaction, their files, and the row; another collection sharing the terms
    keeps its statistics. A second purge finds nothing to do."""
    from pathlib import Path

    from retrieval import selectors
    from retrieval.models import Collection

    other = make_collection(collection_a.team, "other")
    notes = [
        upload(
            collection_a, f"note-{i}.txt", f"The backup runs at {i} in the night.".encode(), enqueue=False
        )[0]
        for i in range(5)
    ]
    kept, _ = upload(other, "kept.txt", b"The backup runs every night.", enqueue=False)
    services.documents_ingest(document_ids=[d.id for d in notes] + [kept.id])
    stored = [Path(settings.MEDIA_ROOT) / Document.objects.get(id=d.id).file.name for d in notes]
    before = _collection_statistics(other.id)
    alice = collection_a.team.memberships.first().user

    with django_capture_on_commit_callbacks(execute=False) as queued:
        services.collection_delete(collection=collection_a)
    assert len(queued) == 2  # library pages told, the purge queued
    hits = selectors.search(user=alice, query="when does the backup run", k=10)
    assert {h.document_id for h in hits} == {kept.id}

    batches = []
    remove = services._chunks_remove
    monkeypatch.setattr(services, "_chunks_remove", lambda ids: (batches.append(sorted(ids)), remove(ids)))
    monkeypatch.setattr(services, "PURGE_BATCH_CHUNKS", 2)  # one chunk per note: two notes a batch
    with django_capture_on_commit_callbacks(execute=True):
        assert services.collection_purge(collection_id=collection_a.id) == 5
    ids = sorted(d.id for d in notes)
    assert batches == [ids[0:2], ids[2:4], ids[4:5]]
    assert not Collection.objects.filter(id=collection_a.id).exists()
    assert not Document.objects.filter(id__in=ids).exists() and not any(p.exists() for p in stored)
    assert _collection_statistics(other.id) == before
    assert services.collection_purge(collection_id=collection_a.id) == 0


def test_the_sweep_queues_a_purge_left_behind_and_ingestion_skips_a_deleted_collection(
    db, collection_a, monkeypatch
):
    from django.utils import timezone

    from retrieval import tasks
    from retrieval.models import Collection

    document, _ = upload(collection_a, "notes.txt", SAMPLES["notes.txt"], enqueue=False)
    long_ago = timezone.now() - timezone.timedelta(minutes=30)
    Collection.objects.filter(id=collection_a.id).update(deleted_at=long_ago)
    assert services.documents_ingest(document_ids=[document.id]).documents == 0
    assert not Chunk.objects.filter(document_id=document.id).exists()
    # Left queued for the purge: the document sweep does not queue it again and again.
    Document.objects.filter(id=document.id).update(heartbeat_at=long_ago)
    assert services.documents_sweep_stuck(stuck_after_s=600, max_attempts=3, broker_backlog=0) == []
    queued = []
    monkeypatch.setattr(tasks.purge_collection, "delay", queued.append)
    assert services.collections_purge_stuck(stuck_after_s=600) == [collection_a.id] == queued
    Collection.objects.filter(id=collection_a.id).update(deleted_at=timezone.now())
    assert services.collections_purge_stuck(stuck_after_s=600) == []  # a purge may still be at work


def test_a_deleted_team_is_gone_for_its_members_at_once_and_its_row_after_the_last_purge(
    db, alice, collection_a, make_collection, make_team, monkeypatch, django_capture_on_commit_callbacks
):
    """Deleting a team takes nothing from the request but marks: members and collections go at
    once, one purge is queued per collection, the name is free, and the team's row goes with the last
    purge (two purges of one team: the first leaves the row, the second removes it). A team without
    collections goes at once; one left behind by a lost purge goes with the sweep."""
    from django.utils import timezone

    from retrieval import selectors, tasks
    from retrieval.models import Collection, Membership, Team

    team = collection_a.team
    second = make_collection(team, "second")
    document, _ = upload(collection_a, "notes.txt", SAMPLES["notes.txt"], enqueue=False)
    services.documents_ingest(document_ids=[document.id])
    queued = []
    monkeypatch.setattr(tasks.purge_collection, "delay", queued.append)
    with django_capture_on_commit_callbacks(execute=True):
        services.team_delete(team=team)
    assert sorted(queued) == sorted([collection_a.id, second.id])
    assert Chunk.objects.filter(document_id=document.id).exists()  # not purged in the request
    assert not Membership.objects.filter(team_id=team.id).exists()
    assert not selectors.teams_for_user(user=alice).exists()
    assert not selectors.collections_for_user(user=alice).exists()
    assert selectors.search(user=alice, query="When does the backup run?", k=5) == []
    assert services.team_get_or_create(name=team.name).id != team.id  # the name is free

    assert services.collection_purge(collection_id=collection_a.id) == 1
    assert Team.objects.filter(id=team.id).exists()  # its second collection is still there
    services.collection_purge(collection_id=second.id)
    assert not Team.objects.filter(id=team.id).exists()
    assert not Chunk.objects.filter(document_id=document.id).exists()

    empty = make_team("Empty", members=[alice])
    services.team_delete(team=empty)
    assert not Team.objects.filter(id=empty.id).exists()

    lost = make_team("Lost")
    orphan = make_collection(lost, "orphan")
    with django_capture_on_commit_callbacks(execute=True):
        services.team_delete(team=lost)
    Collection.objects.filter(id=orphan.id).delete()  # a purge that died before asking for the team
    Team.objects.filter(id=lost.id).update(deleted_at=timezone.now() - timezone.timedelta(hours=1))
    services.collections_purge_stuck(stuck_after_s=600)
    assert not Team.objects.filter(id=lost.id).exists()


def test_a_purge_leaves_a_document_someone_holds_and_the_collection_until_it_is_gone(
    transactional_db, collection_a
):
    """A document locked elsewhere (an ingestion writing it) is skipped rather than waited for, and
    the collection's row stays until a later purge (the sweep's) takes that document too."""
    import threading

    from django.db import connection, transaction
    from django.utils import timezone

    from retrieval.models import Collection

    held, free = (upload(collection_a, f"{n}.txt", f"{n} notes".encode(), enqueue=False)[0] for n in "ab")
    # Marked as the service does, without queueing a purge the session's worker would run alongside.
    Collection.objects.filter(id=collection_a.id).update(deleted_at=timezone.now())
    locked, release = threading.Event(), threading.Event()

    def hold():
        with transaction.atomic():
            Document.objects.select_for_update().get(id=held.id)
            locked.set()
            release.wait(30)
        connection.close()

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert locked.wait(10)
        assert services.collection_purge(collection_id=collection_a.id) == 1
        assert list(Document.objects.filter(collection_id=collection_a.id).values_list("id", flat=True)) == [
            held.id
        ]
        assert Collection.objects.filter(id=collection_a.id).exists()
    finally:
        release.set()
        holder.join()
    assert services.collection_purge(collection_id=collection_a.id) == 1
    assert not Collection.objects.filter(id=collection_a.id).exists()
    assert not Document.objects.filter(id=free.id).exists()


def test_model_change_is_detected_and_reindexed(db, collection_a):
    """Documents embedded by another model are re-queued and re-embedded by `reindex`."""
    document, _ = upload(collection_a, "notes.txt", SAMPLES["notes.txt"], enqueue=False)
    services.documents_ingest(document_ids=[document.id])
    Chunk.objects.filter(document=document).update(embedding_model="old-model")
    Document.objects.filter(id=document.id).update(embedding_model="old-model")
    assert services.documents_reindex() == 1
    assert Document.objects.get(id=document.id).status == "queued"
    stats = services.documents_ingest(document_ids=[document.id])
    assert stats.embedded == stats.chunks > 0  # old-model vectors are not reused
    assert set(Chunk.objects.filter(document=document).values_list("embedding_model", flat=True)) == {
        get_embedder().model_name
    }


def test_reparse_reads_one_type_again_and_keeps_unchanged_vectors(db, collection_a):
    """`reindex --reparse pdf` queues the ready PDFs only; passages read the same are not embedded
    again."""
    pdf, _ = upload(collection_a, "a.pdf", files.pdf_bytes(["Workers restart."]), enqueue=False)
    text, _ = upload(collection_a, "notes.txt", SAMPLES["notes.txt"], enqueue=False)
    services.documents_ingest(document_ids=[pdf.id, text.id])
    out = io.StringIO()
    call_command("reindex", "--reparse", "pdf", stdout=out)
    assert "queued 1 pdf documents" in out.getvalue()
    assert Document.objects.get(id=pdf.id).status == "queued"
    assert Document.objects.get(id=text.id).status == "ready"
    stats = services.documents_ingest(document_ids=[pdf.id])
    assert (stats.ready, stats.embedded, stats.reused) == (1, 0, 1)


def test_sweep_requeues_stuck_and_gives_up_eventually(db, collection_a):
    from django.utils import timezone

    document, _ = upload(collection_a, "n.txt", b"text", enqueue=False)
    old = timezone.now() - timezone.timedelta(hours=1)
    Document.objects.filter(id=document.id).update(status="processing", heartbeat_at=old, attempts=1)
    assert services.documents_sweep_stuck(stuck_after_s=60, max_attempts=3, broker_backlog=5) == [document.id]
    assert Document.objects.get(id=document.id).status == "queued"
    # A queued document behind a busy queue is left alone; with an empty queue it is re-sent.
    Document.objects.filter(id=document.id).update(heartbeat_at=old)
    assert services.documents_sweep_stuck(stuck_after_s=60, max_attempts=3, broker_backlog=5) == []
    assert services.documents_sweep_stuck(stuck_after_s=60, max_attempts=3, broker_backlog=0) == [document.id]
    Document.objects.filter(id=document.id).update(status="processing", heartbeat_at=old, attempts=3)
    assert services.documents_sweep_stuck(stuck_after_s=60, max_attempts=3, broker_backlog=0) == []
    document.refresh_from_db()
    assert document.status == "failed" and "gave up" in document.error
