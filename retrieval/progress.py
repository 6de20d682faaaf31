"""Pushes document progress to the uploaders' browsers over the channel layer.

Progress is a handful of small events per document, so it crosses the layer; failures to publish
never fail ingestion (the REST status endpoint and the page's polling fallback still tell the truth).
"""

import logging

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

log = logging.getLogger(__name__)


def team_group(team_id: int) -> str:
    return f"documents.team.{team_id}"


def document_event(document) -> dict:
    return {
        "type": "document.progress",
        "id": document.id,
        "collection_id": document.collection_id,
        "title": document.title,
        "status": document.status,
        "progress": round(document.progress, 3),
        "error": document.error or None,
        "chunks": document.chunk_count,
    }


def publish(document, team_id: int) -> None:
    try:
        async_to_sync(get_channel_layer().group_send)(team_group(team_id), document_event(document))
    except Exception:  # a progress event is best effort; the document's state is in the database
        log.warning("could not publish progress for document %s", document.id, exc_info=True)


def publish_deleted(*, document_id: int, collection_id: int, team_id: int) -> None:
    """Tell the team's open library pages that a document is gone (deleted, or replaced by a newer
    version)."""
    try:
        async_to_sync(get_channel_layer().group_send)(
            team_group(team_id),
            {"type": "document.deleted", "id": document_id, "collection_id": collection_id},
        )
    except Exception:  # best effort, as above
        log.warning("could not publish the deletion of document %s", document_id, exc_info=True)


def publish_collection_deleted(*, collection_id: int, team_id: int) -> None:
    """Tell the team's open library pages that a whole collection is gone."""
    try:
        async_to_sync(get_channel_layer().group_send)(
            team_group(team_id), {"type": "collection.deleted", "id": collection_id}
        )
    except Exception:  # best effort, as above
        log.warning("could not publish the deletion of collection %s", collection_id, exc_info=True)


def publish_bulk(team_id: int, documents) -> None:
    """One event per document, sent through a single event loop (bulk loads finish many at once)."""

    async def send_all() -> None:
        layer = get_channel_layer()
        for document in documents:
            await layer.group_send(team_group(team_id), document_event(document))

    try:
        async_to_sync(send_all)()
    except Exception:  # best effort, as above
        log.warning("could not publish progress for %d documents", len(documents), exc_info=True)


def publish_member_removed(*, team_id: int, user_id: int) -> None:
    """Tell a member's open library pages that they left the team: their sockets stop hearing its
    documents (they joined its group when they connected)."""
    try:
        async_to_sync(get_channel_layer().group_send)(
            team_group(team_id), {"type": "member.removed", "team_id": team_id, "user_id": user_id}
        )
    except Exception:  # best effort, as above; a reconnect joins only the teams the user is in
        log.warning("could not publish the removal of user %s from team %s", user_id, team_id, exc_info=True)
