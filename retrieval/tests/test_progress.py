import logging

import pytest

from retrieval import progress
from retrieval.models import Document

from .helpers import upload


class _Down:
    async def group_send(self, group, event):
        raise ConnectionError("Redis is away")


def test_a_lost_event_is_logged_and_never_raised(monkeypatch, caplog, collection_a):
    """Progress is news, not state: with the channel layer down, publishing logs what was lost and
    lets ingestion (or the deletion, or the membership change) go on."""
    monkeypatch.setattr(progress, "get_channel_layer", lambda: _Down())
    with caplog.at_level(logging.WARNING, logger="retrieval.progress"):
        progress.publish_deleted(document_id=7, collection_id=collection_a.id)
        progress.publish_member_removed(team_id=1, user_id=9)
    assert [r.getMessage() for r in caplog.records] == [
        "could not publish the deletion of document 7",
        "could not publish the removal of user 9 from team 1",
    ]


@pytest.mark.django_db
def test_the_uploads_own_event_names_its_uploader_and_a_workers_reads_no_one(
    alice, collection_a, django_assert_num_queries
):
    """The upload's first event adds the row on other library pages, with who uploaded it; the
    worker's many progress events read the document alone (no query for the uploader)."""
    document, _ = upload(collection_a, "memo.md", b"# Memo\n\nThe quarter closed.", user=alice, enqueue=False)
    assert progress.document_event(document)["uploaded_by"] == "alice"
    loaded = Document.objects.get(id=document.id)
    with django_assert_num_queries(0):
        assert progress.document_event(loaded)["uploaded_by"] is None
    scripted, _ = upload(collection_a, "note.md", b"# Note\n\nA note.", enqueue=False)
    assert progress.document_event(scripted)["uploaded_by"] is None
