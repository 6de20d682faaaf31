"""Each person changes their own password (accounts are made by admins, with a password handed over)."""

import io
import re
import time

import pytest
from django.contrib.auth import get_user_model
from django.core import mail
from django.core.management import call_command
from django.test import Client

from retrieval import services


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


# Password reset by email: a real Celery worker makes and sends the link (Django's test run keeps
# sent mail in `mail.outbox`).


def _mail_to(address: str, timeout: float = 20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        sent = [m for m in mail.outbox if address in m.to]
        if sent:
            return sent
        time.sleep(0.05)
    return []


@pytest.fixture
def email_reset(settings):
    settings.DOCENT_PASSWORD_RESET = True
    mail.outbox.clear()


def test_without_a_mail_server_there_is_no_reset_page_and_sign_in_says_whom_to_ask(db):
    assert Client().get("/accounts/password/reset/").status_code == 404
    assert Client().get("/accounts/reset/MQ/some-token/").status_code == 404
    page = Client().get("/accounts/login/").content
    assert b"An administrator can set a new one" in page and b"/accounts/password/reset/" not in page
    admin = Client().get("/admin/login/").content
    assert b"Log in" in admin and b"/accounts/password/reset/" not in admin


def test_the_admin_sign_in_page_offers_the_reset_when_mail_can_go_out(db, email_reset):
    page = Client().get("/admin/login/").content.decode()
    assert 'id="login-form"' in page  # Django's own form, kept
    assert '<a href="/accounts/password/reset/">Forgot your password?</a>' in page


def test_a_reset_link_sets_a_new_password_once_and_signs_out_every_browser(
    transactional_db, worker, email_reset, make_user
):
    make_user("carol", password="handed-over-1", email="Carol@Example.org")
    elsewhere = _signed_in("carol", "handed-over-1")
    assert b"Forgot your password?" in Client().get("/accounts/login/").content

    client = Client()
    for address in ("nobody@example.org", "carol@example.org"):
        asked = client.post("/accounts/password/reset/", {"email": address})
        # The same answer whether the address has an account or not.
        assert asked.status_code == 302 and asked["Location"] == "/accounts/password/reset/sent/"
    assert b"Check your email" in client.get("/accounts/password/reset/sent/").content
    sent = _mail_to("Carol@example.org")  # the domain part lower-cased
    assert len(sent) == 1 and sent[0].subject == "Set your Docent password"
    assert not [m for m in mail.outbox if "nobody@example.org" in m.to]
    link = re.search(r"http://testserver(/accounts/reset/\S+/)", sent[0].body).group(1)

    form = client.get(link, follow=True)
    assert b"Set a new password" in form.content and b"For carol" in form.content
    done = client.post(
        form.redirect_chain[-1][0], {"new_password1": "a-new-one-42", "new_password2": "a-new-one-42"}
    )
    assert done.status_code == 302 and done["Location"] == "/accounts/reset/done/"
    assert get_user_model().objects.get(username="carol").check_password("a-new-one-42")
    from retrieval.models import AuditEvent

    changed = AuditEvent.objects.get(action="password_change")
    assert (changed.actor_name, changed.details) == ("carol", {"via": "reset link"})
    assert elsewhere.get("/").status_code == 302  # signed out
    _signed_in("carol", "a-new-one-42")
    again = Client().get(link, follow=True)
    assert b"This link no longer works" in again.content


def test_an_account_made_without_a_password_sets_its_first_one_by_email(
    transactional_db, worker, email_reset
):
    call_command("create_user", "dave", "--team", "Ops", "--email", "dave@example.org", stdout=io.StringIO())
    assert not get_user_model().objects.get(username="dave").has_usable_password()
    Client().post("/accounts/password/reset/", {"email": "dave@example.org"})
    (message,) = _mail_to("dave@example.org")
    link = re.search(r"http://testserver(/accounts/reset/\S+/)", message.body).group(1)
    client = Client()
    form = client.get(link, follow=True)
    client.post(
        form.redirect_chain[-1][0], {"new_password1": "first-one-42", "new_password2": "first-one-42"}
    )
    _signed_in("dave", "first-one-42")


def test_a_reset_goes_to_no_inactive_account(db, email_reset, make_user):
    carol = make_user("carol", email="carol@example.org", is_active=False)
    assert services.password_reset_send(user_id=carol.id, base_url="http://testserver") is False
    assert mail.outbox == []


def test_reset_requests_count_as_sign_in_attempts(db, email_reset, rate_limits):
    """Each request may send an email: a script cannot fill someone's inbox."""
    rate_limits(login="2/d")
    for _ in range(2):
        assert Client().post("/accounts/password/reset/", {"email": "x@example.org"}).status_code == 302
    refused = Client().post("/accounts/password/reset/", {"email": "x@example.org"})
    assert refused.status_code == 429 and int(refused["Retry-After"]) >= 1
