"""API authentication: a session cookie (with CSRF) or `Authorization: Bearer <api key>`."""

from django.conf import settings
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
