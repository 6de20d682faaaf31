"""Single sign-on with OpenID Connect: mozilla-django-oidc runs the authorization code flow (with
PKCE, a state and a nonce); the provider's endpoints come from its discovery document, and who is
signed in, and into which teams, is decided by `services.sso_sign_in`."""

import logging
import threading
import time
from urllib.parse import urlencode

import jwt
import requests
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth import views as auth_views
from django.contrib.auth.backends import ModelBackend
from django.core.exceptions import SuspiciousOperation, ValidationError
from django.http import Http404, HttpResponse, HttpResponseRedirect, JsonResponse
from django.urls import reverse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST
from mozilla_django_oidc.auth import OIDCAuthenticationBackend
from mozilla_django_oidc.utils import import_from_settings
from mozilla_django_oidc.views import OIDCAuthenticationCallbackView, OIDCAuthenticationRequestView

from assistant import metrics

from . import audit, services

log = logging.getLogger(__name__)

DISCOVERY_TTL_S = 3600
# Allowed clock difference between Docent and the provider when checking a token's times.
LEEWAY_S = 60

# mozilla-django-oidc's settings for the provider's endpoints, and the discovery document's keys for them.
_ENDPOINTS = {
    "OIDC_OP_AUTHORIZATION_ENDPOINT": "authorization_endpoint",
    "OIDC_OP_TOKEN_ENDPOINT": "token_endpoint",
    "OIDC_OP_USER_ENDPOINT": "userinfo_endpoint",
    "OIDC_OP_JWKS_ENDPOINT": "jwks_uri",
}
_discovered: dict[str, tuple[float, dict]] = {}
_lock = threading.Lock()


class SsoUnavailable(Exception):
    """The provider's discovery document could not be read, or does not describe it."""


def enabled() -> bool:
    return bool(settings.DOCENT_OIDC_ISSUER and settings.OIDC_RP_CLIENT_ID)


def password_check(user) -> None:
    """ValidationError, for a sign-in form, when this account may not sign in with a password: where
    single sign-on is on and DOCENT_PASSWORD_SIGN_IN off. Superusers always may, so that someone can
    get in while the provider is down."""
    if not (settings.DOCENT_PASSWORD_SIGN_IN or not enabled() or user.is_superuser):
        raise ValidationError(
            f"This account signs in with {settings.DOCENT_OIDC_NAME}, not a password.", code="sso_only"
        )


def provider_metadata() -> dict:
    """The issuer's OpenID Provider Metadata, read once an hour per process."""
    issuer = settings.DOCENT_OIDC_ISSUER
    with _lock:
        cached = _discovered.get(issuer)
        if cached is not None and time.monotonic() - cached[0] < DISCOVERY_TTL_S:
            return cached[1]
    try:
        response = requests.get(f"{issuer}/.well-known/openid-configuration", timeout=settings.OIDC_TIMEOUT)
        response.raise_for_status()
        metadata = response.json()
    except (requests.RequestException, ValueError) as exc:
        raise SsoUnavailable(f"the provider's discovery document could not be read: {exc}") from exc
    # OpenID Connect Discovery 1.0, section 4.3: the document must name the issuer it was read from.
    if not isinstance(metadata, dict) or str(metadata.get("issuer", "")).rstrip("/") != issuer:
        raise SsoUnavailable(f"the discovery document at {issuer} names another issuer")
    missing = [
        key for key in ("authorization_endpoint", "token_endpoint", "jwks_uri") if not metadata.get(key)
    ]
    if missing:
        raise SsoUnavailable(f"the discovery document lacks {', '.join(missing)}")
    with _lock:
        _discovered[issuer] = (time.monotonic(), metadata)
    return metadata


def forget_provider() -> None:
    """Read the discovery document again at the next sign-in (tests; a provider that moved)."""
    with _lock:
        _discovered.clear()


def _setting(attr, *default):
    if attr in _ENDPOINTS:
        return provider_metadata().get(_ENDPOINTS[attr], *default)
    return import_from_settings(attr, *default)


def _claims(token: str, key, *, what: str, required: list[str]) -> dict:
    """A token's claims, its signature checked with the configured algorithm, and, unlike the
    library's default, its audience (this client) and issuer (OpenID Connect Core 1.0, section
    3.1.3.7); SuspiciousOperation otherwise."""
    algorithm = settings.OIDC_RP_SIGN_ALGO
    try:
        if jwt.get_unverified_header(token).get("alg") != algorithm:
            raise SuspiciousOperation(f"the {what} is not signed with {algorithm}")
        return jwt.decode(
            token,
            key,
            algorithms=[algorithm],
            audience=settings.OIDC_RP_CLIENT_ID,
            # As the provider writes it (some end theirs with "/", which the setting may not).
            issuer=provider_metadata()["issuer"],
            leeway=LEEWAY_S,
            options={"require": required},
        )
    except jwt.PyJWTError as exc:
        raise SuspiciousOperation(f"the {what} was refused: {exc}") from exc


def _provider_down(exc: Exception) -> bool:
    """Whether a failure is the provider's trouble (no answer, or a 5xx), not a refusal."""
    if isinstance(exc, requests.HTTPError):
        return exc.response is not None and exc.response.status_code >= 500
    return isinstance(exc, SsoUnavailable | requests.RequestException)


def _failed(reason: str) -> HttpResponseRedirect:
    metrics.SSO_SIGN_INS.labels(reason).inc()
    audit.record("sign_in_failed", details={"via": "single sign-on", "reason": reason})
    return HttpResponseRedirect(f"{reverse('login')}?{urlencode({'sso': reason})}")


class SsoBackend(OIDCAuthenticationBackend):
    get_settings = staticmethod(_setting)

    def __init__(self, *args, **kwargs):
        # Django builds every backend for each password sign-in too: the provider's endpoints are
        # looked up (properties below) only when someone signs in with it.
        self.UserModel = get_user_model()

    OIDC_OP_TOKEN_ENDPOINT = property(lambda self: _setting("OIDC_OP_TOKEN_ENDPOINT"))
    OIDC_OP_USER_ENDPOINT = property(lambda self: _setting("OIDC_OP_USER_ENDPOINT", None))
    OIDC_OP_JWKS_ENDPOINT = property(lambda self: _setting("OIDC_OP_JWKS_ENDPOINT"))
    OIDC_RP_CLIENT_ID = property(lambda self: settings.OIDC_RP_CLIENT_ID)
    OIDC_RP_CLIENT_SECRET = property(lambda self: settings.OIDC_RP_CLIENT_SECRET)
    OIDC_RP_SIGN_ALGO = property(lambda self: settings.OIDC_RP_SIGN_ALGO)
    OIDC_RP_IDP_SIGN_KEY = None

    # The library's own get_user returns turned-off accounts too: a session begun with the provider
    # must end when an admin turns the account off, as a password session does.
    get_user = ModelBackend.get_user

    def authenticate(self, request, **kwargs):
        # Only the callback passes a nonce; a password form with ?code= in its address is not a
        # sign-in with the provider.
        if not enabled() or "nonce" not in kwargs:
            return None
        return super().authenticate(request, **kwargs)

    def get_payload_data(self, token, key):
        """The ID token's claims, checked (`_claims`) where the library checks only the signature."""
        return _claims(token, key, what="ID token", required=["exp", "iat", "sub"])

    def get_userinfo(self, access_token, id_token, payload):
        # The ID token's claims, with the userinfo endpoint's over them when the provider has one
        # (groups are often in one and not the other).
        claims = dict(payload)
        if self.OIDC_OP_USER_ENDPOINT:
            userinfo = super().get_userinfo(access_token, id_token, payload)
            # OpenID Connect Core 1.0, section 5.3.4: a userinfo answer about someone else is refused.
            if str(userinfo.get("sub")) != str(payload.get("sub")):
                raise SuspiciousOperation("the userinfo endpoint answered for another subject")
            claims.update(userinfo)
        return claims

    def store_tokens(self, access_token, id_token):
        # The ID token is kept only to name the session when signing out at the provider too.
        if settings.DOCENT_OIDC_SIGN_OUT:
            self.request.session["oidc_id_token"] = id_token

    def get_or_create_user(self, access_token, id_token, payload):
        claims = self.get_userinfo(access_token, id_token, payload)
        try:
            user = services.sso_sign_in(issuer=settings.DOCENT_OIDC_ISSUER, claims=claims)
            # Recorded once signed in, under the session key the sign-in gives (login_success).
            self.request.sso_session = (str(payload["sub"]), str(payload.get("sid") or ""))
            return user
        except services.SsoRefused as exc:
            log.info("single sign-on refused for subject %s: %s", claims.get("sub"), exc.reason)
            self.request.sso_failure = exc.reason
            return None


class SsoLoginView(OIDCAuthenticationRequestView):
    """Sends the browser to the provider, with `next` kept for the way back."""

    get_settings = staticmethod(_setting)

    def __init__(self, **kwargs):
        # The library reads the provider's endpoint here; it is read in get, where a provider that
        # cannot be reached can be answered with a page.
        super(OIDCAuthenticationRequestView, self).__init__(**kwargs)

    def get(self, request):
        if not enabled():
            raise Http404("single sign-on is not configured")
        try:
            self.OIDC_OP_AUTH_ENDPOINT = _setting("OIDC_OP_AUTHORIZATION_ENDPOINT")
        except SsoUnavailable as exc:
            log.warning("single sign-on unavailable: %s", exc)
            return _failed("unavailable")
        self.OIDC_RP_CLIENT_ID = settings.OIDC_RP_CLIENT_ID
        return super().get(request)


class SsoCallbackView(OIDCAuthenticationCallbackView):
    """The provider sends the browser back here; failures go back to the sign-in page, which says
    what happened."""

    get_settings = staticmethod(_setting)

    def get(self, request):
        if not enabled():
            raise Http404("single sign-on is not configured")
        if request.GET.get("error"):
            # The person cancelled, or the provider refused them (RFC 6749, section 4.1.2.1).
            log.info("single sign-on: the provider answered %s", request.GET.get("error"))
            request.sso_failure = "denied"
        try:
            return super().get(request)
        except (SuspiciousOperation, SsoUnavailable, requests.RequestException, jwt.PyJWTError) as exc:
            # A state not issued to this browser, a token that fails its checks (or is no token, which
            # the library's key lookup meets first), a provider that does not answer: a sign-in page
            # saying so, not an error page.
            log.warning("single sign-on failed: %s", exc)
            return _failed("unavailable" if _provider_down(exc) else "failed")

    def login_success(self):
        metrics.SSO_SIGN_INS.labels("ok").inc()
        response = super().login_success()
        if settings.DOCENT_OIDC_SESSION_HOURS > 0:
            # Bounds how long someone turned off at the provider keeps a session here.
            self.request.session.set_expiry(int(settings.DOCENT_OIDC_SESSION_HOURS * 3600))
        subject, sid = getattr(self.request, "sso_session", (None, ""))
        if subject is not None:
            self.request.session.save()  # the key it will be known by
            services.sso_session_record(
                issuer=settings.DOCENT_OIDC_ISSUER,
                subject=subject,
                sid=sid,
                session_key=self.request.session.session_key,
            )
        return response

    def login_failure(self):
        return _failed(getattr(self.request, "sso_failure", "failed"))


class SignOutView(auth_views.LogoutView):
    """Django's sign-out; with DOCENT_OIDC_SIGN_OUT on, someone who signed in with the provider is
    then sent to its end_session_endpoint (OpenID Connect RP-Initiated Logout) to end that session
    too, and from there back to the sign-in page."""

    def post(self, request, *args, **kwargs):
        id_token = request.session.get("oidc_id_token")
        response = super().post(request, *args, **kwargs)
        if not (id_token and enabled() and settings.DOCENT_OIDC_SIGN_OUT):
            return response
        try:
            end_session = provider_metadata().get("end_session_endpoint")
        except SsoUnavailable as exc:
            log.warning("signed out of Docent only: %s", exc)
            return response
        if not end_session:
            return response
        query = {
            "id_token_hint": id_token,
            "client_id": settings.OIDC_RP_CLIENT_ID,
            "post_logout_redirect_uri": request.build_absolute_uri(reverse("login")),
        }
        return HttpResponseRedirect(f"{end_session}?{urlencode(query)}")


# OpenID Connect Back-Channel Logout 1.0, section 2.4: the event a logout token carries.
BACKCHANNEL_LOGOUT_EVENT = "http://schemas.openid.net/event/backchannel-logout"


def logout_token_claims(token: str) -> dict:
    """A back-channel logout token's claims, checked as the spec asks (section 2.6): signed by the
    provider, for this client, from its issuer, carrying the logout event, a subject or a session,
    and no nonce. SuspiciousOperation (or SsoUnavailable) otherwise."""
    algorithm = settings.OIDC_RP_SIGN_ALGO
    try:
        key = (
            SsoBackend().retrieve_matching_jwk(token)
            if algorithm[:2] in ("RS", "ES", "PS")
            else settings.OIDC_RP_CLIENT_SECRET
        )
    except (jwt.PyJWTError, KeyError) as exc:
        raise SuspiciousOperation(f"the logout token's key was not found: {exc!r}") from exc
    claims = _claims(token, key, what="logout token", required=["iat"])
    events = claims.get("events")
    if not isinstance(events, dict) or BACKCHANNEL_LOGOUT_EVENT not in events:
        raise SuspiciousOperation("the token carries no logout event")
    if "nonce" in claims:
        raise SuspiciousOperation("a logout token has no nonce")
    if not (claims.get("sub") or claims.get("sid")):
        raise SuspiciousOperation("the logout token names neither a subject nor a session")
    return claims


@csrf_exempt  # the provider calls it, with no cookie: the signed token is the proof
@require_POST
def backchannel_logout(request):
    """The provider ends a person's sessions here (they signed out there, or were turned off):
    every Docent session begun with that provider session, or of that person."""
    if not enabled():
        raise Http404("single sign-on is not configured")
    try:
        claims = logout_token_claims(request.POST.get("logout_token", ""))
    except (SuspiciousOperation, SsoUnavailable, requests.RequestException) as exc:
        log.warning("back-channel logout refused: %s", exc)
        return JsonResponse({"error": "invalid_request", "error_description": str(exc)}, status=400)
    ended = services.sso_sessions_end(
        issuer=settings.DOCENT_OIDC_ISSUER, subject=claims.get("sub"), sid=claims.get("sid")
    )
    log.info("back-channel logout for subject %s: %d session(s) ended", claims.get("sub"), ended)
    return HttpResponse(status=200, headers={"Cache-Control": "no-store"})
