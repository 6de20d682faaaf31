"""Django admin for conversations, messages, feedback, usage and budgets."""

import re
from datetime import timedelta

from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from chat import services
from chat.models import Budget, Usage


def test_pages_open_and_budgets_show_this_months_use(client, make_user, alice):
    """Each list opens; conversations are read-only; a budget's row shows what its user spent."""
    client.force_login(make_user("root", is_staff=True, is_superuser=True))
    ids = services.exchange_start(
        user=alice, conversation_id=None, request_id="r", content="Leave?", collection_ids=None
    )
    services.message_finish(
        message_id=ids["message_id"],
        text="25 days",
        status="complete",
        prompt_tokens=300,
        completion_tokens=45,
    )
    Budget.objects.create(user=alice, monthly_tokens=5000)
    services.instructions_set(user=alice, instructions="Answer briefly.")
    prompt = services.prompt_save(user=alice, name="leave", text="How much leave?")
    for model in ("conversation", "message", "feedback", "usage", "budget", "preferences", "savedprompt"):
        assert client.get(f"/admin/chat/{model}/").status_code == 200, model
    assert b"How much leave?" in client.get(f"/admin/chat/savedprompt/{prompt.id}/change/").content
    assert client.get("/admin/chat/savedprompt/add/").status_code == 403
    assert b"Answer briefly." in client.get(f"/admin/chat/preferences/{alice.id}/change/").content
    assert client.get("/admin/chat/preferences/add/").status_code == 403
    assert client.get(f"/admin/chat/conversation/{ids['conversation_id']}/change/").status_code == 200
    assert client.get("/admin/chat/conversation/add/").status_code == 403
    assert client.get("/admin/chat/usage/add/").status_code == 403
    budgets = client.get("/admin/chat/budget/").content.decode()
    assert '<td class="field-used_this_month">345</td>' in budgets
    with CaptureQueriesContext(connection) as one_row:
        client.get("/admin/chat/budget/")
    for name in ("ida", "jon"):
        Budget.objects.create(user=make_user(name), monthly_tokens=10)
    with CaptureQueriesContext(connection) as three_rows:
        budgets = client.get("/admin/chat/budget/").content.decode()
    assert budgets.count('<td class="field-used_this_month">0</td>') == 2
    assert len(three_rows) == len(one_row)  # the month's use comes with the list, not per row
    assert client.get("/admin/chat/budget/add/").status_code == 200


def test_answers_with_citations_to_check_are_found_in_the_message_list(client, make_user, alice):
    client.force_login(make_user("root", is_staff=True, is_superuser=True))
    for request_id, text, checks in (
        ("fine", "Leave is 25 days [1]", []),
        ("off", "Leave is 40 days [1]", [{"marker": 0, "n": 1, "missing": ["40"]}]),
    ):
        ids = services.exchange_start(
            user=alice, conversation_id=None, request_id=request_id, content="Leave?", collection_ids=None
        )
        services.message_finish(message_id=ids["message_id"], text=text, status="complete", checks=checks)
    flagged = client.get("/admin/chat/message/", {"to_check": "yes"}).content.decode()
    clean = client.get("/admin/chat/message/", {"to_check": "no", "role": "assistant"}).content.decode()
    assert "Leave is 40 days" in flagged and "Leave is 25 days" not in flagged
    assert "Leave is 25 days" in clean and "Leave is 40 days" not in clean


def _summary_rows(html: str, table: str) -> list[list[str]]:
    body = re.search(rf'<table class="{table}">.*?<tbody>(.*?)</tbody>', html, re.S).group(1)
    return [re.findall(r"<td[^>]*>(.*?)</td>", row) for row in re.findall(r"<tr>(.*?)</tr>", body, re.S)]


def test_the_usage_list_totals_what_its_filters_chose(client, make_user, alice, bob):
    """Above the ledger: its answers and tokens in all (not one page's), the biggest spenders and
    the models, for whatever the search and the date drill-down chose; in the same few queries
    however many rows there are."""
    client.force_login(make_user("root", is_staff=True, is_superuser=True))

    def spend(user, model, prompt, completion, days_ago=0):
        usage = Usage.objects.create(
            user=user, source="chat", model=model, prompt_tokens=prompt, completion_tokens=completion
        )
        Usage.objects.filter(id=usage.id).update(created_at=timezone.now() - timedelta(days=days_ago))

    spend(alice, "gpt-4o-mini", 100, 10)
    spend(alice, "extractive", 200, 20)
    spend(bob, "gpt-4o-mini", 1000, 50)
    spend(bob, "gpt-4o-mini", 5000, 500, days_ago=400)  # another year

    html = client.get("/admin/chat/usage/").content.decode()
    assert "<strong>4</strong> answers" in html and "<strong>6300</strong> prompt" in html
    assert _summary_rows(html, "usage-by-user") == [
        ["bob", "2", "6000", "550", "6550"],
        ["alice", "2", "300", "30", "330"],
    ]
    assert _summary_rows(html, "usage-by-model") == [
        ["gpt-4o-mini", "3", "6100", "560", "6660"],
        ["extractive", "1", "200", "20", "220"],
    ]

    this_year = client.get("/admin/chat/usage/", {"created_at__year": timezone.now().year}).content.decode()
    assert "<strong>3</strong> answers" in this_year and "<strong>1300</strong> prompt" in this_year
    assert _summary_rows(this_year, "usage-by-user")[0] == ["bob", "1", "1000", "50", "1050"]

    alices = client.get("/admin/chat/usage/", {"q": "alice"}).content.decode()
    assert [row[0] for row in _summary_rows(alices, "usage-by-user")] == ["alice"]
    assert "<strong>2</strong> answers" in alices

    with CaptureQueriesContext(connection) as few:
        client.get("/admin/chat/usage/")
    for _ in range(30):
        spend(make_user(), "gpt-4o-mini", 1, 1)
    with CaptureQueriesContext(connection) as many:
        crowded = client.get("/admin/chat/usage/").content.decode()
    assert len(many) == len(few)
    assert len(_summary_rows(crowded, "usage-by-user")) == 10
    assert "<strong>34</strong> answers" in crowded


def test_the_feedback_list_counts_helpful_and_not_per_model(client, make_user, alice):
    """Above the ratings: how many said helpful and not, in all and per answering model, and what
    was wrong, for what the filters chose; the model and the reason are filters too."""
    from chat.models import Message

    client.force_login(make_user("root", is_staff=True, is_superuser=True))
    for n, (model, rating, reasons) in enumerate(
        [
            ("gpt-4o-mini", 1, []),
            ("gpt-4o-mini", 1, []),
            ("gpt-4o-mini", -1, ["inaccurate", "sources"]),
            ("docent-extractive", -1, ["sources"]),
        ]
    ):
        ids = services.exchange_start(
            user=alice, conversation_id=None, request_id=f"r{n}", content="Leave?", collection_ids=None
        )
        services.message_finish(message_id=ids["message_id"], text="25 days", status="complete")
        Message.objects.filter(id=ids["message_id"]).update(model=model)
        services.feedback_set(user=alice, message_id=ids["message_id"], rating=rating, reasons=reasons)

    html = client.get("/admin/chat/feedback/").content.decode()
    assert "<strong>2</strong> helpful and <strong>2</strong> not helpful" in " ".join(html.split())
    assert _summary_rows(html, "feedback-by-model") == [
        ["gpt-4o-mini", "2", "1"],
        ["docent-extractive", "0", "1"],
    ]
    one_model = client.get("/admin/chat/feedback/", {"message__model": "docent-extractive"}).content.decode()
    assert "<strong>0</strong> helpful and <strong>1</strong> not helpful" in " ".join(one_model.split())
    assert _summary_rows(one_model, "feedback-by-model") == [["docent-extractive", "0", "1"]]
    assert _summary_rows(html, "feedback-by-reason") == [
        ["Wrong or missing sources", "2"],
        ["Not accurate", "1"],
    ]
    assert _summary_rows(one_model, "feedback-by-reason") == [["Wrong or missing sources", "1"]]
    inaccurate = client.get("/admin/chat/feedback/", {"reason": "inaccurate"}).content.decode()
    assert "<strong>0</strong> helpful and <strong>1</strong> not helpful" in " ".join(inaccurate.split())
    assert "Not accurate, Wrong or missing sources" in inaccurate  # the list's column
