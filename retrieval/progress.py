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


def _send(team_id: int, events: list[dict], what: str) -> None:
    """Send events to a team's group, in order, through one event loop. Best effort: a failure is
    logged (`what` says which news was lost), never raised; the state is in the database, and a
    page that missed an event polls or reconnects to it."""

    async def send_all() -> None:
        layer = get_channel_layer()
        for event in events:
            await layer.group_send(team_group(team_id), event)

    try:
        async_to_sync(send_all)()
    except Exception:
        log.warning("could not publish %s", what, exc_info=True)


def publish(document, team_id: int) -> None:
    _send(team_id, [document_event(document)], f"progress for document {document.id}")


def publish_deleted(*, document_id: int, collection_id: int, team_id: int) -> None:
    """Tell the team's open library pages that a document is gone (deleted, or replaced by a newer
    version)."""
    event = {"type": "document.deleted", "id": document_id, "collection_id": collection_id}
    _send(team_id, [event], f"the deletion of document {document_id}")


def publish_collection_deleted(*, collection_id: int, team_id: int) -> None:
    """Tell the team's open library pages that a whole collection is gone."""
    event = {"type": "collection.deleted", "id": collection_id}
    _send(team_id, [event], f"the deletion of collection {collection_id}")


def publish_bulk(team_id: int, documents) -> None:
    """One event per document, sent through a single event loop (bulk loads finish many at once)."""
    _send(team_id, [document_event(d) for d in documents], f"progress for {len(documents)} documents")


def publish_member_removed(*, team_id: int, user_id: int) -> None:
    """Tell a member's open library pages that they left the team: their sockets stop hearing its
    documents (they joined its group when they connected; a reconnect joins only the user's teams)."""
    event = {"type": "member.removed", "team_id": team_id, "user_id": user_id}
    _send(team_id, [event], f"the removal of user {user_id} from team {team_id}")
