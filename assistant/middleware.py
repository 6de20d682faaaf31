import json
import re
import time

from asgiref.sync import iscoroutinefunction, markcoroutinefunction, sync_to_async
from channels.db import database_sync_to_async
from django.conf import settings
from django.core.signals import request_finished
from django.http import HttpResponse

from assistant import logs, metrics, text
from retrieval import auth, limits


def _body_limit() -> int:
    return settings.DOCENT_MAX_UPLOAD_BYTES + 64 * 1024  # room for multipart framing


async def _send_error(send, status: int, code: str, message: str, headers=()) -> None:
    """An API error (`{"error": {"code", "message"}}`, as the API's own handler answers) sent from
    the ASGI layer, before Django has the request."""
    body = json.dumps({"error": {"code": code, "message": message}}).encode()
    start = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), *headers]
    await send({"type": "http.response.start", "status": status, "headers": start})
    await send({"type": "http.response.body", "body": body})


class BodySizeLimit:
    """ASGI wrapper: 413 for a request body over the upload limit, before Django sees it.

    Django's ASGI handler reads the whole body into a temporary file before any Django middleware
    runs, so a limit checked there comes after the disk is written. This answers from Content-Length
    without reading anything, and counts the bytes of a body sent without one (chunked), answering 413
    as soon as they pass the limit and telling Django the client left."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        limit = _body_limit()
        length = next((v for k, v in scope.get("headers", ()) if k == b"content-length"), None)
        try:
            declared = int(length) if length is not None else None
        except ValueError:
            declared = None
        if declared is not None and declared > limit:
            return await self._refuse(send)
        seen = 0
        refused = False

        async def counted():
            nonlocal seen, refused
            if refused:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    refused = True
                    await self._refuse(send)
                    return {"type": "http.disconnect"}  # Django drops a request whose client left
            return message

        return await self.app(scope, counted, send)

    @staticmethod
    async def _refuse(send) -> None:
        mb = settings.DOCENT_MAX_UPLOAD_BYTES // (1024 * 1024)
        message = f"the upload is larger than the {mb} MB limit"
        await _send_error(send, 413, "too_large", message, [(b"connection", b"close")])


_UPLOAD_PATH = re.compile(r"^/api/v1/collections/[^/]+/documents/?$")


def _count_upload(headers: dict[bytes, bytes]) -> bool:
    """Count one upload for its sender; False when no sender was found (nothing counted)."""
    user_id = auth.user_id_from_headers(headers)
    if user_id is None:
        return False
    limits.limit_hit(action="upload", key=user_id)
    return True


class UploadRateLimit:
    """ASGI wrapper: an upload past its sender's upload rate gets 429 before its body is read.

    Django's ASGI handler stores the whole body (on disk, up to the upload limit) before any view
    runs, and the multipart parser writes the file again: a client ignoring Retry-After would have
    each refused upload written twice. The count is the view's (`limits.counted_upstream`), so an
    upload counts once. The 429 keeps the connection open: Uvicorn reads and drops the rest of the
    body, so a client still sending it reads the 429 rather than a reset connection."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if (
            scope["type"] != "http"
            or scope["method"] != "POST"
            or not _UPLOAD_PATH.match(scope["path"])
            or not settings.DOCENT_RATE_LIMITS.get("upload")
        ):
            return await self.app(scope, receive, send)
        try:
            counted = await database_sync_to_async(_count_upload)(dict(scope["headers"]))
        except limits.RateLimited as exc:
            retry = [(b"retry-after", str(exc.retry_after).encode())]
            return await _send_error(send, 429, "rate_limited", str(exc), retry)
        if counted:
            scope = {**scope, limits.COUNTED_SCOPE_KEY: ("upload",)}
        return await self.app(scope, receive, send)


class SignInRateLimitMiddleware:
    """Sign-in attempts (the app's and the admin's form, the password change form, which takes the
    old password, and requests for a reset link, each an email to someone) per client address: 429
    with Retry-After past `DOCENT_RATE_LIMITS["login"]`, so a password cannot be guessed at the speed
    of the network, nor an inbox filled."""

    PATHS = ("/accounts/login/", "/admin/login/", "/accounts/password/", "/accounts/password/reset/")
    SSO_CALLBACK = "/accounts/sso/callback/"

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        # The single sign-on callback counts too (a GET): each one costs a request to the provider.
        if (request.method == "POST" and request.path in self.PATHS) or request.path == self.SSO_CALLBACK:
            try:
                limits.limit_hit(action="login", key=request.META.get("REMOTE_ADDR") or "unknown")
            except limits.RateLimited as exc:
                response = HttpResponse(
                    f"Too many sign-in attempts. Try again in {exc.retry_after} s.\n",
                    status=429,
                    content_type="text/plain; charset=utf-8",
                )
                response["Retry-After"] = str(exc.retry_after)
                return response
        return self.get_response(request)


class _Middleware:
    """Middleware serving sync and async requests alike (`_call`, `_acall`): on async requests it
    adds no thread switch."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response):
        self.get_response = get_response
        if iscoroutinefunction(get_response):
            markcoroutinefunction(self)

    def __call__(self, request):
        return self._acall(request) if iscoroutinefunction(self) else self._call(request)


class _AroundView(_Middleware):
    """Middleware running `before(request)` and `after(request, response, state)` around the rest
    of the chain."""

    def _call(self, request):
        state = self.before(request)
        response = self.get_response(request)
        self.after(request, response, state)
        return response

    async def _acall(self, request):
        state = self.before(request)
        response = await self.get_response(request)
        self.after(request, response, state)
        return response

    def before(self, request):
        return None

    def after(self, request, response, state) -> None:
        pass


class MetricsMiddleware(_AroundView):
    """Count and time every request by its route pattern (bounded labels: "api/v1/documents/<document_id>",
    never the path itself)."""

    def before(self, request) -> float:
        return time.perf_counter()

    def after(self, request, response, started: float) -> None:
        match = getattr(request, "resolver_match", None)
        route = match.route if match is not None and match.route else "unmatched"
        metrics.HTTP_REQUESTS.labels(
            method=request.method, route=route, status=str(response.status_code)
        ).inc()
        metrics.HTTP_SECONDS.labels(route=route).observe(time.perf_counter() - started)


class RequestIdMiddleware(_AroundView):
    """Give each request an id (the proxy's X-Request-ID when it sends a usable one): on every log
    line written while serving it, Django's own 4xx/5xx lines included, and echoed in the response's
    X-Request-ID. Not reset on the way out (Django logs the response after the middleware); each ASGI
    request runs in a context of its own, and request_finished clears it for WSGI and tests."""

    def before(self, request) -> str:
        rid = logs.usable_id(request.headers.get("X-Request-ID"))
        logs.request_id.set(rid)
        logs.client_address.set(request.META.get("REMOTE_ADDR") or None)
        return rid

    def after(self, request, response, rid: str) -> None:
        response["X-Request-ID"] = rid


class ContentSecurityPolicyMiddleware(_AroundView):
    """The app's pages run only their own scripts and styles: were a model's answer ever to get markup
    into the page, the browser would still refuse to run it. The admin keeps Django's defaults."""

    def after(self, request, response, state) -> None:
        policy = settings.DOCENT_CONTENT_SECURITY_POLICY
        # A PDF is drawn by the browser's viewer, which a page's policy would only break.
        pdf = response.get("Content-Type") == "application/pdf"
        if policy and not pdf and not request.path.startswith("/admin/"):
            response.headers.setdefault("Content-Security-Policy", policy)


class UnstorableTextMiddleware(_Middleware):
    """400 for a request whose path, query or form or JSON body holds text that cannot be kept (NUL,
    unpaired surrogates: `assistant.text`), in the error shape of where it was sent. Without this it
    fails wherever it first meets the database or a tokenizer, as a 500 or a "database not answering"
    503. An upload's file is no text (and Django drops such characters from file names)."""

    def _call(self, request):
        return self._refusal(request) if _unstorable_request(request) else self.get_response(request)

    async def _acall(self, request):
        if request.content_type == "multipart/form-data":
            # Parsing a multipart body writes its files out: in a thread, as the view would.
            unstorable = await sync_to_async(_unstorable_request)(request)
        else:
            unstorable = _unstorable_request(request)
        return self._refusal(request) if unstorable else await self.get_response(request)

    @staticmethod
    def _refusal(request) -> HttpResponse:
        # Each part of the app's own error, in its own shape (imported here: they load the API).
        if request.path.startswith("/v1/"):
            from chat.openai_api import error

            return error(400, text.MESSAGE, "invalid_text")
        if request.path.startswith("/api/"):
            from assistant.api_urls import error

            return error(request, 400, text.MESSAGE)
        return HttpResponse(f"{text.MESSAGE}\n", status=400, content_type="text/plain; charset=utf-8")


def _unstorable_request(request) -> bool:
    if text.unstorable([request.path, *request.GET.lists()]):
        return True
    if request.method not in ("POST", "PUT", "PATCH"):
        return False
    if request.content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
        return text.unstorable(list(request.POST.lists()))
    if not request.body:
        return False
    try:
        body = json.loads(request.body)
    except ValueError:
        return False  # not JSON: the view answers for that
    return text.unstorable(body)


def _request_finished(**_) -> None:
    logs.request_id.set(None)
    logs.client_address.set(None)


request_finished.connect(_request_finished, dispatch_uid="docent-request-id")
