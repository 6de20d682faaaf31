import logging

from retrieval import progress


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
