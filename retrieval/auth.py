"""API authentication: a session cookie (with CSRF) or `Authorization: Bearer <api key>`."""

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

    def authenticate(self, request, key):
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated and user.is_active:
            return user
        return None


api_auth = [BearerKey(), Session()]
