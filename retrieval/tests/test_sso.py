"""Single sign-on with OpenID Connect: who gets which account and which teams, and the code flow
against a real provider on loopback (tests/support/fake_oidc.py)."""

from urllib.parse import parse_qs, urlparse

import pytest
import requests
from django.contrib.auth import get_user_model
from django.test import Client
from prometheus_client import REGISTRY

from retrieval import services
from retrieval.models import Membership, SsoIdentity, SsoSession

User = get_user_model()
ISSUER = "https://login.example.com/realm"


def _claims(sub="u-1", **more):
    return {
        "sub": sub,
        "email": "carol@example.com",
        "email_verified": True,
        "preferred_username": "carol",
        **more,
    }


# Accounts


def test_a_first_sign_in_makes_an_account_that_later_sign_ins_find(db, settings):
    user = services.sso_sign_in(issuer=ISSUER, claims=_claims(given_name="Carol", family_name="Ng"))
    assert (user.username, user.email, user.first_name, user.last_name) == (
        "carol",
        "carol@example.com",
        "Carol",
        "Ng",
    )
    assert not user.has_usable_password()
    # The subject, not the address, is who they are: a changed address finds the same account.
    again = services.sso_sign_in(issuer=ISSUER, claims=_claims(email="carol.ng@example.com"))
    assert again.pk == user.pk and again.email == "carol.ng@example.com"
    identity = SsoIdentity.objects.get()
    assert (identity.user_id, identity.issuer, identity.subject) == (user.pk, ISSUER, "u-1")
    assert identity.last_sign_in_at is not None
    # The same subject at another provider is another person.
    assert services.sso_sign_in(issuer="https://other.example.com", claims=_claims()).pk != user.pk


def test_a_verified_address_links_the_account_an_admin_made(db, make_user):
    made = make_user("cng", email="Carol@Example.com")
    assert services.sso_sign_in(issuer=ISSUER, claims=_claims()).pk == made.pk
    made.refresh_from_db()
    assert made.check_password("pw-12345-secret")  # the password still works too


def test_an_unverified_address_links_nothing(db, make_user):
    made = make_user("carol", email="carol@example.com")
    user = services.sso_sign_in(issuer=ISSUER, claims=_claims(email_verified=False))
    assert user.pk != made.pk
    assert user.username == "carol-2" and user.email == ""  # nor is the unverified address kept


def test_an_address_the_provider_does_not_vouch_for_is_trusted_only_when_told(db, settings, make_user):
    """Microsoft Entra ID sends no `email_verified`; an explicit false is never trusted."""
    made = make_user("cng", email="carol@example.com")
    unsaid = {k: v for k, v in _claims().items() if k != "email_verified"}
    assert services.sso_sign_in(issuer=ISSUER, claims=unsaid).pk != made.pk
    settings.DOCENT_OIDC_TRUST_EMAIL = True
    assert services.sso_sign_in(issuer=ISSUER, claims={**unsaid, "sub": "u-2"}).pk == made.pk
    assert services.sso_sign_in(issuer=ISSUER, claims=_claims(sub="u-3", email_verified=False)).pk != made.pk


def test_a_superuser_is_not_taken_over_by_address(db):
    User.objects.create_superuser("root", email="carol@example.com", password="pw-12345-secret")
    with pytest.raises(services.SsoRefused) as refused:
        services.sso_sign_in(issuer=ISSUER, claims=_claims())
    assert refused.value.reason == "password-account"
    assert not SsoIdentity.objects.exists()


def test_two_accounts_with_the_address_are_not_guessed_between(db, make_user):
    make_user("c1", email="carol@example.com")
    make_user("c2", email="CAROL@example.com")
    with pytest.raises(services.SsoRefused) as refused:
        services.sso_sign_in(issuer=ISSUER, claims=_claims())
    assert refused.value.reason == "ambiguous"


def test_without_account_creation_only_known_people_sign_in(db, settings, make_user):
    settings.OIDC_CREATE_USER = False
    with pytest.raises(services.SsoRefused) as refused:
        services.sso_sign_in(issuer=ISSUER, claims=_claims())
    assert refused.value.reason == "no-account"
    assert not User.objects.exists()
    made = make_user("carol", email="carol@example.com")
    assert services.sso_sign_in(issuer=ISSUER, claims=_claims()).pk == made.pk


def test_a_turned_off_account_is_refused(db, make_user):
    made = make_user("carol", email="carol@example.com", is_active=False)
    with pytest.raises(services.SsoRefused) as refused:
        services.sso_sign_in(issuer=ISSUER, claims=_claims())
    assert refused.value.reason == "inactive"
    made.refresh_from_db()
    assert not made.is_active


@pytest.mark.parametrize(
    ("claims", "expected"),
    [
        ({"preferred_username": "Carol Ng (Sales)"}, "Carol-Ng-Sales"),
        ({"preferred_username": None}, "carol"),  # the address's local part
        ({"preferred_username": None, "email": None, "name": "Ng"}, "Ng"),
        ({"preferred_username": "!!!", "email": None}, "user"),
    ],
)
def test_user_names_come_from_the_claims_made_safe(db, claims, expected):
    assert services.sso_sign_in(issuer=ISSUER, claims=_claims(**claims)).username == expected


def test_a_user_name_in_use_gets_the_next_free_number(db, make_user):
    for name in ("carol", "carol-2", "Carol-3"):
        make_user(name)
    assert services.sso_sign_in(issuer=ISSUER, claims=_claims(email_verified=False)).username == "carol-4"


# Teams from groups


def test_groups_give_the_teams_named_like_them_and_take_back_only_those(db, settings, make_team, make_user):
    settings.DOCENT_OIDC_GROUPS_CLAIM = "groups"
    research, sales, legal = make_team("Research"), make_team("Sales"), make_team("Legal")
    user = services.sso_sign_in(
        issuer=ISSUER, claims=_claims(groups=["/acme/research", "SALES", "no-such-team"])
    )
    held = {m.team.name: m.from_sso for m in Membership.objects.filter(user=user).select_related("team")}
    assert held == {"Research": True, "Sales": True}
    # An admin adds them to Legal by hand; the group for Research goes.
    services.membership_change(team=legal, user=user, role=Membership.Role.MEMBER)
    services.sso_sign_in(issuer=ISSUER, claims=_claims(groups=["sales"]))
    assert set(Membership.objects.filter(user=user).values_list("team__name", flat=True)) == {
        "Sales",
        "Legal",
    }
    assert research.memberships.count() == 0 and sales.memberships.get().from_sso


def test_a_group_named_like_a_team_and_the_suffix_makes_its_admin(db, settings, make_team, make_user):
    settings.DOCENT_OIDC_GROUPS_CLAIM = "groups"
    settings.DOCENT_OIDC_TEAM_ADMIN_SUFFIX = " Admins"
    research, sales = make_team("Research", members=[make_user("rita")], role="admin"), make_team("Sales")
    legal = make_team("Legal")
    user = services.sso_sign_in(issuer=ISSUER, claims=_claims(groups=["research admins", "Sales"]))
    services.membership_change(team=legal, user=user, role=Membership.Role.MEMBER)  # by hand

    def roles():
        return dict(Membership.objects.filter(user=user).values_list("team__name", "role"))

    assert roles() == {"Research": "admin", "Sales": "member", "Legal": "member"}
    # The admin group goes and the member one comes: an admin no more.
    services.sso_sign_in(issuer=ISSUER, claims=_claims(groups=["research", "sales admins", "legal admins"]))
    assert roles() == {"Research": "member", "Sales": "admin", "Legal": "member"}  # Legal: made by hand
    # Sales' only admin keeps the team when the groups go; Research lets them go.
    services.sso_sign_in(issuer=ISSUER, claims=_claims(groups=[]))
    assert roles() == {"Sales": "admin", "Legal": "member"}
    assert list(research.memberships.values_list("user__username", flat=True)) == ["rita"]
    assert sales.memberships.get().user_id == user.pk


def test_only_the_groups_allowed_may_sign_in(db, settings):
    settings.DOCENT_OIDC_GROUPS_CLAIM = "groups"
    settings.DOCENT_OIDC_ALLOWED_GROUPS = "docent-users, Staff"
    for claims in (_claims(groups=["other"]), _claims()):  # another group; no groups claim at all
        with pytest.raises(services.SsoRefused) as refused:
            services.sso_sign_in(issuer=ISSUER, claims=claims)
        assert refused.value.reason == "not-allowed"
    assert not User.objects.exists()
    assert services.sso_sign_in(issuer=ISSUER, claims=_claims(groups=["/acme/staff"])).username == "carol"


def test_a_sign_in_without_the_groups_claim_changes_no_team(db, settings, make_team):
    """A provider may leave the claim out (Entra ID does past 200 groups); sent empty, it counts."""
    settings.DOCENT_OIDC_GROUPS_CLAIM = "groups"
    make_team("Research")
    user = services.sso_sign_in(issuer=ISSUER, claims=_claims(groups=["research"]))
    services.sso_sign_in(issuer=ISSUER, claims=_claims())
    assert list(user.teams.values_list("name", flat=True)) == ["Research"]
    services.sso_sign_in(issuer=ISSUER, claims=_claims(groups=[]))
    assert not user.teams.exists()


def test_without_the_admin_suffix_a_team_admins_promotion_stands(db, settings, make_team, make_user):
    settings.DOCENT_OIDC_GROUPS_CLAIM = "groups"
    team = make_team("Research", members=[make_user("rita")], role="admin")  # not its last admin then
    user = services.sso_sign_in(issuer=ISSUER, claims=_claims(groups=["research"]))
    services.membership_change(team=team, user=user, role=Membership.Role.ADMIN)  # on the library page
    services.sso_sign_in(issuer=ISSUER, claims=_claims(groups=["research"]))
    assert team.memberships.get(user=user).role == Membership.Role.ADMIN


def test_names_longer_than_the_account_holds_are_cut(db):
    user = services.sso_sign_in(issuer=ISSUER, claims=_claims(given_name="C" * 300, family_name="Ng"))
    assert user.first_name == "C" * 150 and user.last_name == "Ng"


def test_a_team_keeps_its_last_admin_when_their_group_goes(db, settings, make_team):
    settings.DOCENT_OIDC_GROUPS_CLAIM = "groups"
    team = make_team("Research")
    user = services.sso_sign_in(issuer=ISSUER, claims=_claims(groups="research"))
    Membership.objects.filter(user=user).update(role=Membership.Role.ADMIN)
    services.sso_sign_in(issuer=ISSUER, claims=_claims(groups=[]))
    assert team.memberships.get().user_id == user.pk


def test_without_a_groups_claim_set_teams_are_left_alone(db, make_team):
    make_team("Research")
    user = services.sso_sign_in(issuer=ISSUER, claims=_claims(groups=["research"]))
    assert not Membership.objects.filter(user=user).exists()


# The code flow, with the provider on loopback


def _sign_ins(outcome: str) -> float:
    return REGISTRY.get_sample_value("docent_sso_sign_ins_total", {"outcome": outcome}) or 0.0


def _sign_in(client: Client, provider, next_url: str = "") -> str:
    """Start at Docent, go through the provider, come back: where Docent sends the browser last."""
    started = client.get("/accounts/sso/login/" + (f"?next={next_url}" if next_url else ""))
    assert started.status_code == 302
    at_provider = requests.get(started["Location"], allow_redirects=False, timeout=5)
    assert at_provider.status_code == 302
    back = urlparse(at_provider.headers["Location"])
    assert back.path == "/accounts/sso/callback/"
    finished = client.get(back.path, parse_qs(back.query))
    assert finished.status_code == 302
    return finished["Location"]


def test_signing_in_with_the_provider(db, fake_oidc, make_team, settings):
    settings.DOCENT_OIDC_GROUPS_CLAIM = "groups"
    make_team("Research")
    fake_oidc.claims = _claims(sub="abc", groups=["research"])
    client = Client()
    login_page = client.get("/accounts/login/?next=/library/")
    assert (
        b"Sign in with Acme SSO" in login_page.content
        and b"/accounts/sso/login/?next=/library/" in login_page.content
    )
    before = _sign_ins("ok")
    assert _sign_in(client, fake_oidc, "/library/") == "/library/"
    assert _sign_ins("ok") == before + 1
    assert client.get("/library/").status_code == 200
    user = User.objects.get(username="carol")
    assert SsoIdentity.objects.get(user=user).subject == "abc"
    assert list(user.teams.values_list("name", flat=True)) == ["Research"]
    members = client.get(f"/api/v1/teams/{user.teams.get().id}/members").json()
    assert members == [{"user_id": user.id, "username": "carol", "role": "member", "from_sso": True}]
    assert "/realm/token" in fake_oidc.requests and "/realm/userinfo" in fake_oidc.requests
    account = client.get("/account/")
    assert b"You sign in with Acme SSO" in account.content and b"Change your password" not in account.content
    # The audit log has the membership the groups gave, as Docent's, and the sign-in, as carol's.
    from retrieval.models import AuditEvent

    logged = [(e.actor_name, e.action, e.details) for e in AuditEvent.objects.order_by("id")]
    assert logged == [
        ("", "member_add", {"role": "member", "was": None, "by": "sign-in groups"}),
        ("carol", "sign_in", {"via": "single sign-on"}),
    ]


def test_turning_the_account_off_ends_a_session_begun_with_the_provider(db, fake_oidc):
    fake_oidc.claims = _claims()
    client = Client()
    _sign_in(client, fake_oidc)
    assert client.get("/").status_code == 200
    User.objects.filter(username="carol").update(is_active=False)
    assert client.get("/").status_code == 302


def test_sessions_begun_with_the_provider_can_be_kept_short(db, fake_oidc, settings):
    """So that someone turned off at the provider goes back there soon to sign in again."""
    fake_oidc.claims = _claims()
    client = Client()
    _sign_in(client, fake_oidc)
    assert client.session.get_expiry_age() == settings.SESSION_COOKIE_AGE
    settings.DOCENT_OIDC_SESSION_HOURS = 8
    _sign_in(client, fake_oidc)
    assert client.session.get_expiry_age() == 8 * 3600


def test_userinfo_claims_are_read_with_the_id_tokens(db, fake_oidc, make_team, settings):
    settings.DOCENT_OIDC_GROUPS_CLAIM = "groups"
    make_team("Sales")
    fake_oidc.claims = _claims(sub="abc")
    fake_oidc.userinfo_extra = {"groups": ["sales"], "given_name": "Carol"}
    _sign_in(Client(), fake_oidc)
    user = User.objects.get(username="carol")
    assert user.first_name == "Carol" and list(user.teams.values_list("name", flat=True)) == ["Sales"]


def test_an_issuer_written_with_a_trailing_slash_is_matched_as_written(db, fake_oidc, settings):
    fake_oidc.issuer_ends_with_slash = True
    settings.DOCENT_OIDC_ISSUER = fake_oidc.issuer  # the setting without it (stripped from the variable)
    fake_oidc.claims = _claims()
    assert _sign_in(Client(), fake_oidc) == "/"
    assert SsoIdentity.objects.get().issuer == fake_oidc.issuer


@pytest.mark.parametrize(
    ("fault", "reason"),
    [
        ("audience", "failed"),
        ("issuer", "failed"),
        ("nonce", "failed"),
        ("garbage", "failed"),
        ("token-500", "unavailable"),
        ("denied", "denied"),
    ],
)
def test_a_sign_in_that_fails_its_checks_says_so_and_signs_no_one_in(db, fake_oidc, fault, reason):
    fake_oidc.claims = _claims()
    fake_oidc.fault = fault
    client = Client()
    before = _sign_ins(reason)
    landed = _sign_in(client, fake_oidc)
    assert landed == f"/accounts/login/?sso={reason}"
    assert _sign_ins(reason) == before + 1
    assert client.get("/").status_code == 302  # still signed out
    assert not User.objects.exists()
    from retrieval.models import AuditEvent

    assert list(AuditEvent.objects.values_list("action", "details")) == [
        ("sign_in_failed", {"via": "single sign-on", "reason": reason})
    ]
    page = client.get(landed)
    assert page.status_code == 200 and b'role="alert"' in page.content


def test_a_callback_this_browser_did_not_start_is_refused(db, fake_oidc):
    fake_oidc.claims = _claims()
    starter, stranger = Client(), Client()
    started = starter.get("/accounts/sso/login/")
    back = urlparse(requests.get(started["Location"], allow_redirects=False, timeout=5).headers["Location"])
    stranger.get("/accounts/sso/login/")  # a state of its own, not this one
    landed = stranger.get(back.path, parse_qs(back.query))
    assert landed.status_code == 302 and landed["Location"] == "/accounts/login/?sso=failed"
    assert "/realm/token" not in fake_oidc.requests
    # Nor can the right browser use a code twice.
    assert starter.get(back.path, parse_qs(back.query))["Location"] == "/"
    assert Client().get(back.path, parse_qs(back.query))["Location"] == "/accounts/login/?sso=failed"


def test_an_unreachable_provider_is_said_so_on_the_sign_in_page(db, fake_oidc, settings):
    settings.DOCENT_OIDC_ISSUER = "http://127.0.0.1:9/realm"  # the discard port: nothing listens
    client = Client()
    started = client.get("/accounts/sso/login/")
    assert started["Location"] == "/accounts/login/?sso=unavailable"
    assert b"Single sign-on is not answering just now" in client.get(started["Location"]).content


def test_a_discovery_document_naming_another_issuer_is_not_followed(db, fake_oidc):
    """OpenID Connect Discovery 1.0, section 4.3: the browser is not sent to its endpoints."""
    fake_oidc.fault = "discovery-issuer"
    assert Client().get("/accounts/sso/login/")["Location"] == "/accounts/login/?sso=unavailable"


def test_a_password_sign_in_never_asks_the_provider(db, fake_oidc, make_user):
    """Not even a wrong password (which Django then tries on every backend) with a code and a
    state in the form's address."""
    make_user("carol", password="pw-12345-secret")
    for password, status in (("wrong-guess", 200), ("pw-12345-secret", 302)):
        answer = Client().post("/accounts/login/?code=x&state=y", {"username": "carol", "password": password})
        assert answer.status_code == status
    assert fake_oidc.requests == []


def test_without_an_issuer_there_is_no_single_sign_on(db):
    client = Client()
    assert b"Sign in with" not in client.get("/accounts/login/").content
    assert client.get("/accounts/sso/login/").status_code == 404
    assert client.get("/accounts/sso/callback/?code=x&state=y").status_code == 404


def test_callbacks_count_as_sign_in_attempts(db, fake_oidc, rate_limits):
    rate_limits(login="2/d")
    client = Client()
    codes = [client.get("/accounts/sso/callback/?code=x&state=y").status_code for _ in range(3)]
    assert codes == [302, 302, 429]


# Password sign-in where the provider signs people in, and signing out there


def test_with_password_sign_in_off_only_superusers_use_a_password(db, fake_oidc, settings, make_user):
    settings.DOCENT_PASSWORD_SIGN_IN = False
    make_user("carol", password="pw-12345-secret", is_staff=True)
    User.objects.create_superuser("root", password="pw-root-12345")
    page = Client().get("/accounts/login/").content.decode()
    assert "Sign in with Acme SSO" in page and "Administrators: sign in with a password" in page
    refused = Client().post("/accounts/login/", {"username": "carol", "password": "pw-12345-secret"})
    assert refused.status_code == 200
    assert "This account signs in with Acme SSO, not a password." in refused.content.decode()
    admin_refused = Client().post("/admin/login/", {"username": "carol", "password": "pw-12345-secret"})
    assert admin_refused.status_code == 200 and b"signs in with Acme SSO" in admin_refused.content
    assert (
        Client().post("/accounts/login/", {"username": "root", "password": "pw-root-12345"}).status_code
        == 302
    )
    # A wrong password is still only that.
    wrong = Client().post("/accounts/login/", {"username": "carol", "password": "guess"})
    assert "did not match" in wrong.content.decode()


def test_password_sign_in_stays_on_without_single_sign_on(db, settings, make_user):
    """Nobody could sign in otherwise."""
    settings.DOCENT_PASSWORD_SIGN_IN = False
    make_user("carol", password="pw-12345-secret")
    assert (
        Client().post("/accounts/login/", {"username": "carol", "password": "pw-12345-secret"}).status_code
        == 302
    )


def test_signing_out_also_ends_the_providers_session_when_asked(db, fake_oidc, settings, make_user):
    fake_oidc.claims = _claims()
    client = Client()
    _sign_in(client, fake_oidc)
    assert client.post("/accounts/logout/")["Location"] == "/accounts/login/"  # off: Docent's session only
    settings.DOCENT_OIDC_SIGN_OUT = True
    _sign_in(client, fake_oidc)
    id_token = client.session["oidc_id_token"]
    out = client.post("/accounts/logout/")
    at = urlparse(out["Location"])
    assert f"{at.scheme}://{at.netloc}{at.path}" == f"{fake_oidc.issuer}/logout"
    assert parse_qs(at.query) == {
        "id_token_hint": [id_token],
        "client_id": [fake_oidc.client_id],
        "post_logout_redirect_uri": ["http://testserver/accounts/login/"],
    }
    assert client.get("/").status_code == 302  # signed out of Docent too
    # Someone who signed in with a password is not sent to the provider.
    make_user("dave", password="pw-12345-secret")
    client.post("/accounts/login/", {"username": "dave", "password": "pw-12345-secret"})
    assert client.post("/accounts/logout/")["Location"] == "/accounts/login/"


# Back-channel logout: the provider ends sessions here


def _logout(token: str):
    return Client().post("/accounts/sso/backchannel-logout/", {"logout_token": token})


def test_the_provider_ends_one_session_or_all_of_a_persons(db, fake_oidc):
    laptop, phone, other = Client(), Client(), Client()
    fake_oidc.claims = _claims(sid="sid-laptop")
    _sign_in(laptop, fake_oidc)
    fake_oidc.claims = _claims(sid="sid-phone")
    _sign_in(phone, fake_oidc)
    fake_oidc.claims = _claims(sub="u-2", email="dave@example.com", preferred_username="dave", sid="sid-dave")
    _sign_in(other, fake_oidc)
    # That session only.
    answer = _logout(fake_oidc.logout_token(sid="sid-laptop"))
    assert answer.status_code == 200 and answer["Cache-Control"] == "no-store"
    assert [c.get("/").status_code for c in (laptop, phone, other)] == [302, 200, 200]
    # Every session of the person.
    assert _logout(fake_oidc.logout_token(sub="u-1")).status_code == 200
    assert [c.get("/").status_code for c in (phone, other)] == [302, 200]
    assert SsoSession.objects.filter(identity__subject="u-1").count() == 0


@pytest.mark.parametrize(
    "bad",
    [
        {"key": "another"},  # not the provider's signature
        {"event": False},  # an ID token, say, not a logout token
        {"nonce": "n"},
        {"aud": "another-client"},
        {"sub": None, "sid": None},
        {"garbage": True},
    ],
)
def test_a_logout_token_that_fails_its_checks_ends_nothing(db, fake_oidc, bad):
    from cryptography.hazmat.primitives.asymmetric import rsa

    fake_oidc.claims = _claims(sid="sid-1")
    client = Client()
    _sign_in(client, fake_oidc)
    kwargs = {"sub": "u-1", "sid": "sid-1", **bad}
    if kwargs.get("key") == "another":
        kwargs["key"] = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    token = "not-a-token" if kwargs.pop("garbage", False) else fake_oidc.logout_token(**kwargs)
    answer = _logout(token)
    assert answer.status_code == 400 and answer.json()["error"] == "invalid_request"
    assert client.get("/").status_code == 200


def test_sessions_that_ended_are_forgotten_at_the_next_sign_in(db, fake_oidc):
    fake_oidc.claims = _claims(sid="s1")
    first = Client()
    _sign_in(first, fake_oidc)
    first.post("/accounts/logout/")
    fake_oidc.claims = _claims(sid="s2")
    _sign_in(Client(), fake_oidc)
    assert list(SsoSession.objects.values_list("sid", flat=True)) == ["s2"]


def test_back_channel_logout_is_not_there_without_single_sign_on(db):
    assert _logout("x").status_code == 404
