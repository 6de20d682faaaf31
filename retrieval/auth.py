"""API authentication: a session cookie (with CSRF) or `Authorization: Bearer <api key>`."""

from importlib import import_module

from django.conf import settings
from django.contrib.auth import SESSION_KEY
from django.http import parse_cookie
from ninja.security import APIKeyCookie, HttpBearer

from . import selectors


class BearerKey(HttpBearer):
    def authenticate(self, request, token):
        user = selectors.api_key_user(raw=token)
        if user is not None:
            request.user = user
        return user


class Session(APIKeyCookie):
    """Django's session cookie; ninja checks CSRF for it on unsafe methods."""

    param_name = "sessionid"

    def _get_key(self, request):
        # Without a session there is nothing for CSRF to protect: a script with a wrong or revoked
        # key (or none) gets 401, not ninja's "CSRF check Failed" 403.
        if settings.SESSION_COOKIE_NAME not in request.COOKIES:
            return None
        return super()._get_key(request)

    def authenticate(self, request, key):
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated and user.is_active:
            return user
        return None


api_auth = [BearerKey(), Session()]


def user_id_from_headers(headers: dict[bytes, bytes]) -> int | None:
    """The user a request's raw ASGI headers name, found as `api_auth` finds it (an API key, else
    the session cookie), for a check made before Django reads the body; None when they name none."""
    scheme, _, token = headers.get(b"authorization", b"").decode("latin-1").partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        user = selectors.api_key_user(raw=token.strip())
        return user.pk if user is not None else None
    cookies = parse_cookie(headers.get(b"cookie", b"").decode("latin-1"))
    session_key = cookies.get(settings.SESSION_COOKIE_NAME)
    if not session_key:
        return None
    user_id = import_module(settings.SESSION_ENGINE).SessionStore(session_key).get(SESSION_KEY)
    try:
        return int(user_id) if user_id is not None else None
    except (TypeError, ValueError):
        return None
