import io
import json
import zipfile
from datetime import datetime

import pytest
from django.utils import timezone

from chat import selectors, services
from chat.models import Conversation, Feedback, Message
from retrieval import services as retrieval_services

from .conftest import answered, regenerated


@pytest.fixture
def exchange(db, alice, collection_a):
    return answered(
        alice,
        "r1",
        "Leave policy?",
        "25 days [1]",
        collection_ids=[collection_a.id],
        citations=[{"n": 1, "title": "HR"}],
        prompt_tokens=100,
        completion_tokens=20,
    )


@pytest.fixture
def key(db):
    return lambda user: {"HTTP_AUTHORIZATION": f"Bearer {retrieval_services.api_key_create(user=user)[1]}"}


def test_conversation_list_and_detail(client, alice, exchange, key, collection_a):
    listed = client.get("/api/v1/conversations", **key(alice)).json()
    assert [c["id"] for c in listed] == [exchange["conversation_id"]]
    assert listed[0]["title"] == "Leave policy?" and listed[0]["collections"] == [collection_a.id]
    detail = client.get(f"/api/v1/conversations/{exchange['conversation_id']}", **key(alice)).json()
    assert [(m["role"], m["text"], m["status"]) for m in detail["messages"]] == [
        ("user", "Leave policy?", "complete"),
        ("assistant", "25 days [1]", "complete"),
    ]
    assert detail["messages"][1]["sources"] == [{"n": 1, "title": "HR"}]
    assert [m["model"] for m in detail["messages"]] == [None, None]  # none recorded for this answer


def test_conversations_are_searched_by_title_and_message_text_only_among_ones_own(
    client, alice, bob, exchange, key, collection_a
):
    """`q` finds a conversation by its title or by any message's text, in any case; never another's."""
    other = services.exchange_start(
        user=alice, conversation_id=None, request_id="r2", content="Expense limits?", collection_ids=None
    )
    services.exchange_start(
        user=bob, conversation_id=None, request_id="r3", content="Leave for bob?", collection_ids=None
    )

    def found(user, q):
        return [c["id"] for c in client.get("/api/v1/conversations", {"q": q}, **key(user)).json()]

    assert found(alice, "LEAVE") == [exchange["conversation_id"]]  # the title
    assert found(alice, "25 days") == [exchange["conversation_id"]]  # an answer's text
    assert found(alice, "expense") == [other["conversation_id"]]
    assert found(alice, "nothing like this") == []
    assert set(found(alice, "")) == {exchange["conversation_id"], other["conversation_id"]}
    assert len(found(bob, "leave")) == 1 and exchange["conversation_id"] not in found(bob, "leave")


def test_a_searchs_conversations_carry_the_newest_message_that_matched(client, alice, exchange, key):
    """Each result names the newest message holding the words, with a snippet of it; one found by
    its title alone has no match."""
    cid = exchange["conversation_id"]
    later = services.exchange_start(
        user=alice,
        conversation_id=cid,
        request_id="r2",
        content="And how many DAYS for part-time staff?",
        collection_ids=None,
    )

    def results(q):
        return {
            c["id"]: c["match"] for c in client.get("/api/v1/conversations", {"q": q}, **key(alice)).json()
        }

    assert results("days") == {
        cid: {
            "message_id": later["user_message_id"],
            "role": "user",
            "snippet": "And how many DAYS for part-time staff?",
        }
    }
    assert results("25 DAYS")[cid]["message_id"] == exchange["message_id"]
    Conversation.objects.filter(id=cid).update(title="HR questions")
    assert results("hr questions") == {cid: None}  # in the title alone
    assert results("")[cid] is None


def test_a_conversation_exports_as_markdown_with_its_sources(client, alice, bob, exchange, key):
    """Questions, answers and each answer's cited passages, as a Markdown download; never another's."""
    cid = exchange["conversation_id"]
    response = client.get(f"/api/v1/conversations/{cid}/export", **key(alice))
    assert response.status_code == 200
    assert response["Content-Type"] == "text/markdown; charset=utf-8"
    assert response["Content-Disposition"] == 'attachment; filename="Leave policy.md"'
    text = response.content.decode()
    assert text.startswith("# Leave policy?\n")
    assert "## Question\n\nLeave policy?\n" in text and "### Answer\n\n25 days [1]\n" in text
    assert "Sources:\n\n1. **HR**" in text
    assert client.get(f"/api/v1/conversations/{cid}/export", **key(bob)).status_code == 404


def test_every_conversation_exports_as_one_zip_of_markdown_and_json(client, alice, bob, exchange, key):
    """A Markdown file per conversation (two of the same day and title kept apart) and
    conversations.json with every message; another's conversations are not in it."""
    for n in (2, 3):
        answered(
            alice,
            f"r{n}",
            "Expense limits?",
            f"{n}00 euros a night [1]",
            citations=[{"n": 1, "title": "Travel"}],
        )
    answered(bob, "rb", "Bob's question?", "Bob's answer")
    from chat.models import Conversation

    Conversation.objects.filter(id=exchange["conversation_id"]).update(
        folder=services.folder_create(user=alice, name="HR")
    )
    response = client.get("/api/v1/conversations/export", **key(alice))
    assert response.status_code == 200 and response["Content-Type"] == "application/zip"
    assert response["Content-Disposition"].startswith('attachment; filename="docent-conversations-')
    archive = zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content)))
    day = timezone.now().strftime("%Y-%m-%d")
    names = sorted(archive.namelist())
    assert names == sorted(
        [
            f"{day} Expense limits.md",
            f"{day} Expense limits (2).md",
            f"{day} Leave policy.md",
            "conversations.json",
        ]
    )
    listed = json.loads(archive.read("conversations.json"))
    assert [c["title"] for c in listed] == [
        "Expense limits?",
        "Expense limits?",
        "Leave policy?",
    ]  # newest first
    leave = listed[2]
    assert leave["id"] == exchange["conversation_id"] and leave["file"] == f"{day} Leave policy.md"
    assert [c["folder"] for c in listed] == [None, None, "HR"]
    assert [(m["role"], m["text"]) for m in leave["messages"]] == [
        ("user", "Leave policy?"),
        ("assistant", "25 days [1]"),
    ]
    assert leave["messages"][1]["sources"] == [{"n": 1, "title": "HR"}]
    markdown = archive.read(leave["file"]).decode()
    assert "## Question\n\nLeave policy?\n" in markdown and "1. **HR**" in markdown
    assert {archive.read(c["file"]).decode().split("### Answer\n\n")[1][:3] for c in listed[:2]} == {
        "200",
        "300",
    }
    assert b"Bob" not in b"".join(archive.read(n) for n in names)


def test_every_conversation_is_deleted_only_when_meant_and_its_tokens_stay_counted(
    client, alice, bob, exchange, key
):
    answered(alice, "r2", "Expense limits?", "200 euros")
    answered(bob, "rb", "Bob's question?", "Bob's answer")
    used = client.get("/api/v1/usage", **key(alice)).json()
    assert client.delete("/api/v1/conversations", **key(alice)).status_code == 400
    assert Conversation.objects.filter(owner=alice).count() == 2
    gone = client.delete("/api/v1/conversations?all=true", **key(alice))
    assert gone.status_code == 200 and gone.json() == {"deleted": 2}
    assert not Conversation.objects.filter(owner=alice).exists()
    assert Conversation.objects.filter(owner=bob).count() == 1
    assert client.get("/api/v1/usage", **key(alice)).json() == used


def test_a_conversations_model_is_chosen_among_those_offered(client, alice, exchange, key, settings):
    settings.OPENAI_BASE_URL, settings.DOCENT_CHAT_MODEL = "http://127.0.0.1:9/v1", "small"
    settings.DOCENT_CHAT_MODELS = ["big"]
    cid = exchange["conversation_id"]

    def patch(body):
        return client.patch(
            f"/api/v1/conversations/{cid}", body, content_type="application/json", **key(alice)
        )

    assert client.get("/api/v1/chat-models", **key(alice)).json() == {
        "default": "small",
        "models": ["small", "big"],
    }
    before = client.get(f"/api/v1/conversations/{cid}", **key(alice)).json()
    assert before["model"] is None
    chosen = patch({"model": "big"}).json()
    assert chosen["model"] == "big" and chosen["updated_at"] == before["updated_at"]  # not activity
    assert client.get("/api/v1/conversations", **key(alice)).json()[0]["model"] == "big"
    refused = patch({"model": "huge"})
    assert refused.status_code == 400 and "huge" in refused.json()["error"]["message"]
    assert Conversation.objects.get(id=cid).model == "big"
    assert patch({"model": ""}).json()["model"] is None  # the default again
    settings.OPENAI_BASE_URL = ""  # offline, no model is offered
    assert patch({"model": "big"}).status_code == 400
    assert client.get("/api/v1/chat-models", **key(alice)).json() == {"default": None, "models": []}


def test_rename_and_delete(client, alice, exchange, key):
    cid = exchange["conversation_id"]
    renamed = client.patch(
        f"/api/v1/conversations/{cid}", {"title": "Leave"}, content_type="application/json", **key(alice)
    )
    assert renamed.json()["title"] == "Leave"
    assert client.delete(f"/api/v1/conversations/{cid}", **key(alice)).status_code == 204
    assert not Message.objects.exists()


def test_someone_elses_conversation_is_404(client, bob, exchange, key):
    cid = exchange["conversation_id"]
    for method in ("get", "delete"):
        assert getattr(client, method)(f"/api/v1/conversations/{cid}", **key(bob)).status_code == 404
    assert client.get("/api/v1/conversations/not-a-uuid", **key(bob)).status_code == 404
    response = client.post(
        f"/api/v1/messages/{exchange['message_id']}/feedback",
        {"rating": 1},
        content_type="application/json",
        **key(bob),
    )
    assert response.status_code == 404


def test_feedback_and_usage(client, alice, exchange, key, settings):
    response = client.post(
        f"/api/v1/messages/{exchange['message_id']}/feedback",
        {"rating": -1, "comment": "wrong"},
        content_type="application/json",
        **key(alice),
    )
    assert response.status_code == 201
    again = client.post(
        f"/api/v1/messages/{exchange['message_id']}/feedback",
        {"rating": 1},
        content_type="application/json",
        **key(alice),
    )
    assert again.json() == {"rating": 1, "reasons": [], "comment": ""}
    settings.DOCENT_MONTHLY_TOKEN_QUOTA = 1000
    usage = client.get("/api/v1/usage", **key(alice)).json()
    assert usage["prompt_tokens"] == 100 and usage["completion_tokens"] == 20
    assert usage["remaining_tokens"] == 880
    # The period: this month's first instant (UTC) to the next month's.
    since, renews = (datetime.fromisoformat(usage[f]) for f in ("since", "renews"))
    assert (
        since.day == renews.day == 1 and since.hour == renews.hour == 0 and since <= timezone.now() < renews
    )
    assert (renews.year * 12 + renews.month) - (since.year * 12 + since.month) == 1


def test_not_helpful_says_what_was_wrong_and_the_rater_reads_it_back(client, alice, exchange, key):
    """Reasons from those offered (each once, in the offered order) and words; an unknown reason is a
    400 that stores nothing. The conversation's messages carry the caller's own rating, and a shared
    copy carries none."""
    url = f"/api/v1/messages/{exchange['message_id']}/feedback"

    def rate(body):
        return client.post(url, body, content_type="application/json", **key(alice))

    offered = client.get("/api/v1/feedback-reasons", **key(alice)).json()["reasons"]
    assert [r["code"] for r in offered] == [
        "inaccurate",
        "incomplete",
        "sources",
        "off_question",
        "hard_to_read",
    ]
    refused = rate({"rating": -1, "reasons": ["inaccurate", "rude"]})
    assert refused.status_code == 400 and "'rude'" in refused.json()["error"]["message"]
    assert not Feedback.objects.exists()
    given = rate(
        {"rating": -1, "reasons": ["sources", "inaccurate", "sources"], "comment": "  Wrong year.  "}
    )
    assert given.status_code == 201
    assert given.json() == {"rating": -1, "reasons": ["inaccurate", "sources"], "comment": "Wrong year."}

    cid = exchange["conversation_id"]
    messages = client.get(f"/api/v1/conversations/{cid}", **key(alice)).json()["messages"]
    assert [m["feedback"] for m in messages] == [None, given.json()]
    services.conversation_share(conversation=Conversation.objects.get(id=cid))
    shared = Conversation.objects.get(id=cid).shared_messages
    assert all("feedback" not in m for m in shared) and "Wrong year." not in str(shared)


def test_a_shared_conversation_opens_read_only_for_those_who_may_read_its_sources(
    client, alice, bob, make_user, collection_a, key
):
    """One link per share, the same on every call; it opens for the owner and for anyone who may read
    every cited collection, is 404 for others (and for anyone once sharing stops), and sign-in first."""
    from django.test import Client

    from retrieval.models import Membership

    source = {
        "n": 1,
        "title": "HR",
        "collection_id": collection_a.id,
        "document_id": 1,
        "text": "Staff get 25 days.",
    }
    ids = answered(alice, "s1", "Leave policy?", "25 days [1]", citations=[source])
    conversation = f"/api/v1/conversations/{ids['conversation_id']}"
    assert client.get(conversation, **key(alice)).json()["shared_url"] is None
    made = client.post(f"{conversation}/share", **key(alice)).json()["shared_url"]
    assert made.startswith("http://testserver/shared/")
    assert client.post(f"{conversation}/share", **key(alice)).json()["shared_url"] == made
    assert client.get(conversation, **key(alice)).json()["shared_url"] == made
    assert client.post(f"{conversation}/share", **key(bob)).status_code == 404
    path = made.removeprefix("http://testserver")

    carol = make_user("carol")
    retrieval_services.membership_set(team=collection_a.team, user=carol, role=Membership.Role.MEMBER)
    teammate, outsider, owner = Client(), Client(), Client()
    teammate.force_login(carol)
    outsider.force_login(bob)
    owner.force_login(alice)
    page = teammate.get(path)
    assert page.status_code == 200 and page["Referrer-Policy"] == "no-referrer"
    html = page.content.decode()
    assert "Staff get 25 days." in html and "Shared by alice" in html and "Leave policy?" in html
    assert "Shared by you" in owner.get(path).content.decode()
    assert outsider.get(path).status_code == 404
    # What the owner asks after sharing stays theirs until they share again (the same link).
    services.exchange_start(
        user=alice, conversation_id=ids["conversation_id"], request_id="s1b", content="Private follow-up?",
        collection_ids=None,
    )  # fmt: skip
    assert "Private follow-up?" not in teammate.get(path).content.decode()
    updated = client.post(f"{conversation}/share", **key(alice)).json()
    assert updated["shared_url"] == made and updated["shared_at"]
    assert "Private follow-up?" in teammate.get(path).content.decode()
    assert Client().get(path).status_code == 302  # sign in first
    assert owner.get("/shared/not-a-token/").status_code == 404

    assert client.delete(f"{conversation}/share", **key(alice)).status_code == 204
    assert teammate.get(path).status_code == 404 and owner.get(path).status_code == 404
    again = client.post(f"{conversation}/share", **key(alice)).json()["shared_url"]
    assert again != made and teammate.get(again.removeprefix("http://testserver")).status_code == 200


def test_a_shared_link_shows_the_conversation_as_it_was_shared(client, alice, collection_a, key):
    """The link is a copy: an edit of the shared question (which deletes its answer) changes nothing
    there until the owner shares again, and an answer still being written is not frozen half way."""
    from django.test import Client

    ids = answered(
        alice,
        "s3",
        "Leave policy?",
        "Staff get 25 days [1].",
        citations=[{"n": 1, "collection_id": collection_a.id, "text": "Staff get 25 days."}],
    )
    conversation = f"/api/v1/conversations/{ids['conversation_id']}"
    path = (
        client.post(f"{conversation}/share", **key(alice))
        .json()["shared_url"]
        .removeprefix("http://testserver")
    )
    owner = Client()
    owner.force_login(alice)
    shown = lambda: [(m["role"], m["text"]) for m in owner.get(path).context["messages"]]  # noqa: E731
    assert shown() == [("user", "Leave policy?"), ("assistant", "Staff get 25 days [1].")]
    shared_at = Conversation.objects.get(id=ids["conversation_id"]).shared_at
    assert f'<time datetime="{shared_at.isoformat()}' in owner.get(path).content.decode()  # "as it stood on"

    services.question_edit(user=alice, message_id=ids["user_message_id"], content="Sick leave policy?")
    assert shown() == [("user", "Leave policy?"), ("assistant", "Staff get 25 days [1].")]
    client.post(f"{conversation}/share", **key(alice))
    assert shown() == [("user", "Sick leave policy?")]  # its new answer has not started

    # Each share, and the end of sharing, is in the audit log as the owner's.
    client.delete(f"{conversation}/share", **key(alice))
    client.delete(f"{conversation}/share", **key(alice))  # shared no more: nothing to record
    from retrieval.models import AuditEvent

    logged = AuditEvent.objects.filter(target_type="conversation").order_by("id")
    assert [(e.actor_name, e.action, e.target_id, e.details.get("renewed")) for e in logged] == [
        ("alice", "conversation_share", str(ids["conversation_id"]), False),
        ("alice", "conversation_share", str(ids["conversation_id"]), True),
        ("alice", "conversation_unshare", str(ids["conversation_id"]), None),
    ]
    assert logged[0].details["collections"] == [collection_a.id]


def test_a_shared_answer_given_passages_a_viewer_may_not_read_stays_closed_to_them(
    client, alice, make_user, make_team, make_collection, collection_a, key
):
    """The model may echo a passage it was given without citing it: a viewer must be able to read
    those collections too."""
    from django.test import Client

    from retrieval.models import Membership

    private = make_collection(make_team("Board", members=[alice]), "minutes")
    ids = answered(
        alice,
        "s2",
        "Budget?",
        "It grew [1].",
        citations=[{"n": 1, "collection_id": collection_a.id, "text": "It grew."}],
        sources=[{"n": 1, "collection_id": collection_a.id}, {"n": 2, "collection_id": private.id}],
    )
    made = client.post(f"/api/v1/conversations/{ids['conversation_id']}/share", **key(alice)).json()
    carol = make_user("carol")
    retrieval_services.membership_set(team=collection_a.team, user=carol, role=Membership.Role.MEMBER)
    viewer = Client()
    viewer.force_login(carol)
    path = made["shared_url"].removeprefix("http://testserver")
    assert viewer.get(path).status_code == 404
    retrieval_services.membership_set(team=private.team, user=carol, role=Membership.Role.MEMBER)
    assert viewer.get(path).status_code == 200


def test_pinned_conversations_head_the_list_without_reordering_the_rest(client, alice, key):
    made = [
        services.exchange_start(
            user=alice, conversation_id=None, request_id=f"p{i}", content=f"Q{i}?", collection_ids=None
        )["conversation_id"]
        for i in range(3)
    ]
    titles = lambda: [c["title"] for c in client.get("/api/v1/conversations", **key(alice)).json()]  # noqa: E731
    assert titles() == ["Q2?", "Q1?", "Q0?"]
    pin = lambda cid, pinned: client.patch(  # noqa: E731
        f"/api/v1/conversations/{cid}", {"pinned": pinned}, content_type="application/json", **key(alice)
    )
    assert pin(made[0], True).json()["pinned"] is True
    pin(made[1], True)
    assert titles() == ["Q1?", "Q0?", "Q2?"]  # most recently pinned first
    assert pin(made[1], False).json()["pinned"] is False
    assert titles() == ["Q0?", "Q2?", "Q1?"]
    empty = client.patch(
        f"/api/v1/conversations/{made[0]}", {}, content_type="application/json", **key(alice)
    )
    assert empty.status_code == 400


def test_folders_group_conversations_after_the_pinned_ones_and_are_the_owners_alone(client, alice, bob, key):
    """A person's folders: made, renamed and deleted (names unique to them in any case; blank ones
    refused); a conversation moved into one is listed with the folder's, after the pinned ones and
    before the rest, folders by name, without counting as activity; deleting a folder keeps its
    conversations. Another person's folder is a 404 everywhere."""
    from chat.models import Conversation

    made = [
        services.exchange_start(
            user=alice, conversation_id=None, request_id=f"f{i}", content=f"Q{i}?", collection_ids=None
        )["conversation_id"]
        for i in range(4)
    ]
    auth = key(alice)

    def call(method, path, body=None, who=auth):
        return getattr(client, method)(f"/api/v1{path}", body, content_type="application/json", **who)

    def listed():
        return [(c["title"], (c["folder"] or {}).get("name")) for c in call("get", "/conversations").json()]

    trips = call("post", "/folders", {"name": "  Trips\n2026 "})
    assert trips.status_code == 201 and trips.json()["name"] == "Trips 2026"
    budget = call("post", "/folders", {"name": "budget"}).json()
    assert call("post", "/folders", {"name": "TRIPS 2026"}).status_code == 409
    assert call("post", "/folders", {"name": " "}).status_code == 400
    assert call("patch", f"/folders/{budget['id']}", {"name": "trips 2026"}).status_code == 409
    assert call("patch", f"/folders/{budget['id']}", {"name": "Budget"}).json()["name"] == "Budget"
    trips = trips.json()

    before = Conversation.objects.get(id=made[0]).updated_at
    moved = call("patch", f"/conversations/{made[0]}", {"folder_id": trips["id"]}).json()
    assert moved["folder"] == {"id": trips["id"], "name": "Trips 2026"}
    assert Conversation.objects.get(id=made[0]).updated_at == before  # not activity
    call("patch", f"/conversations/{made[1]}", {"folder_id": budget["id"]})
    call("patch", f"/conversations/{made[2]}", {"folder_id": budget["id"], "pinned": True})
    assert listed() == [("Q2?", "Budget"), ("Q1?", "Budget"), ("Q0?", "Trips 2026"), ("Q3?", None)]
    in_budget = call("get", f"/conversations?folder={budget['id']}").json()
    assert [c["title"] for c in in_budget] == ["Q2?", "Q1?"]
    counts = {f["name"]: f["conversations"] for f in call("get", "/folders").json()}
    assert counts == {"Budget": 2, "Trips 2026": 1}
    assert [f["name"] for f in call("get", "/folders").json()] == ["Budget", "Trips 2026"]

    # Out of its folder with null; a folder that is not the caller's is not found.
    assert call("patch", f"/conversations/{made[1]}", {"folder_id": None}).json()["folder"] is None
    theirs = call("post", "/folders", {"name": "Trips 2026"}, who=key(bob)).json()  # a name of their own
    assert call("patch", f"/conversations/{made[3]}", {"folder_id": theirs["id"]}).status_code == 404
    assert call("get", f"/conversations?folder={theirs['id']}").status_code == 404
    for method, body in (("patch", {"name": "mine"}), ("delete", None)):
        assert call(method, f"/folders/{theirs['id']}", body).status_code == 404
    assert [f["name"] for f in call("get", "/folders", who=key(bob)).json()] == ["Trips 2026"]

    # Deleting a folder keeps its conversations, out of any folder.
    assert call("delete", f"/folders/{trips['id']}").status_code == 204
    assert Conversation.objects.filter(id=made[0], folder=None).exists()
    assert listed() == [("Q2?", "Budget"), ("Q3?", None), ("Q1?", None), ("Q0?", None)]


def test_a_folders_instructions_and_collections_are_its_owners_to_set(
    client, alice, bob, collection_a, collection_b, key
):
    """A folder keeps instructions and the collections its new conversations search: only ones its
    owner may read (a refusal changes nothing), and one no longer readable is left out."""
    auth = key(alice)

    def call(method, path, body=None):
        return getattr(client, method)(f"/api/v1{path}", body, content_type="application/json", **auth)

    made = call(
        "post",
        "/folders",
        {"name": "Berlin", "instructions": " Office: Berlin. ", "collections": [collection_a.id]},
    )
    assert made.status_code == 201
    folder = made.json()
    assert (folder["instructions"], folder["collections"]) == ("Office: Berlin.", [collection_a.id])
    url = f"/folders/{folder['id']}"
    refused = call("patch", url, {"name": "Munich", "collections": [collection_b.id]})
    assert refused.status_code == 400 and str(collection_b.id) in refused.json()["error"]["message"]
    assert call("patch", url, {"instructions": "x" * 1501}).status_code == 400
    assert call("get", url).json() | {"created_at": None} == folder | {"created_at": None}  # nothing changed
    assert call("post", "/folders", {"name": "Other", "collections": [collection_b.id]}).status_code == 400
    assert [f["name"] for f in call("get", "/folders").json()] == ["Berlin"]  # not made either

    changed = call("patch", url, {"instructions": "", "collections": []}).json()
    assert (changed["name"], changed["instructions"], changed["collections"]) == ("Berlin", "", [])
    call("patch", url, {"collections": [collection_a.id]})
    from retrieval import services as retrieval_services

    retrieval_services.collection_delete(collection=collection_a)
    assert call("get", url).json()["collections"] == []
    assert client.get(f"/api/v1{url}", **key(bob)).status_code == 404


def test_a_teams_admins_read_what_each_member_spent_this_month(
    client, alice, bob, make_user, make_team, key, settings
):
    """GET /api/v1/teams/{id}/usage: each member's answers and tokens since the month began (last
    month's left out), most first, with their quota; for the team's admins alone."""
    from datetime import timedelta

    from chat.models import Budget, Usage

    settings.DOCENT_MONTHLY_TOKEN_QUOTA = 50_000
    carol = make_user("carol")
    team = make_team("Ops", members=[alice], role="admin")
    retrieval_services.membership_set(team=team, user=bob)
    make_team("Elsewhere", members=[carol])
    Budget.objects.create(user=bob, monthly_tokens=0)  # unlimited
    for user, prompt, completion in [(bob, 900, 100), (bob, 400, 100), (alice, 200, 50), (carol, 5000, 0)]:
        Usage.objects.create(user=user, source="chat", prompt_tokens=prompt, completion_tokens=completion)
    old = Usage.objects.create(user=alice, source="api", prompt_tokens=10_000, completion_tokens=0)
    Usage.objects.filter(id=old.id).update(created_at=old.created_at - timedelta(days=40))

    response = client.get(f"/api/v1/teams/{team.id}/usage", **key(alice))
    assert response.status_code == 200
    body = response.json()
    assert [
        (m["username"], m["role"], m["answers"], m["tokens"], m["quota_tokens"]) for m in body["members"]
    ] == [
        ("bob", "member", 2, 1500, None),
        ("alice", "admin", 1, 250, 50_000),
    ]
    assert body["since"] < body["renews"] and body["since"][8:10] == body["renews"][8:10] == "01"
    refused = client.get(f"/api/v1/teams/{team.id}/usage", **key(bob))
    assert refused.status_code == 403 and "only an admin of team Ops" in refused.json()["error"]["message"]
    assert client.get(f"/api/v1/teams/{team.id}/usage", **key(carol)).status_code == 404


def test_an_archived_conversation_leaves_the_list_until_asked_in_again(client, alice, bob, key):
    """Archiving is not activity (nor is bringing back) and unpins; `archived=true` lists the archived
    ones, search included; a question, an edit or a regeneration in one brings it back."""
    made = [
        services.exchange_start(
            user=alice, conversation_id=None, request_id=f"z{i}", content=f"Q{i}?", collection_ids=None
        )
        for i in range(3)
    ]

    def titles(**params):
        return [c["title"] for c in client.get("/api/v1/conversations", params, **key(alice)).json()]

    def archive(ids, archived=True, user=alice):
        return client.patch(
            f"/api/v1/conversations/{ids['conversation_id']}",
            {"archived": archived},
            content_type="application/json",
            **key(user),
        )

    client.patch(
        f"/api/v1/conversations/{made[0]['conversation_id']}",
        {"pinned": True},
        content_type="application/json",
        **key(alice),
    )
    assert archive(made[0]).json()["archived"] is True and archive(made[0], user=bob).status_code == 404
    assert archive(made[1]).json()["pinned"] is False
    assert titles() == ["Q2?"]
    assert titles(archived="true") == ["Q1?", "Q0?"] and titles(archived="true", q="Q0") == ["Q0?"]
    assert titles(with_archived="true") == ["Q2?", "Q1?", "Q0?"]  # the archived ones last
    assert titles(with_archived="true", q="Q") == ["Q2?", "Q1?", "Q0?"]
    assert archive(made[0], archived=False).json()["pinned"] is False
    assert titles() == ["Q2?", "Q0?"]  # its place by its last activity, not moved up

    for n, (ids, again) in enumerate(
        [
            (made[1], lambda ids: services.exchange_start(
                user=alice, conversation_id=ids["conversation_id"], request_id="z9", content="More?",
                collection_ids=None,
            )),
            (made[2], lambda ids: services.answer_regenerate(user=alice, message_id=ids["message_id"])),
        ]
    ):  # fmt: skip
        archive(ids)
        assert ids["conversation_id"] in {
            c["id"] for c in client.get("/api/v1/conversations?archived=true", **key(alice)).json()
        }
        services.message_finish(message_id=ids["message_id"], text="...", status="complete")
        again(ids)
        assert Conversation.objects.get(id=ids["conversation_id"]).archived_at is None, n
    archive(made[0])
    services.message_finish(message_id=made[0]["message_id"], text="...", status="complete")
    services.question_edit(user=alice, message_id=made[0]["user_message_id"], content="Q0 again?")
    assert Conversation.objects.get(id=made[0]["conversation_id"]).archived_at is None


def test_saved_prompts_are_the_callers_own_by_name(client, alice, bob, key):
    def call(method, path="", body=None, user=alice):
        return getattr(client, method)(
            f"/api/v1/prompts{path}", body, content_type="application/json", **key(user)
        )

    made = call("post", body={"name": "Leave", "text": "How much leave?"})
    assert made.status_code == 201 and made.json()["name"] == "leave"
    pid = made.json()["id"]
    call("post", body={"name": "expenses", "text": "How are expenses paid?"})
    assert [p["name"] for p in call("get").json()] == ["expenses", "leave"]
    twice = call("post", body={"name": "LEAVE", "text": "Again"})
    assert twice.status_code == 400 and "/leave" in twice.json()["error"]["message"]
    assert call("post", body={"name": "-x", "text": "Hi"}).status_code == 400
    assert call("post", body={"name": "long", "text": "x" * 4001}).status_code == 400
    assert (
        call("put", f"/{pid}", {"name": "leave", "text": "How much paid leave?"}).json()["text"]
        == "How much paid leave?"
    )
    assert call("put", f"/{pid}", {"name": "expenses", "text": "Clash"}).status_code == 400
    assert call("get", user=bob).json() == []
    assert call("put", f"/{pid}", {"name": "x", "text": "y"}, user=bob).status_code == 404
    assert call("delete", f"/{pid}", user=bob).status_code == 404
    assert call("delete", f"/{pid}").status_code == 204
    assert [p["name"] for p in call("get").json()] == ["expenses"]


def test_a_teams_prompts_are_kept_by_its_admins_and_used_by_its_members(
    client, alice, bob, make_user, make_team, key
):
    carol = make_user("carol")
    ops = make_team("Ops", members=[alice], role="admin")
    from retrieval import services as team_services

    team_services.membership_set(team=ops, user=bob, role="member")
    make_team("Other", members=[carol], role="admin")

    def call(method, path="", body=None, user=alice):
        return getattr(client, method)(
            f"/api/v1/prompts{path}", body, content_type="application/json", **key(user)
        )

    shared = call("post", body={"name": "oncall", "text": "Who is on call this week?", "team_id": ops.id})
    assert shared.status_code == 201
    assert shared.json() | {"id": 0} == {
        "id": 0,
        "name": "oncall",
        "text": "Who is on call this week?",
        "team_id": ops.id,
        "team": "Ops",
        "editable": True,
    }
    sid = shared.json()["id"]
    # A team's name and a person's own are apart: Bob keeps his own /oncall beside the team's.
    assert call("post", body={"name": "oncall", "text": "My rota?"}, user=bob).status_code == 201
    twice = call("post", body={"name": "OnCall", "text": "Again", "team_id": ops.id})
    assert twice.status_code == 400 and "the team already keeps" in twice.json()["error"]["message"]

    # Members use it (their own first), but only the team's admins change or delete it.
    listed = call("get", user=bob).json()
    assert [(p["name"], p["team"], p["editable"]) for p in listed] == [
        ("oncall", None, True),
        ("oncall", "Ops", False),
    ]
    assert call("post", body={"name": "x", "text": "y", "team_id": ops.id}, user=bob).status_code == 403
    assert call("put", f"/{sid}", {"name": "oncall", "text": "Mine now"}, user=bob).status_code == 404
    assert call("delete", f"/{sid}", user=bob).status_code == 404
    # Another team's: not seen, not kept for it, not touched.
    assert call("get", user=carol).json() == []
    assert call("post", body={"name": "x", "text": "y", "team_id": ops.id}, user=carol).status_code == 404
    assert call("delete", f"/{sid}", user=carol).status_code == 404
    # An admin's change stays the team's.
    changed = call("put", f"/{sid}", {"name": "rota", "text": "Who is on call today?"})
    assert (changed.json()["team_id"], changed.json()["name"]) == (ops.id, "rota")
    assert call("delete", f"/{sid}").status_code == 204
    assert [p["team"] for p in call("get", user=bob).json()] == [None]


def test_a_conversations_documents_leave_its_scope_with_their_collection(client, alice, collection_a, key):
    from chat import selectors
    from chat.models import Conversation
    from retrieval.tests.helpers import upload

    document, _ = upload(collection_a, "notes.txt", b"Some notes.", enqueue=False)
    ids = services.exchange_start(
        user=alice, conversation_id=None, request_id="d1", content="Notes?", collection_ids=None,
        document_ids=[document.id],
    )  # fmt: skip
    conversation = Conversation.objects.get(id=ids["conversation_id"])
    detail = client.get(f"/api/v1/conversations/{conversation.id}", **key(alice)).json()
    assert detail["documents"] == [{"id": document.id, "title": "notes"}]
    assert selectors.conversation_documents(conversation=conversation) == [document.id]
    retrieval_services.collection_delete(collection=collection_a)  # its purge has yet to run
    assert selectors.conversation_documents(conversation=conversation) == []
    # The page reads its scope from here and sends it back with each question: it must agree.
    assert client.get(f"/api/v1/conversations/{conversation.id}", **key(alice)).json()["documents"] == []


def test_the_conversation_list_comes_in_pages(client, alice, key):
    """200 at most a page: `offset` reaches the rest, each conversation on exactly one page, even
    among conversations updated at the same moment; `limit` is held between 1 and 200."""
    made = Conversation.objects.bulk_create(Conversation(owner=alice, title=f"C{i}") for i in range(230))
    Conversation.objects.filter(id__in=[c.id for c in made]).update(updated_at=timezone.now())
    auth = key(alice)

    def titles(**params):
        return [c["title"] for c in client.get("/api/v1/conversations", params, **auth).json()]

    first, rest = titles(), titles(offset=200)
    assert len(first) == 200 and len(rest) == 30
    assert sorted(first + rest) == sorted(c.title for c in made)
    assert titles(limit=10, offset=5) == first[5:15]
    assert len(titles(limit=1000)) == 200 and len(titles(limit=0)) == 1
    assert titles(offset=-3) == first
    found = titles(q="C22")
    assert sorted(found) == sorted(["C22"] + [f"C22{i}" for i in range(10)])
    assert titles(q="C22", limit=5, offset=10) == found[10:]


def test_an_answer_regenerated_after_later_exchanges_starts_a_branch(client, alice, key):
    """The new version is shown without the exchanges that followed the old one; those stay with the
    old version, and come back with it when the reader turns to it. The export writes what is shown."""
    first = answered(alice, "r1", "Leave policy?", "25 days.")
    cid = first["conversation_id"]
    second = answered(alice, "r2", "Travel?", "Economy.", conversation_id=cid)
    again = regenerated(alice, first["message_id"], "r3", "Twenty-five days.")

    def listed():
        messages = client.get(f"/api/v1/conversations/{cid}", **key(alice)).json()["messages"]
        return [(m["id"], m["reply_to"], m["parent"], m["shown"]) for m in messages]

    def exported():
        return client.get(f"/api/v1/conversations/{cid}/export", **key(alice)).content.decode()

    assert listed() == [
        (first["user_message_id"], None, None, True),
        (first["message_id"], first["user_message_id"], None, False),
        (again["message_id"], first["user_message_id"], None, True),
        (second["user_message_id"], None, first["message_id"], False),
        (second["message_id"], second["user_message_id"], None, False),
    ]
    text = exported()
    assert "### Answer (version 2 of 2)\n\nTwenty-five days." in text
    assert "25 days." not in text and "Travel?" not in text
    # A message deep in the branch not shown, chosen (a search found it there): it comes into view
    # with the versions it follows.
    assert client.post(f"/api/v1/messages/{second['message_id']}/choose", **key(alice)).status_code == 204
    assert [shown for *_, shown in listed()] == [True, True, False, True, True]
    services.message_choose(user=alice, message_id=again["message_id"])
    assert [shown for *_, shown in listed()] == [True, False, True, False, False]

    assert client.post(f"/api/v1/messages/{first['message_id']}/choose", **key(alice)).status_code == 204
    assert [shown for *_, shown in listed()] == [True, True, False, True, True]
    text = exported()
    assert text.index("(version 1 of 2)\n\n25 days.") < text.index("Travel?") < text.index("Economy.")
    assert "Twenty-five days." not in text
    # A question asked now follows the end of the thread shown.
    third = services.exchange_start(
        user=alice, conversation_id=cid, request_id="r4", content="Hotels?", collection_ids=None
    )
    assert listed()[-2:] == [
        (third["user_message_id"], None, second["message_id"], True),
        (third["message_id"], third["user_message_id"], None, True),
    ]


def test_a_question_reads_the_exchanges_of_its_own_branch(client, alice, bob, key):
    """Of a regenerated answer's versions, the one shown when a question is asked is what that
    question's history holds, whatever is chosen later; another user cannot choose for them."""
    first = answered(alice, "r1", "Leave policy?", "25 days.")
    cid = first["conversation_id"]
    again = regenerated(alice, first["message_id"], "r2", "Twenty-five days.")
    follow_up = answered(alice, "r3", "And sick leave?", "Ten days.", conversation_id=cid)

    def history(question):
        return selectors.generation_context(message_id=question["message_id"])["history"]

    assert history(follow_up) == [("user", "Leave policy?"), ("assistant", "Twenty-five days.")]
    url = f"/api/v1/messages/{first['message_id']}/choose"
    assert client.post(url, **key(bob)).status_code == 404
    assert client.post("/api/v1/messages/not-a-uuid/choose", **key(alice)).status_code == 404
    assert client.post(url, **key(alice)).status_code == 204
    assert history(follow_up) == [("user", "Leave policy?"), ("assistant", "Twenty-five days.")]
    chosen = {
        m["id"]: m["chosen_at"]
        for m in client.get(f"/api/v1/conversations/{cid}", **key(alice)).json()["messages"]
    }
    assert chosen[first["message_id"]] > chosen[again["message_id"]]  # made chosen, then turned from
    on_first = services.exchange_start(
        user=alice, conversation_id=cid, request_id="r4", content="And parental?", collection_ids=None
    )
    assert history(on_first) == [("user", "Leave policy?"), ("assistant", "25 days.")]
    # A newer version made since is the one a question asked after it reads.
    services.message_finish(message_id=on_first["message_id"], text="Four months.", status="complete")
    regenerated(alice, first["message_id"], "r5", "Twenty-five, paid.")
    last = services.exchange_start(
        user=alice, conversation_id=cid, request_id="r6", content="And unpaid?", collection_ids=None
    )
    assert history(last) == [("user", "Leave policy?"), ("assistant", "Twenty-five, paid.")]
