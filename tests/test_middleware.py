import json

from django.test import Client


def test_sign_in_flood_is_429_per_address(db, rate_limits, make_user):
    """The fourth sign-in attempt in a day from one address is refused with Retry-After, even with
    the right password; another address still signs in."""
    rate_limits(login="3/d")
    make_user("carol", password="right-password")
    attacker = Client()
    for _ in range(3):
        wrong = attacker.post("/accounts/login/", {"username": "carol", "password": "guess"})
        assert wrong.status_code == 200  # the form again, with its error
    refused = attacker.post("/accounts/login/", {"username": "carol", "password": "right-password"})
    assert refused.status_code == 429 and 1 <= int(refused["Retry-After"]) <= 86400
    admin = attacker.post("/admin/login/", {"username": "carol", "password": "guess"})
    assert admin.status_code == 429
    other = Client(REMOTE_ADDR="10.0.0.2")
    assert (
        other.post("/accounts/login/", {"username": "carol", "password": "right-password"}).status_code == 302
    )


def _asgi_post(headers):
    """An ASGI HTTP scope for an upload, as a server would hand it over."""
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/api/v1/collections/1/documents",
        "raw_path": b"/api/v1/collections/1/documents",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"testserver"), *headers],
        "client": ("127.0.0.1", 5000),
        "server": ("testserver", 80),
    }


async def _start(communicator):
    start = await communicator.receive_output(5)
    body = await communicator.receive_output(5)
    return start, body


async def test_an_oversized_body_is_refused_from_its_length_without_reading_it(settings):
    """A Content-Length over the limit gets 413 at once: nothing of the body is read (none is sent)."""
    import json

    from asgiref.testing import ApplicationCommunicator
    from django.core.asgi import get_asgi_application

    from assistant.middleware import BodySizeLimit

    settings.DOCENT_MAX_UPLOAD_BYTES = 1000
    app = BodySizeLimit(get_asgi_application())
    communicator = ApplicationCommunicator(app, _asgi_post([(b"content-length", b"10000000000")]))
    start, body = await _start(communicator)
    assert start["status"] == 413
    assert json.loads(body["body"])["error"]["code"] == "too_large"
    await communicator.wait(5)  # the application returned without waiting for the body


async def test_a_chunked_body_is_cut_off_once_it_passes_the_limit(settings):
    """Without a Content-Length the bytes are counted: 413 as soon as they pass the limit, and Django
    never handles the request (its handler ends, sending nothing more)."""
    from asgiref.testing import ApplicationCommunicator
    from django.core.asgi import get_asgi_application

    from assistant.middleware import BodySizeLimit

    settings.DOCENT_MAX_UPLOAD_BYTES = 1000
    limit = 1000 + 64 * 1024
    app = BodySizeLimit(get_asgi_application())
    communicator = ApplicationCommunicator(app, _asgi_post([(b"transfer-encoding", b"chunked")]))
    piece = b"x" * 16384
    for _ in range(limit // len(piece) + 1):
        await communicator.send_input({"type": "http.request", "body": piece, "more_body": True})
    start, _ = await _start(communicator)
    assert start["status"] == 413
    await communicator.wait(5)
    assert await communicator.receive_nothing(0.2)


def test_the_server_refuses_an_oversized_upload_before_its_body_arrives(live_url):
    """Through the real server, as `make run` serves it: the 413 comes back while the client has sent
    only the headers, and the connection is closed (no gigabytes read, or written to disk, first)."""
    import socket
    from urllib.parse import urlsplit

    url = urlsplit(live_url)
    with socket.create_connection((url.hostname, url.port), timeout=10) as conn:
        conn.sendall(
            b"POST /api/v1/collections/1/documents HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: multipart/form-data; boundary=x\r\nContent-Length: 4000000000\r\n\r\n"
        )
        received = b""
        while chunk := conn.recv(65536):  # ends when the server closes; times out if it waits for the body
            received += chunk
    assert received.startswith(b"HTTP/1.1 413 ")
    assert b'"too_large"' in received


def test_the_apps_pages_carry_a_content_security_policy_and_the_admin_does_not(client, settings):
    policy = client.get("/accounts/login/")["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy
    assert "Content-Security-Policy" not in client.get("/admin/login/").headers
    settings.DOCENT_CONTENT_SECURITY_POLICY = ""
    assert "Content-Security-Policy" not in client.get("/accounts/login/").headers


def _multipart(name: str, content: bytes) -> tuple[bytes, bytes]:
    boundary = b"docent-test-boundary"
    body = (
        b"--"
        + boundary
        + b'\r\nContent-Disposition: form-data; name="file"; filename="'
        + name.encode()
        + b'"\r\nContent-Type: text/plain\r\n\r\n'
        + content
        + b"\r\n--"
        + boundary
        + b"--\r\n"
    )
    return b"multipart/form-data; boundary=" + boundary, body


def _post_head(path: str, content_type: bytes, length: int, headers: bytes) -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n".encode()
        + b"Content-Type: "
        + content_type
        + b"\r\n"
        + f"Content-Length: {length}\r\n".encode()
        + headers
        + b"\r\n"
    )


def _read_response(conn) -> bytes:
    """One response's head and its Content-Length body."""
    received = b""
    while b"\r\n\r\n" not in received:
        chunk = conn.recv(65536)
        assert chunk, f"the server closed the connection: {received!r}"
        received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    length = int(
        next(
            line.split(b":")[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")
        )
    )
    while len(body) < length:
        body += conn.recv(65536)
    return head + b"\r\n\r\n" + body


def test_an_upload_past_the_rate_is_refused_before_its_body_is_read(live_app, alice, collection_a, make_user):
    """Through the real server: at one upload a day the first is stored (the server's count and the
    view's are one count); the second gets 429 with Retry-After while the client has sent only its
    headers and a little of a 2 MB body, the rest is then taken and dropped on the same connection,
    and nothing more is stored. A session's uploads are counted the same way."""
    import socket
    from urllib.parse import urlsplit

    from django.test import Client

    from retrieval import services
    from retrieval.models import Document

    base = urlsplit(live_app(DOCENT_RATE_UPLOAD="1/d"))
    raw_key = services.api_key_create(user=alice)[1]
    auth = f"Authorization: Bearer {raw_key}\r\n".encode()
    path = f"/api/v1/collections/{collection_a.id}/documents"

    with socket.create_connection((base.hostname, base.port), timeout=30) as conn:
        content_type, body = _multipart("first.txt", b"The backup runs nightly at two.")
        conn.sendall(_post_head(path, content_type, len(body), auth) + body)
        first = _read_response(conn)
        assert first.startswith(b"HTTP/1.1 202 "), first

        content_type, body = _multipart("second.txt", b"x" * 2_000_000)
        conn.sendall(_post_head(path, content_type, len(body), auth) + body[:1000])
        refused = _read_response(conn)  # times out if the server waits for the body
        assert refused.startswith(b"HTTP/1.1 429 ") and b'"rate_limited"' in refused
        retry_after = next(line for line in refused.split(b"\r\n") if line.lower().startswith(b"retry-after"))
        assert 1 <= int(retry_after.split(b":")[1]) <= 86400
        conn.sendall(body[1000:])  # the connection still takes the rest
        conn.sendall(_post_head("/healthz", b"text/plain", 0, b"").replace(b"POST", b"GET", 1))
        assert _read_response(conn).startswith(b"HTTP/1.1 200 ")
    assert list(Document.objects.filter(collection=collection_a).values_list("original_name", flat=True)) == [
        "first.txt"
    ]

    # A browser's session: the same one count, found from the cookie.
    erin = make_user("erin")
    services.membership_set(team=collection_a.team, user=erin)
    client = Client()
    client.force_login(erin)
    token = "c" * 32
    cookie = f"Cookie: sessionid={client.cookies['sessionid'].value}; csrftoken={token}\r\nX-CSRFToken: {token}\r\n"
    statuses = []
    with socket.create_connection((base.hostname, base.port), timeout=30) as conn:
        for name in ("third.txt", "fourth.txt"):
            content_type, body = _multipart(name, f"The {name} note.".encode())
            conn.sendall(_post_head(path, content_type, len(body), cookie.encode()) + body)
            statuses.append(_read_response(conn).split(b" ")[1])
    assert statuses == [b"202", b"429"]


def test_text_that_cannot_be_kept_is_refused_in_the_shape_of_where_it_was_sent(client, alice, team_a):
    """NUL characters and unpaired surrogates (JSON escapes "\\u0000", "\\ud800"; "%00" in a query)
    get a 400 saying so, not a database error later: as the API's error, OpenAI's on /v1, text on pages."""
    from assistant import text
    from retrieval.models import Collection

    client.force_login(alice)
    api_refusal = {"error": {"code": "invalid", "message": text.MESSAGE}}
    team = json.dumps(team_a.name)
    for method, path, body in (
        ("get", "/api/v1/conversations?q=a%00b", None),
        ("post", "/api/v1/collections", '{"name": "a\\u0000b", "team": ' + team + "}"),
        ("post", "/api/v1/collections", '{"name": "a\\ud800b", "team": ' + team + "}"),
        ("patch", "/api/v1/collections/1", '{"\\u0000": 1}'),
    ):
        response = getattr(client, method)(path, body, content_type="application/json")
        assert (response.status_code, response.json()) == (400, api_refusal), path
    for form in ("application/x-www-form-urlencoded", "multipart/form-data; boundary=B"):
        body = (
            "name=k%00"
            if form[0] == "a"
            else '--B\r\nContent-Disposition: form-data; name="name"\r\n\r\nk\x00\r\n--B--\r\n'
        )
        page = client.post("/keys/", body, content_type=form)
        assert page.status_code == 400 and page["Content-Type"].startswith("text/plain"), form
    assert client.get("/shared/a%00b/").status_code == 400
    # A backslash before "u0000" in the text itself is text like any other.
    kept = client.post(
        "/api/v1/collections",
        '{"name": "a\\\\u0000b", "team": ' + team + "}",
        content_type="application/json",
    )
    assert kept.status_code == 201 and kept.json()["name"] == "a\\u0000b"
    assert list(Collection.objects.values_list("name", flat=True)) == ["a\\u0000b"]


async def test_v1_refuses_text_that_cannot_be_kept_in_openais_shape(transactional_db, async_client, alice):
    from asgiref.sync import sync_to_async

    from retrieval import services

    key = (await sync_to_async(services.api_key_create)(user=alice))[1]
    response = await async_client.post(
        "/v1/chat/completions",
        {"model": "docent", "messages": [{"role": "user", "content": "upload\x00 size"}]},
        content_type="application/json",
        headers={"Authorization": f"Bearer {key}"},
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_text"
    assert response.json()["error"]["type"] == "invalid_request_error"
