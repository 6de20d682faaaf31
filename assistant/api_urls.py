"""The REST API at /api/v1/: one NinjaAPI, the apps' routers, and errors as {"error": {"code", "message"}}."""

import logging

from django.db import DatabaseError, DataError
from django.http import Http404
from django.urls import path
from ninja import NinjaAPI
from ninja.errors import AuthenticationError, HttpError, ValidationError

from chat.api import router as chat_router
from retrieval.api import router as retrieval_router
from retrieval.embeddings import EmbeddingError
from retrieval.limits import RateLimited
from retrieval.parsing import UnsupportedType
from retrieval.services import UploadTooLarge

log = logging.getLogger(__name__)

api = NinjaAPI(
    title="Docent API",
    version="1",
    description="Collections, documents, search and conversations. Auth: session cookie or Bearer API key.",
    urls_namespace="api-v1",
)
api.add_router("", retrieval_router)
api.add_router("", chat_router)

_CODES = {
    400: "invalid",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    409: "conflict",
    413: "too_large",
    415: "unsupported_type",
    422: "invalid",
    429: "rate_limited",
}


def error(request, status: int, message: str, code: str | None = None, headers: dict | None = None):
    response = api.create_response(
        request, {"error": {"code": code or _CODES.get(status, "error"), "message": message}}, status=status
    )
    for name, value in (headers or {}).items():
        response[name] = value
    return response


@api.exception_handler(HttpError)
def on_http_error(request, exc: HttpError):
    return error(request, exc.status_code, str(exc))


@api.exception_handler(AuthenticationError)
def on_auth_error(request, exc):
    return error(request, 401, "sign in, or send Authorization: Bearer <api key>")


@api.exception_handler(ValidationError)
def on_validation_error(request, exc: ValidationError):
    first = exc.errors[0] if exc.errors else {}
    where = ".".join(str(p) for p in first.get("loc", []))
    return error(
        request, 400, f"{where}: {first.get('msg', 'invalid request')}" if where else "invalid request"
    )


@api.exception_handler(Http404)
def on_not_found(request, exc):
    return error(request, 404, str(exc) or "not found")


@api.exception_handler(UploadTooLarge)
def on_too_large(request, exc):
    return error(request, 413, str(exc))


@api.exception_handler(UnsupportedType)
def on_unsupported(request, exc):
    return error(request, 415, str(exc))


@api.exception_handler(RateLimited)
def on_rate_limited(request, exc: RateLimited):
    return error(request, 429, str(exc), headers={"Retry-After": str(exc.retry_after)})


@api.exception_handler(EmbeddingError)
def on_embedding_error(request, exc: EmbeddingError):
    log.warning("API request failed on the embedding provider: %s", exc)
    return error(
        request, 503, "the embedding provider is not answering; please try again", "provider_unavailable"
    )


@api.exception_handler(DataError)
def on_data_error(request, exc: DataError):
    # A value the database refuses (out of its range, say): the request's doing, and sending it
    # again cannot help, so not the 503 below. Logged as an error: a check should have caught it.
    log.error("API request held a value the database refused: %s", exc)
    return error(request, 400, "the request holds a value that cannot be stored")


@api.exception_handler(DatabaseError)
def on_database_error(request, exc: DatabaseError):
    # The database restarting or failing over: a JSON answer a client can retry on, not an HTML 500.
    log.warning("API request failed on the database: %s", exc)
    return error(
        request, 503, "the database is not answering; please try again", "unavailable", {"Retry-After": "5"}
    )


urlpatterns = [path("", api.urls)]
