import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.test import Client

from assistant.asgi import application

from .helpers import upload

ORIGIN = (b"origin", b"http://localhost")


def session_headers(user) -> list[tuple[bytes, bytes]]:
    client = Client()
    client.force_login(user)
    return [ORIGIN, (b"cookie", f"sessionid={client.cookies['sessionid'].value}".encode())]


async def documents_socket(user) -> WebsocketCommunicator:
    """A library page's progress socket, signed in as `user` (not yet connected)."""
    return WebsocketCommunicator(
        application, "/ws/documents/", headers=await sync_to_async(session_headers)(user)
    )


@pytest.mark.django_db(transaction=True)
async def test_progress_events_reach_the_uploaders_team(worker, alice, bob, collection_a, team_b):
    """Queued (as the upload commits) -> processing -> ready arrive over /ws/documents/; another
    team hears nothing."""
    mine = await documents_socket(alice)
    theirs = await documents_socket(bob)
    assert (await mine.connect())[0] and (await theirs.connect())[0]
    document, _ = await sync_to_async(upload)(
        collection_a, "n.md", b"# Notes\n\n" + b"Words about things. " * 300
    )
    events = []
    while not events or events[-1]["status"] not in ("ready", "failed"):
        events.append(await mine.receive_json_from(timeout=60))
    assert all(e["id"] == document.id and e["type"] == "progress" for e in events)
    statuses = [e["status"] for e in events]
    assert statuses[:2] == ["queued", "processing"] and statuses[-1] == "ready"
    progress = [e["progress"] for e in events]
    assert progress == sorted(progress) and progress[-1] == 1.0
    assert events[-1]["chunks"] >= 1
    # What a page needs for a row of its own: the type and size, as the REST API says them.
    assert {(e["kind"], e["size"]) for e in events} == {("markdown", document.size)}
    assert await theirs.receive_nothing(timeout=0.5)
    await mine.disconnect()
    await theirs.disconnect()


@pytest.mark.django_db(transaction=True)
async def test_a_deleted_document_is_announced_to_its_team(alice, bob, collection_a):
    from retrieval import services

    document, _ = await sync_to_async(upload)(collection_a, "gone.md", b"# Gone\n\nSoon.", enqueue=False)
    mine = await documents_socket(alice)
    theirs = await documents_socket(bob)
    assert (await mine.connect())[0] and (await theirs.connect())[0]
    document_id = document.id
    await sync_to_async(services.document_delete)(document=document)
    assert await mine.receive_json_from(timeout=10) == {
        "type": "deleted",
        "id": document_id,
        "collection_id": collection_a.id,
    }
    assert await theirs.receive_nothing(timeout=0.5)
    await mine.disconnect()
    await theirs.disconnect()


@pytest.mark.django_db(transaction=True)
async def test_a_renamed_document_is_announced_to_its_team(alice, bob, collection_a):
    from retrieval import services

    document, _ = await sync_to_async(upload)(collection_a, "q3.md", b"# Plan\n\nSoon.", enqueue=False)
    mine = await documents_socket(alice)
    theirs = await documents_socket(bob)
    assert (await mine.connect())[0] and (await theirs.connect())[0]
    await sync_to_async(services.document_rename)(document=document, title="Q3 plan")
    assert await mine.receive_json_from(timeout=10) == {
        "type": "renamed",
        "id": document.id,
        "collection_id": collection_a.id,
        "title": "Q3 plan",
    }
    assert await theirs.receive_nothing(timeout=0.5)
    await mine.disconnect()
    await theirs.disconnect()


@pytest.mark.django_db(transaction=True)
async def test_a_deleted_collection_is_announced_to_its_team(alice, bob, collection_a):
    from retrieval import services

    mine = await documents_socket(alice)
    theirs = await documents_socket(bob)
    assert (await mine.connect())[0] and (await theirs.connect())[0]
    await sync_to_async(services.collection_delete)(collection=collection_a)
    assert await mine.receive_json_from(timeout=10) == {"type": "collection_deleted", "id": collection_a.id}
    assert await theirs.receive_nothing(timeout=0.5)
    await mine.disconnect()
    await theirs.disconnect()


@pytest.mark.django_db(transaction=True)
async def test_anonymous_socket_is_refused():
    communicator = WebsocketCommunicator(application, "/ws/documents/", headers=[ORIGIN])
    connected, _ = await communicator.connect()
    assert not connected


@pytest.mark.django_db(transaction=True)
async def test_open_progress_sockets_are_counted_in_metrics(alice):
    """Accepted sockets count in docent_websocket_connections{path="documents"}, once each; refused
    ones never do."""
    from prometheus_client import REGISTRY

    def open_sockets() -> float:
        return REGISTRY.get_sample_value("docent_websocket_connections", {"path": "documents"}) or 0.0

    before = open_sockets()
    refused = WebsocketCommunicator(application, "/ws/documents/", headers=[ORIGIN])
    assert not (await refused.connect())[0]
    assert open_sockets() == before
    socket = await documents_socket(alice)
    assert (await socket.connect())[0]
    assert open_sockets() == before + 1
    await socket.disconnect()
    assert open_sockets() == before


# Foreign origins are refused by the validator that wraps every websocket route; that is tested once,
# in chat/tests/test_consumers.py::test_anonymous_and_foreign_origin_refused.


@pytest.mark.django_db(transaction=True)
async def test_a_removed_member_stops_hearing_the_team(alice, make_user, team_a, collection_a):
    """Removed from the team, a member's open socket is told so and hears none of its documents
    after; the members who stay go on hearing them."""
    from retrieval import services

    carol = await sync_to_async(make_user)("carol")
    await sync_to_async(services.membership_set)(team=team_a, user=carol)
    document, _ = await sync_to_async(upload)(collection_a, "plan.md", b"# Plan\n\nSoon.", enqueue=False)
    staying = await documents_socket(alice)
    leaving = await documents_socket(carol)
    assert (await staying.connect())[0] and (await leaving.connect())[0]
    await sync_to_async(services.membership_change)(team=team_a, user=carol, role=None)
    assert await leaving.receive_json_from(timeout=10) == {"type": "team_left", "team_id": team_a.id}
    assert await staying.receive_nothing(timeout=0.3)  # not about alice: nothing for her page
    await sync_to_async(services.document_delete)(document=document)
    assert (await staying.receive_json_from(timeout=10))["type"] == "deleted"
    assert await leaving.receive_nothing(timeout=0.5)
    await staying.disconnect()
    await leaving.disconnect()


@pytest.mark.django_db(transaction=True)
async def test_teams_a_collection_is_shared_with_hear_its_news(
    alice, bob, make_user, make_team, collection_a, team_b, monkeypatch
):
    """A team the collection is shared with hears that it is, then a new document, its deletion and
    the collection's own; when every team reads it, so does every user with a team (not one
    without), each once; a share withdrawn is told and stops the news at once; a share saved
    unchanged tells nobody."""
    from retrieval import services, tasks

    for task in (tasks.ingest_documents, tasks.purge_collection):  # the news, not the work
        monkeypatch.setattr(task, "delay", lambda *a, **k: None)
    carol = await sync_to_async(make_user)("carol")
    await sync_to_async(make_team)("Gamma", [carol])
    dave = await sync_to_async(make_user)("dave")  # in no team
    sockets = {
        name: await documents_socket(user)
        for name, user in [("alice", alice), ("bob", bob), ("carol", carol), ("dave", dave)]
    }
    for socket in sockets.values():
        assert (await socket.connect())[0]
    shared = {"type": "collection_shared", "id": collection_a.id}
    unshared = {"type": "collection_unshared", "id": collection_a.id}

    async def heard(*names, event):
        """Each of `names` hears `event` next (its fields; the end checks that nothing more came)."""
        for name in names:
            got = await sockets[name].receive_json_from(timeout=10)
            assert got == event or {k: got.get(k) for k in event} == event, (name, got)

    await sync_to_async(services.collection_share)(collection=collection_a, teams=[team_b.id])
    await heard("bob", event=shared)
    await sync_to_async(services.collection_share)(collection=collection_a, teams=[team_b.id])
    document, _ = await sync_to_async(upload)(collection_a, "plan.md", b"# Plan\n\nSoon.")
    queued = {"type": "progress", "id": document.id, "collection_id": collection_a.id, "title": "plan"}
    await heard("alice", "bob", event=queued | {"status": "queued"})  # no news of the unchanged share
    assert await sockets["carol"].receive_nothing(timeout=0.3)

    # Every team reads it: every user with a team is told, once (the everyone group alone).
    await sync_to_async(services.collection_share)(collection=collection_a, teams=[], everyone=True)
    await heard("alice", "bob", "carol", event=shared)
    document_id = document.id
    await sync_to_async(services.document_delete)(document=document)
    gone = {"type": "deleted", "id": document_id, "collection_id": collection_a.id}
    await heard("alice", "bob", "carol", event=gone)
    assert await sockets["dave"].receive_nothing(timeout=0.3)

    # No longer: everyone is told, and each page asks whether it still reads it (bob's team does).
    await sync_to_async(services.collection_share)(collection=collection_a, teams=[team_b.id], everyone=False)
    await heard("alice", "bob", "carol", event=unshared)
    await sync_to_async(services.collection_delete)(collection=collection_a)
    await heard("alice", "bob", event={"type": "collection_deleted", "id": collection_a.id})
    assert await sockets["carol"].receive_nothing(timeout=0.3)
    for socket in sockets.values():
        assert await socket.receive_nothing(timeout=0.1)
        await socket.disconnect()
