"""Log lines carry the id of the request they belong to, as plain text or JSON lines."""

import io
import json
import logging

import pytest

from assistant.logs import JsonFormatter, RequestIdFilter


@pytest.fixture
def json_lines():
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RequestIdFilter())
    logger = logging.getLogger("django.request")
    logger.addHandler(handler)
    yield lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
    logger.removeHandler(handler)


def test_a_request_id_is_echoed_and_on_the_requests_log_lines(client, db, json_lines):
    response = client.get("/api/v1/documents/1", headers={"X-Request-ID": "lb-7f3a.12"})
    assert response.status_code == 401 and response["X-Request-ID"] == "lb-7f3a.12"
    (line,) = json_lines()
    assert (
        line["request_id"] == "lb-7f3a.12"
        and line["level"] == "WARNING"
        and "Unauthorized" in line["message"]
    )


def test_an_unusable_request_id_is_replaced(client, db, json_lines):
    """A header that could forge log lines (spaces, newlines, hundreds of characters) is not used."""
    for bad in ('evil id\\n{"level": "INFO"}', "x" * 200):
        response = client.get("/api/v1/documents/1", headers={"X-Request-ID": bad})
        assert response["X-Request-ID"] != bad and len(response["X-Request-ID"]) == 32
    ids = [line["request_id"] for line in json_lines()]
    assert len(ids) == 2 and len(set(ids)) == 2  # a new id for each request


def test_every_request_gets_an_id_and_lines_outside_requests_have_none(client, db, json_lines):
    first, second = client.get("/healthz"), client.get("/healthz")
    assert first["X-Request-ID"] != second["X-Request-ID"]
    logging.getLogger("django.request").warning("outside any request")
    assert "request_id" not in json_lines()[-1]


async def test_the_async_path_gives_ids_too(async_client):
    response = await async_client.get("/healthz", headers={"X-Request-ID": "edge-1"})
    assert response["X-Request-ID"] == "edge-1"
