"""Django admin for conversations, messages, feedback, usage and budgets."""

from django.db import connection
from django.test.utils import CaptureQueriesContext

from chat import services
from chat.models import Budget


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
    for model in ("conversation", "message", "feedback", "usage", "budget"):
        assert client.get(f"/admin/chat/{model}/").status_code == 200, model
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
