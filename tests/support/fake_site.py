"""A small web site on loopback for web source tests: pages the test sets (status, type, body,
headers), the requests it was sent (and their headers), a stall for timeouts, and conditional
requests answered 304 as a server does (a page given an ETag or Last-Modified header)."""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler

from .loopback import LoopbackServer


class FakeSite(LoopbackServer):
    def __init__(self) -> None:
        self.pages: dict[str, tuple[int, str, bytes, dict]] = {}
        self.requests: list[str] = []
        self.headers: list[dict[str, str]] = []  # of each request, in order, names in lower case
        self.stall_s = 0.0
        self.guard: tuple[str, str] | None = None  # (header, value) every request must carry, else 401
        self.lock = threading.Lock()
        self._listen(self._handler())

    def reset(self) -> None:
        with self.lock:
            self.pages.clear()
            self.requests.clear()
            self.headers.clear()
            self.stall_s = 0.0
            self.guard = None

    def page(
        self, path: str, body: str | bytes = b"", *, status: int = 200, type: str = "text/html", **headers
    ):
        if isinstance(body, str):
            body = body.encode()
        self.pages[path] = (status, type, body, headers)

    def html(self, path: str, title: str, text: str, links: tuple[str, ...] = (), head: str = "") -> None:
        anchors = "".join(f'<li><a href="{href}">{href}</a></li>' for href in links)
        self.page(
            path,
            f"<!doctype html><html><head><title>{title}</title>{head}</head>"
            f"<body><nav><ul>{anchors}</ul></nav><main><h1>{title}</h1><p>{text}</p></main></body></html>",
            type="text/html; charset=utf-8",
        )

    def redirect(self, path: str, location: str, status: int = 302) -> None:
        self.page(path, status=status, Location=location)

    def _handler(self):
        site = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                with site.lock:
                    site.requests.append(self.path)
                    site.headers.append({k.lower(): v for k, v in self.headers.items()})
                    found = site.pages.get(self.path)
                if site.stall_s:
                    time.sleep(site.stall_s)
                status, content_type, body, headers = found or (404, "text/plain", b"not found", {})
                if site.guard and self.headers.get(site.guard[0]) != site.guard[1]:
                    status, content_type, body, headers = 401, "text/plain", b"sign in first", {}
                if status == 200 and self._unchanged(headers):
                    status, content_type, body = 304, "", b""
                self.send_response(status)
                if content_type:
                    self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(body)

            def _unchanged(self, headers) -> bool:
                # RFC 9110: If-None-Match decides when sent; If-Modified-Since only without it.
                etag, since = self.headers.get("If-None-Match"), self.headers.get("If-Modified-Since")
                if etag is not None:
                    return "ETag" in headers and headers["ETag"] in [t.strip() for t in etag.split(",")]
                return since is not None and headers.get("Last-Modified") == since

        return Handler


def self_signed(directory, host: str = "localhost") -> tuple[str, str]:
    """A certificate for `host` signed by itself, and its key: (cert path, key path)."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(host)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = f"{directory}/cert.pem", f"{directory}/key.pem"
    with open(cert_path, "wb") as fh:
        fh.write(cert.public_bytes(serialization.Encoding.PEM))
    with open(key_path, "wb") as fh:
        fh.write(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
    return cert_path, key_path


class TlsSite(FakeSite):
    """The site over HTTPS, with a certificate for `localhost` no public authority signed."""

    def __init__(self, directory) -> None:
        import ssl

        super().__init__()
        self.cert, key = self_signed(directory)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert, key)
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)

    @property
    def origin(self) -> str:
        return f"https://localhost:{self.server.server_address[1]}"
