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
