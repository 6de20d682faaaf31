"""The chat app's pages besides the chat itself: a person's account page."""

from django.test import Client

from chat import services
from chat.models import Conversation, Usage


def _conversation(user, n: int) -> str:
    return services.exchange_start(
        user=user, conversation_id=None, request_id=f"v{n}", content=f"Question {n}?", collection_ids=None
    )["conversation_id"]


def test_the_account_page_shows_who_their_teams_tokens_and_conversations(
    client, alice, team_a, make_team, settings
):
    settings.DOCENT_MONTHLY_TOKEN_QUOTA = 5000
    make_team("Another team", members=[alice], role="admin")
    for n in range(2):
        _conversation(alice, n)
    Usage.objects.create(user=alice, source=Usage.Source.CHAT, prompt_tokens=1000, completion_tokens=234)
    client.force_login(alice)
    page = client.get("/account/").content.decode()
    assert "Signed in as <strong>alice</strong>" in page
    assert "Teams: Another team (admin), Team A (member)." in page
    assert "1,234 tokens used of your 5,000" in page
    assert "You have 2 conversations." in page and 'href="/api/v1/conversations/export"' in page
    assert Client().get("/account/")["Location"].startswith("/accounts/login/")


def test_all_conversations_are_deleted_from_the_account_page_only_once_the_box_is_ticked(client, alice, bob):
    for n in range(3):
        _conversation(alice, n)
    bobs = _conversation(bob, 9)
    client.force_login(alice)
    unticked = client.post("/account/", {"action": "delete_conversations"})
    assert unticked.status_code == 302 and Conversation.objects.filter(owner=alice).count() == 3
    done = client.post("/account/", {"action": "delete_conversations", "confirm": "1"})
    assert done["Location"] == "/account/?deleted=3"
    assert not Conversation.objects.filter(owner=alice).exists()
    assert Conversation.objects.filter(id=bobs).exists()
    page = client.get(done["Location"]).content.decode()
    assert "3 conversations deleted." in page and "You have 0 conversations." in page
    assert "Delete all conversations" not in page


def test_the_instructions_for_ones_answers_are_saved_from_the_account_page_within_their_bound(client, alice):
    from chat import selectors
    from chat.models import Preferences

    client.force_login(alice)
    saved = client.post("/account/", {"action": "instructions", "instructions": "  Answer briefly.  "})
    assert saved["Location"] == "/account/?saved=1"
    assert selectors.user_instructions(user=alice) == "Answer briefly."
    page = client.get(saved["Location"]).content.decode()
    assert ">Answer briefly.</textarea>" in page and "Saved: your next answers follow it." in page
    too_long = "x" * (Preferences.INSTRUCTIONS_MAX + 1)
    refused = client.post("/account/", {"action": "instructions", "instructions": too_long}).content.decode()
    assert f"Not saved: at most {Preferences.INSTRUCTIONS_MAX} characters." in refused
    assert f">{too_long}</textarea>" in refused  # the words are kept to shorten
    assert selectors.user_instructions(user=alice) == "Answer briefly."
    client.post("/account/", {"action": "instructions", "instructions": ""})
    assert selectors.user_instructions(user=alice) == ""


def test_archived_conversations_are_listed_on_the_account_page_and_brought_back_from_it(client, alice, bob):
    mine = [_conversation(alice, n) for n in range(3)]
    bobs = _conversation(bob, 9)
    for cid in mine[:2]:
        services.conversation_archive(conversation=Conversation.objects.get(id=cid), archived=True)
    services.conversation_archive(conversation=Conversation.objects.get(id=bobs), archived=True)
    client.force_login(alice)
    page = client.get("/account/").content.decode()
    assert "You have 3 conversations, 2 of them archived." in page
    listed = page[page.index('id="archived"') :]
    assert listed.index(f"/?c={mine[1]}") < listed.index(f"/?c={mine[0]}")  # last archived first
    assert f"/?c={mine[2]}" not in listed and str(bobs) not in page

    back = client.post("/account/", {"action": "unarchive", "conversation": mine[0]})
    assert back["Location"] == "/account/#archived"
    assert Conversation.objects.get(id=mine[0]).archived_at is None
    assert client.post("/account/", {"action": "unarchive", "conversation": bobs}).status_code == 404
    assert client.post("/account/", {"action": "unarchive", "conversation": "nope"}).status_code == 404
    assert Conversation.objects.get(id=bobs).archived_at is not None
    assert "You have 3 conversations, 1 of them archived." in client.get("/account/").content.decode()


def test_saved_prompts_are_kept_replaced_and_deleted_from_the_account_page(client, alice, bob):
    from chat.models import SavedPrompt

    client.force_login(alice)
    kept = client.post("/account/", {"action": "prompt_save", "name": "Leave", "text": " How much leave? "})
    assert kept["Location"] == "/account/#prompts"
    client.post("/account/", {"action": "prompt_save", "name": "leave", "text": "How much paid leave?"})
    assert list(SavedPrompt.objects.values_list("name", "text")) == [("leave", "How much paid leave?")]
    refused = client.post("/account/", {"action": "prompt_save", "name": "no spaces", "text": "Hi"})
    assert refused.status_code == 200
    page = refused.content.decode()
    assert "Not saved: a name is lower-case letters" in page and 'value="no spaces"' in page
    page = client.get("/account/").content.decode()
    assert "<code>/leave</code>" in page and "How much paid leave?" in page

    theirs = SavedPrompt.objects.create(user=bob, name="mine", text="Bob's")
    assert client.post("/account/", {"action": "prompt_delete", "prompt": theirs.id}).status_code == 404
    own = SavedPrompt.objects.get(user=alice)
    assert (
        client.post("/account/", {"action": "prompt_delete", "prompt": own.id})["Location"]
        == "/account/#prompts"
    )
    assert list(SavedPrompt.objects.values_list("name", flat=True)) == ["mine"]


def test_a_teams_admin_keeps_prompts_for_everyone_in_it_from_the_account_page(client, alice, bob, make_team):
    from chat.models import SavedPrompt

    ops = make_team("Ops", members=[alice], role="admin")
    make_team("Ops", members=[bob])  # Bob is a member, not an admin
    client.force_login(alice)
    page = client.get("/account/").content.decode()
    assert f'<option value="{ops.id}">Everyone in Ops</option>' in page
    saved = client.post(
        "/account/", {"action": "prompt_save", "name": "oncall", "text": "Who is on call?", "team": ops.id}
    )
    assert saved["Location"] == "/account/#prompts"
    [prompt] = SavedPrompt.objects.all()
    assert (prompt.team_id, prompt.user_id) == (ops.id, None)

    client.force_login(bob)
    page = client.get("/account/").content.decode()
    assert '<code>/oncall</code> <span class="team">Ops</span>' in page
    assert 'aria-label="Delete /oncall' not in page and 'id="prompt-team"' not in page
    refused = client.post(
        "/account/", {"action": "prompt_save", "name": "mine", "text": "Hi", "team": ops.id}
    ).content.decode()
    assert "Not saved: only the team&#x27;s admins keep its prompts." in refused
    assert client.post("/account/", {"action": "prompt_delete", "prompt": prompt.id}).status_code == 404
    assert SavedPrompt.objects.count() == 1
