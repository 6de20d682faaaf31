"""Each person changes their own password (accounts are made by admins, with a password handed over)."""

from django.contrib.auth import get_user_model
from django.test import Client


def _signed_in(username: str, password: str) -> Client:
    client = Client()
    assert client.post("/accounts/login/", {"username": username, "password": password}).status_code == 302
    return client


def test_a_password_change_keeps_this_session_and_ends_the_others(db, make_user):
    make_user("carol", password="handed-over-1")
    here, elsewhere = _signed_in("carol", "handed-over-1"), _signed_in("carol", "handed-over-1")
    form = here.get("/accounts/password/")
    assert form.status_code == 200 and b"Change your password" in form.content
    changed = here.post(
        "/accounts/password/",
        {"old_password": "handed-over-1", "new_password1": "a-new-one-42", "new_password2": "a-new-one-42"},
    )
    assert changed.status_code == 302 and changed["Location"] == "/accounts/password/done/"
    assert b"Password changed" in here.get(changed["Location"]).content
    assert here.get("/").status_code == 200
    assert elsewhere.get("/").status_code == 302  # signed out: back to the sign-in page
    assert get_user_model().objects.get(username="carol").check_password("a-new-one-42")


def test_a_wrong_old_password_or_a_weak_new_one_changes_nothing(db, make_user):
    make_user("carol", password="handed-over-1")
    client = _signed_in("carol", "handed-over-1")
    for old, new, said in (
        ("guess", "a-new-one-42", b"Your old password was entered incorrectly"),
        ("handed-over-1", "short", b"at least 8 characters"),
    ):
        refused = client.post(
            "/accounts/password/", {"old_password": old, "new_password1": new, "new_password2": new}
        )
        assert refused.status_code == 200 and said in refused.content
    assert get_user_model().objects.get(username="carol").check_password("handed-over-1")


def test_the_password_page_asks_a_visitor_to_sign_in(db):
    assert Client().get("/accounts/password/")["Location"].startswith("/accounts/login/")


def test_old_password_guesses_count_as_sign_in_attempts(db, rate_limits, make_user):
    """A stolen session cannot guess the old password (and so take the account) at network speed."""
    rate_limits(login="2/d")
    make_user("carol", password="handed-over-1")
    client = Client()
    client.force_login(get_user_model().objects.get(username="carol"))
    guess = {"old_password": "guess", "new_password1": "a-new-one-42", "new_password2": "a-new-one-42"}
    for _ in range(2):
        assert client.post("/accounts/password/", guess).status_code == 200
    refused = client.post("/accounts/password/", {**guess, "old_password": "handed-over-1"})
    assert refused.status_code == 429 and int(refused["Retry-After"]) >= 1
    assert get_user_model().objects.get(username="carol").check_password("handed-over-1")
