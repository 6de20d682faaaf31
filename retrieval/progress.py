"""Pushes document news (progress, deletions) to the library pages of everyone who reads them.

Progress is a handful of small events per document, so it crosses the layer; failures to publish
never fail ingestion (the REST status endpoint and the page's polling fallback still tell the truth).

A collection's news goes to its own team's group and the groups of the teams it is shared with, or
to the everyone group alone when every team reads it; a socket joins the groups of its user's teams (and
the everyone group, when the user has a team) as it connects. The readers are looked up at each
send, so a share withdrawn stops the news at once.
"""

import logging
from collections.abc import Iterable, Sequence

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

from . import selectors
from .models import Document

log = logging.getLogger(__name__)

EVERYONE_GROUP = "documents.everyone"


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
        "kind": document.kind,
        "size": document.size,
        # Seconds since the epoch: a library page adds a row for a document newer than itself.
        "created": round(document.created_at.timestamp(), 3),
        "url": document.source_url or None,  # a web page's address (a web source's document)
        "uploaded_by": _uploader(document),
    }


def _uploader(document) -> str | None:
    """Who uploaded it, when the event's document holds them already (the upload's own first event,
    which adds the row on other library pages): a worker's many progress events do not read them."""
    if document.source_id or not Document.uploaded_by.is_cached(document) or document.uploaded_by is None:
        return None
    return document.uploaded_by.get_username()


def _groups(collection_ids: Iterable[int]) -> dict[int, list[str]]:
    """The groups that hear each collection's news: the everyone group alone when every team reads
    it (every member of a team is in it; a team's group too would tell them twice)."""
    readers = selectors.collection_readers(collection_ids=list(set(collection_ids)))
    return {
        cid: [EVERYONE_GROUP] if everyone else [team_group(t) for t in sorted(teams)]
        for cid, (teams, everyone) in readers.items()
    }


def _send(messages: Sequence[tuple[str, dict]], what: str) -> None:
    """Send (group, event) pairs, in order, through one event loop. Best effort: a failure is
    logged (`what` says which news was lost), never raised; the state is in the database, and a
    page that missed an event polls or reconnects to it."""

    async def send_all() -> None:
        layer = get_channel_layer()
        for group, event in messages:
            await layer.group_send(group, event)

    try:
        async_to_sync(send_all)()
    except Exception:
        log.warning("could not publish %s", what, exc_info=True)


def _to_readers(events: Sequence[dict], what: str) -> None:
    """Each event (which names its `collection_id`) to the groups of those who read the collection."""
    if not events:
        return
    try:
        groups = _groups(e["collection_id"] for e in events)
    except Exception:
        log.warning("could not publish %s", what, exc_info=True)
        return
    _send([(g, e) for e in events for g in groups.get(e["collection_id"], ())], what)


def publish(document) -> None:
    _to_readers([document_event(document)], f"progress for document {document.id}")


def publish_bulk(documents) -> None:
    """One event per document, sent through a single event loop (bulk loads finish many at once)."""
    _to_readers([document_event(d) for d in documents], f"progress for {len(documents)} documents")


def publish_deleted(*, document_id: int, collection_id: int) -> None:
    """Tell the open library pages that a document is gone (deleted, or replaced by a newer
    version)."""
    event = {"type": "document.deleted", "id": document_id, "collection_id": collection_id}
    _to_readers([event], f"the deletion of document {document_id}")


def publish_renamed(*, id: int, collection_id: int, title: str) -> None:
    """Tell the open library pages a document's new title. An event of its own: progress events
    from a worker carry the title it loaded, which may be older."""
    event = {"type": "document.renamed", "id": id, "collection_id": collection_id, "title": title}
    _to_readers([event], f"the new title of document {id}")


def publish_collection_deleted(*, collection_id: int) -> None:
    """Tell the open library pages that a whole collection is gone (it is only marked deleted until
    the purge, so its readers are still known)."""
    event = {"type": "collection.deleted", "id": collection_id, "collection_id": collection_id}
    _to_readers([event], f"the deletion of collection {collection_id}")


def publish_readers_changed(
    *, collection_id: int, before: tuple[set[int], bool], after: tuple[set[int], bool]
) -> None:
    """Tell the pages of teams that now read a collection (`after`: its teams, and whether every team
    reads it; `before` likewise) that they may, and those of teams that no longer do that they may
    not. A page asks the server before it adds or drops the collection: its user may read it
    through another team, or with every team."""
    (was, was_everyone), (now, now_everyone) = before, after
    if now_everyone:
        gained, lost = ([] if was_everyone else [EVERYONE_GROUP]), []
    elif was_everyone:
        gained, lost = [], [EVERYONE_GROUP]
    else:
        gained, lost = [team_group(t) for t in sorted(now - was)], [team_group(t) for t in sorted(was - now)]
    messages = [(g, {"type": "collection.shared", "id": collection_id}) for g in gained]
    messages += [(g, {"type": "collection.unshared", "id": collection_id}) for g in lost]
    if messages:
        _send(messages, f"the readers of collection {collection_id}")


def publish_member_removed(*, team_id: int, user_id: int) -> None:
    """Tell a member's open library pages that they left the team: their sockets stop hearing its
    documents (they joined its group when they connected; a reconnect joins only the user's teams)."""
    event = {"type": "member.removed", "team_id": team_id, "user_id": user_id}
    _send([(team_group(team_id), event)], f"the removal of user {user_id} from team {team_id}")
