"""Reading web pages for web sources: a fetcher that reaches only public addresses (unless the
operator names private ones), and a crawler that follows a site's links under one address or reads
its sitemap, honouring robots.txt. No database here: `services.web_source_sync` stores what it finds.

Server-side request forgery is the risk of any fetch a user names: the address is checked after the
name is resolved, at connection time, for every redirect, so a name resolving to 127.0.0.1 or
169.254.169.254 (a cloud's metadata service) is refused, and the checked address is the one connected
to (no second lookup an attacker's DNS could answer differently).
"""

from __future__ import annotations

import hashlib
import ipaddress
import mimetypes
import re
import socket
import ssl
import time
import urllib.robotparser
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import NamedTuple
from urllib.parse import quote, urldefrag, urljoin, urlsplit, urlunsplit

import certifi
import httpcore
from bs4 import BeautifulSoup
from django.conf import settings

USER_AGENT = "DocentBot/1.0 (+https://github.com/docent; a team's knowledge base reading its pages)"

# What is read as a document (by its Content-Type); anything else is left out unread.
_READABLE = {
    "text/html": ".html",
    "application/xhtml+xml": ".html",
    "text/plain": ".txt",
    "text/markdown": ".md",
    "text/x-markdown": ".md",
    "text/csv": ".csv",
    "application/pdf": ".pdf",
    "application/epub+zip": ".epub",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": ".docx",
    "application/vnd.openxmlformats-officedocument.presentationml.presentation": ".pptx",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": ".xlsx",
    "application/vnd.oasis.opendocument.text": ".odt",
}
_XML = {"application/xml", "text/xml"}
_TEXT_TYPES = {
    "text/html",
    "application/xhtml+xml",
    "text/plain",
    "text/markdown",
    "text/x-markdown",
    "text/csv",
}
_REDIRECTS = {301, 302, 303, 307, 308}
# Addresses waiting, at most, per page a reading may keep: a page of a million links stays a small
# state to save between slices.
_QUEUE_PER_PAGE = 10
_MAX_REDIRECTS = 5
_MAX_SITEMAPS = 20


class WebError(Exception):
    """A page that could not be read; the message says why, in words. `status`: the server's, if any."""

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status


class Refused(WebError):
    """An address Docent may not fetch (not public, not http, not a name that resolves)."""


class Gone(WebError):
    """The server says the page is not there (404 or 410): its document is deleted."""


class NotModified(Exception):  # noqa: N818 - an answer, not an error
    """The server says the page asked for conditionally has not changed (304) at `url`."""

    def __init__(self, url: str):
        super().__init__(url)
        self.url = url


class Fetched(NamedTuple):
    url: str  # after redirects
    content_type: str
    body: bytes
    validators: dict  # "etag", "modified": what the page can be asked for again conditionally with


def _allowed_private() -> tuple[set[str], list]:
    hosts: set[str] = set()
    networks = []
    for entry in settings.DOCENT_WEB_PRIVATE_HOSTS:
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            hosts.add(entry.lower().rstrip("."))
    return hosts, networks


def _listed_private(host: str) -> bool:
    """Whether DOCENT_WEB_PRIVATE_HOSTS names the host, or the network of an IP address given."""
    names, networks = _allowed_private()
    host = host.lower().rstrip(".")
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return host in names
    return any(ip in network for network in networks)


_NAT64 = ipaddress.ip_network("64:ff9b::/96")


def address_allowed(ip: str, host: str) -> bool:
    """Public (globally routable) addresses, and the private ones or host names the operator lists
    in `DOCENT_WEB_PRIVATE_HOSTS` (an intranet wiki)."""
    address = ipaddress.ip_address(ip.split("%", 1)[0])
    if isinstance(address, ipaddress.IPv6Address):
        # An IPv4 address inside an IPv6 one reaches that IPv4 address: it is the one judged.
        if address.ipv4_mapped or address.sixtofour:
            address = address.ipv4_mapped or address.sixtofour
        elif address in _NAT64:
            address = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        elif address.teredo:
            address = address.teredo[1]
    hosts, networks = _allowed_private()
    if host.lower().rstrip(".") in hosts or any(address in n for n in networks):
        return True
    return address.is_global and not address.is_multicast


def _addresses(host: str, port: int) -> list[str]:
    """The host's addresses, Refused when any of them is not allowed."""
    try:
        found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise Refused(f"{host} is not a name that can be found") from exc
    addresses = list(dict.fromkeys(info[4][0] for info in found))
    refused = [a for a in addresses if not address_allowed(a, host)]
    if refused or not addresses:
        raise Refused(
            f"{host} is a private address ({refused[0] if refused else 'none'}); "
            "an administrator can allow it with DOCENT_WEB_PRIVATE_HOSTS"
        )
    return addresses


def check_host(url: str) -> None:
    """Refused at once for an address that is plainly private (an IP address, localhost), so that
    whoever adds it is told now. Names are not looked up here (no request waits on DNS): the
    reading checks every address it connects to."""
    host = urlsplit(check_url(url)).hostname
    if host == "localhost" or host.endswith(".localhost"):
        address = "127.0.0.1"
    else:
        try:
            address = str(ipaddress.ip_address(host))
        except ValueError:
            return
    if not address_allowed(address, host):
        raise Refused(
            f"{host} is a private address; an administrator can allow it with DOCENT_WEB_PRIVATE_HOSTS"
        )


class _GuardedBackend(httpcore.SyncBackend):
    """Resolves the name itself, refuses it when any of its addresses is not allowed, and connects
    to the address it checked."""

    def connect_tcp(self, host, port, timeout=None, local_address=None, socket_options=None):
        addresses = _addresses(host, port)
        last: Exception | None = None
        for address in addresses:
            try:
                return super().connect_tcp(address, port, timeout, local_address, socket_options)
            except httpcore.ConnectError as exc:
                last = exc
        raise last  # type: ignore[misc]


def check_url(url: str) -> str:
    """The address as it will be fetched (no fragment), or Refused: http(s) only, a host, no
    credentials in it. Its addresses are checked when it is fetched."""
    url = urldefrag(url.strip())[0]
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise Refused("give a web address starting with http:// or https://")
    if parts.username or parts.password:
        raise Refused("a web address with a user name or password in it is not read")
    try:
        port = parts.port
    except ValueError as exc:
        raise Refused("the address's port is not a number") from exc
    # HTTP wants ASCII: an international name in its IDNA form, other characters percent-encoded.
    try:
        host = parts.hostname.encode("idna").decode("ascii")
    except UnicodeError as exc:
        raise Refused(f"{parts.hostname} is not a host name") from exc
    if ":" in host:
        host = f"[{host}]"  # an IPv6 address
    netloc = host if port is None else f"{host}:{port}"
    path = quote(parts.path or "/", safe="/%:@!$&'()*+,;=-._~")
    query = quote(parts.query, safe="/?%:@!$&'()*+,;=-._~")
    return urlunsplit((parts.scheme, netloc, path, query, ""))


@dataclass
class Page:
    url: str  # where it was found, after redirects
    content_type: str
    body: bytes
    title: str = ""
    links: list[str] = field(default_factory=list)
    # <meta name="robots">: noindex pages are not kept, nofollow pages' links not followed.
    index: bool = True
    scripted: bool = False  # no text until its scripts run (Docent runs none)
    text_hash: str = ""  # an HTML page's title and visible text, hashed: what a change must change
    validators: dict = field(default_factory=dict)  # ETag and Last-Modified, to ask again conditionally
    not_modified: bool = False  # asked conditionally, unchanged (304): no body, no links

    @property
    def extension(self) -> str:
        return _READABLE.get(self.content_type) or mimetypes.guess_extension(self.content_type) or ""


def _ssl_context() -> ssl.SSLContext:
    """The public authorities (certifi's, as httpx trusts) and the system's own, where an intranet's
    authority is installed (or named by SSL_CERT_FILE / SSL_CERT_DIR)."""
    context = ssl.create_default_context(cafile=certifi.where())
    context.load_default_certs()
    return context


class Fetcher:
    """One connection pool for a reading; GET only, no cookies, no proxy from the environment (its
    address would be the one checked, not the page's)."""

    def __init__(
        self,
        *,
        timeout: float | None = None,
        max_bytes: int | None = None,
        header: tuple[str, str, str] | None = None,
    ):
        """`header`: (site, name, value), a header sent with every request to that site (its
        scheme, host and port: a source's own), and to no other, redirects included."""
        self.timeout = timeout or settings.DOCENT_WEB_TIMEOUT_S
        self.max_bytes = max_bytes or settings.DOCENT_MAX_UPLOAD_BYTES
        self.header = header
        self.pool = httpcore.ConnectionPool(
            ssl_context=_ssl_context(), network_backend=_GuardedBackend(), max_connections=4, retries=0
        )

    def close(self) -> None:
        self.pool.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def get(
        self,
        url: str,
        *,
        accept: Callable[[str], bool] | None = None,
        validators: dict[str, dict] | None = None,
    ) -> Fetched:
        """The page, following up to five redirects, each checked. `accept(content_type)` false:
        the body is not read (WebError). An address with `validators` (by address, as `Fetched`
        gives them) is asked for conditionally: NotModified when the server says it is unchanged."""
        for _ in range(_MAX_REDIRECTS + 1):
            url = check_url(url)
            conditional = (validators or {}).get(url)
            own = self.header is not None and same_site(url, self.header[0])
            status, headers, body = self._get_once(url, accept, conditional, self.header[1:] if own else None)
            location = headers.get("location")
            if status == 304 and conditional:
                raise NotModified(url)
            if status in _REDIRECTS:
                if not location:
                    raise WebError(f"the server redirects ({status}) without saying where", status)
                url = urljoin(url, location)
                continue
            if status in (404, 410):
                raise Gone(f"the server says the page is not there ({status})", status)
            if status >= 300:
                raise WebError(f"the server answered {status}", status)
            full_type = headers.get("content-type", "").lower()
            content_type, _, params = full_type.partition(";")
            content_type = content_type.strip()
            found = {"etag": headers.get("etag", ""), "modified": headers.get("last-modified", "")}
            return Fetched(
                url,
                content_type,
                _utf8(body, content_type, params),
                {k: v.strip() for k, v in found.items() if v.strip()},
            )
        raise WebError("the page redirects more than five times")

    def _get_once(self, url, accept, conditional=None, header=None):
        request_headers = [
            (b"User-Agent", USER_AGENT.encode()),
            (b"Accept", b"text/html,application/xhtml+xml,application/pdf,text/plain;q=0.9,*/*;q=0.5"),
            (b"Accept-Encoding", b"gzip, deflate"),
        ]
        if header:
            request_headers.append((header[0].encode("ascii"), header[1].encode("latin-1")))
        if conditional:
            if conditional.get("etag"):
                request_headers.append((b"If-None-Match", conditional["etag"].encode("latin-1")))
            if conditional.get("modified"):
                request_headers.append((b"If-Modified-Since", conditional["modified"].encode("latin-1")))
        timeouts = {
            "connect": self.timeout,
            "read": self.timeout,
            "write": self.timeout,
            "pool": self.timeout,
        }
        deadline = time.monotonic() + 4 * self.timeout
        try:
            with self.pool.stream(
                "GET", url, headers=request_headers, extensions={"timeout": timeouts}
            ) as response:
                headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in response.headers}
                status = response.status
                if status in _REDIRECTS or status >= 300:
                    return status, headers, b""
                content_type = headers.get("content-type", "").split(";", 1)[0].strip().lower()
                if accept is not None and not accept(content_type):
                    raise WebError(f"not a kind of page Docent reads ({content_type or 'no type given'})")
                declared = headers.get("content-length", "")
                if declared.isdigit() and int(declared) > self.max_bytes:
                    raise WebError(self._too_large())
                encoding = headers.get("content-encoding", "identity").strip().lower()
                if encoding not in ("identity", "gzip", "x-gzip", "deflate"):
                    raise WebError(f"the page comes in an encoding Docent does not read ({encoding})")
                # Decompressed as it arrives, never past the size limit (a small gzip can hold gigabytes).
                inflate = (
                    zlib.decompressobj(wbits=47 if "gzip" in encoding else 15)
                    if encoding != "identity"
                    else None
                )
                body = bytearray()
                for piece in response.iter_stream():
                    if inflate is not None:
                        piece = inflate.decompress(piece, self.max_bytes + 1 - len(body))
                        if inflate.unconsumed_tail:
                            raise WebError(self._too_large())
                    body += piece
                    if len(body) > self.max_bytes:
                        raise WebError(self._too_large())
                    if time.monotonic() > deadline:
                        raise WebError("the page took too long to arrive")
                if inflate is not None:
                    body += inflate.flush()
                    if len(body) > self.max_bytes:
                        raise WebError(self._too_large())
                return status, headers, bytes(body)
        except Refused:
            raise
        except zlib.error as exc:
            raise WebError("the page's compressed body is damaged") from exc
        except httpcore.TimeoutException as exc:
            raise WebError("the server did not answer in time") from exc
        except (httpcore.NetworkError, httpcore.ProtocolError, httpcore.UnsupportedProtocol) as exc:
            raise WebError(f"the server could not be reached ({type(exc).__name__})") from exc

    def _too_large(self) -> str:
        return f"the page is larger than the {self.max_bytes // (1024 * 1024)} MB limit"


def _utf8(body: bytes, content_type: str, params: str) -> bytes:
    """A text page in the charset its Content-Type names, as UTF-8 (the parsers read UTF-8, and an
    HTML page's <meta> charset, but not the header a server sent it with)."""
    if content_type not in _TEXT_TYPES:
        return body
    found = re.search(r"charset\s*=\s*[\"']?([\w.:-]+)", params)
    try:
        body.decode("utf-8")
        return body
    except UnicodeDecodeError:
        if not found:
            return body
    try:
        return body.decode(found.group(1)).encode("utf-8")
    except (LookupError, UnicodeDecodeError):
        return body


def readable(content_type: str) -> bool:
    return content_type in _READABLE or content_type in _XML


def _html_page(url: str, content_type: str, body: bytes) -> Page:
    page = Page(url=url, content_type=content_type, body=body)
    soup = BeautifulSoup(body, "html.parser")
    if soup.title and soup.title.string:
        page.title = " ".join(soup.title.string.split())[:300]
    robots = soup.find("meta", attrs={"name": lambda v: v and v.lower() in ("robots", "docentbot")})
    directives = (robots.get("content") or "").lower() if robots else ""
    page.index = "noindex" not in directives and "none" not in directives
    if "nofollow" not in directives and "none" not in directives:
        base = soup.find("base", href=True)
        base_url = urljoin(url, base["href"]) if base else url
        for a in soup.find_all("a", href=True):
            if "nofollow" not in (a.get("rel") or []):
                page.links.append(urldefrag(urljoin(base_url, a["href"].strip()))[0])
    # A page that builds its text with scripts (a single-page app) holds next to none without them.
    scripted = soup.find("script") is not None
    for tag in soup.find_all(("script", "style", "noscript", "template")):
        tag.decompose()
    text = (soup.body or soup).get_text(" ", strip=True)
    page.scripted = scripted and len(text) < 40
    page.text_hash = hashlib.sha256(f"{page.title}\n{text}".encode()).hexdigest()
    return page


def _sitemap_locs(body: bytes) -> tuple[str, list[str]] | None:
    """("urlset" or "sitemapindex", its <loc>s), or None for XML that is no sitemap."""
    soup = BeautifulSoup(body, "xml")
    root = soup.find(["urlset", "sitemapindex"])
    if root is None:
        return None
    return root.name, [" ".join(loc.get_text().split()) for loc in root.find_all("loc")]


# What a link's name says is no page Docent reads (the type is checked again when fetched).
_NOT_PAGES = (
    ".png",
    ".jpg",
    ".jpeg",
    ".gif",
    ".svg",
    ".webp",
    ".ico",
    ".bmp",
    ".css",
    ".js",
    ".mjs",
    ".map",
    ".woff",
    ".woff2",
    ".ttf",
    ".otf",
    ".mp3",
    ".mp4",
    ".m4a",
    ".webm",
    ".avi",
    ".mov",
    ".wav",
    ".zip",
    ".gz",
    ".tgz",
    ".tar",
    ".bz2",
    ".xz",
    ".7z",
    ".rar",
    ".exe",
    ".dmg",
    ".iso",
    ".msi",
    ".apk",
)
_TRACKING = re.compile(r"^(utm_\w+|fbclid|gclid|mc_cid|mc_eid)$", re.I)


def _without_tracking(url: str) -> str:
    """A link without the campaign parameters that make one page look like many."""
    parts = urlsplit(url)
    if not parts.query:
        return url
    kept = [p for p in parts.query.split("&") if not _TRACKING.match(p.split("=", 1)[0])]
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "&".join(kept), ""))


def scope_of(url: str) -> tuple[str, str]:
    """(origin, path prefix): a crawl from https://docs.example.com/guide/intro reads
    https://docs.example.com/guide/..."""
    parts = urlsplit(url)
    prefix = parts.path if parts.path.endswith("/") else parts.path.rsplit("/", 1)[0] + "/"
    return f"{parts.scheme}://{parts.netloc}", prefix


def in_scope(url: str, scope: tuple[str, str]) -> bool:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.lower()}" == scope[0] and (parts.path or "/").startswith(scope[1])


class _Robots:
    """robots.txt, one a site (RFC 9309): none there (4xx) allows everything; one that cannot be
    read (5xx, unreachable) allows nothing. `texts` (origin -> the file, or "" for allow-all, None
    for disallow-all) is kept with a crawl's state, so a crawl going on later reads none again."""

    def __init__(self, texts: dict[str, str | None] | None = None):
        self.texts: dict[str, str | None] = dict(texts or {})
        self.parsers: dict[str, urllib.robotparser.RobotFileParser] = {}

    def _parser(self, origin: str, fetcher: Fetcher) -> urllib.robotparser.RobotFileParser:
        if origin not in self.texts:
            try:
                body = fetcher.get(f"{origin}/robots.txt").body
                self.texts[origin] = body.decode("utf-8", "replace")
            except Refused:
                raise
            except WebError as exc:
                # 4xx (401 and 403 too): as though there were none; 5xx or unreachable: nothing.
                self.texts[origin] = "" if exc.status is not None and exc.status < 500 else None
        if origin not in self.parsers:
            parser = urllib.robotparser.RobotFileParser()
            text = self.texts[origin]
            if text is None:
                parser.disallow_all = True
            else:
                parser.parse(text.splitlines())
            self.parsers[origin] = parser
        return self.parsers[origin]

    def allows(self, url: str, fetcher: Fetcher) -> bool:
        return self._parser(_origin(url), fetcher).can_fetch("DocentBot", url)

    def delay(self, url: str) -> float:
        parser = self.parsers.get(_origin(url))
        found = parser.crawl_delay("DocentBot") if parser else None
        return min(float(found or 0), 10.0)


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def same_site(url: str, other: str) -> bool:
    """Whether two addresses share scheme, host and port (the browser's origin)."""
    a, b = urlsplit(url), urlsplit(other)
    defaults = {"http": 80, "https": 443}
    return (a.scheme, (a.hostname or "").lower(), a.port or defaults.get(a.scheme)) == (
        b.scheme,
        (b.hostname or "").lower(),
        b.port or defaults.get(b.scheme),
    )


_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,100}$")
# Headers the fetcher sets itself, or that would change how the request is framed or routed.
_OWN_HEADERS = {
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "upgrade",
    "te",
    "trailer",
    "keep-alive",
    "expect",
    "user-agent",
    "accept",
    "accept-encoding",
    "if-none-match",
    "if-modified-since",
}


def check_header(name: str, value: str, url: str) -> tuple[str, str]:
    """A sign-in header for a source at `url`, checked: (name, value). ValueError saying what is
    wrong: a name that is no header name or one the fetcher sets itself, a value with line breaks or
    over 4,096 characters, or plain http to a site not listed in DOCENT_WEB_PRIVATE_HOSTS (a
    token sent unencrypted across the internet)."""
    name, value = name.strip(), value.strip()
    if not _TOKEN.match(name):
        raise ValueError("a header name is letters, digits and - (such as Authorization)")
    if name.lower() in _OWN_HEADERS:
        raise ValueError(f"Docent sets {name} itself")
    if not value or len(value) > 4096 or any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise ValueError("a header value is one line of at most 4,096 characters")
    try:
        value.encode("latin-1")
    except UnicodeEncodeError:
        raise ValueError("a header value is plain ASCII or Latin-1 text") from None
    parts = urlsplit(url)
    if parts.scheme != "https" and not _listed_private(parts.hostname or ""):
        raise ValueError(
            "a sign-in header is sent only over https (or to an intranet host the operator lists in "
            "DOCENT_WEB_PRIVATE_HOSTS)"
        )
    return name, value


class Crawl:
    """A reading of a source that can stop and go on later (`state()` / `Crawl.resume`), so a big
    site is read in slices that let other tasks run between them, and a worker lost mid-way loses
    one slice. The first address failing is WebError: the whole reading failed.

    One page alone; with `crawl`, the pages its links lead to under its folder, breadth first,
    robots.txt honoured; a sitemap (XML with <urlset> or <sitemapindex>) gives the pages to read, on
    its own site. `kept` are the pages the caller kept (`keep`); at most `max_pages` of them."""

    def __init__(self, url: str, *, crawl: bool, max_pages: int):
        self.start = check_url(url)
        self.crawl = crawl
        self.max_pages = max_pages
        self.scope = scope_of(self.start)
        self.queue: list[str] = [self.start]
        self.seen: set[str] = {self.start}
        self.kept: list[str] = []
        self.skipped: list[tuple[str, str]] = []
        self.gone: list[str] = []
        self.complete = True
        self.stopped = ""  # why it ended before its queue did
        self.sitemaps = 0
        self.first = True
        self.robots = _Robots()

    def state(self) -> dict:
        return {
            "start": self.start,
            "crawl": self.crawl,
            "max_pages": self.max_pages,
            "scope": list(self.scope),
            "queue": self.queue,
            "seen": sorted(self.seen),
            "kept": self.kept,
            "skipped": [list(s) for s in self.skipped],
            "gone": self.gone,
            "complete": self.complete,
            "stopped": self.stopped,
            "sitemaps": self.sitemaps,
            "first": self.first,
            "robots": self.robots.texts,
        }

    @classmethod
    def resume(cls, state: dict) -> Crawl:
        crawl = cls(state["start"], crawl=state["crawl"], max_pages=state["max_pages"])
        crawl.scope = tuple(state["scope"])
        crawl.queue = list(state["queue"])
        crawl.seen = set(state["seen"])
        crawl.kept = list(state["kept"])
        crawl.skipped = [tuple(s) for s in state["skipped"]]
        crawl.gone = list(state["gone"])
        crawl.complete = state["complete"]
        crawl.stopped = state["stopped"]
        crawl.sitemaps = state["sitemaps"]
        crawl.first = state["first"]
        crawl.robots = _Robots(state["robots"])
        return crawl

    @property
    def done(self) -> bool:
        return not self.queue or bool(self.stopped)

    def stop(self, why: str) -> None:
        self.stopped = why
        self.complete = False

    def keep(self, url: str) -> None:
        self.kept.append(url)

    def skip(self, url: str, why: str) -> None:
        self.skipped.append((url, why))

    def pages(
        self, fetcher: Fetcher, *, until: float | None = None, validators: dict[str, dict] | None = None
    ) -> Iterator[Page]:
        """The pages read from here on, until the queue is done or `until` (time.monotonic()) comes;
        the caller says of each whether it kept it (`keep`), which the page limit counts. Pages in
        `validators` are asked for conditionally (give only those whose links are not needed): one
        unchanged comes as a Page `not_modified`, without body or links."""
        progressed = False  # at least one address a call, so slices always move on
        while self.queue and not self.stopped:
            if len(self.kept) >= self.max_pages:
                self.stop(f"stopped at {self.max_pages} pages, the source's most")
                return
            if progressed and until is not None and time.monotonic() > until:
                return
            progressed = True
            address = self.queue.pop(0)
            # The address given is read as a browser would; what a crawl or sitemap adds, as a robot.
            if not self.first and not self.robots.allows(address, fetcher):
                self.skip(address, "robots.txt asks robots not to read it")
                continue
            try:
                page = self._read(address, fetcher, validators)
            except WebError as exc:
                if self.first:
                    raise
                if isinstance(exc, Gone):
                    self.gone.append(address)
                else:
                    self.skip(address, str(exc))
                    if not isinstance(exc, Refused):
                        self.complete = False  # it may still be there: its document is kept
                continue
            if page is None:
                continue  # a sitemap, its pages queued
            final = page.url
            if self.first and final != self.start:
                self.scope = scope_of(final)  # http://x redirected to https://x/
            self.first = False
            if self.crawl:
                self._follow(page.links)
            if not page.index:
                self.skip(final, "the page asks not to be indexed (noindex)")
                continue
            if page.scripted:
                self.skip(final, "the page shows its text only by running scripts, which Docent does not")
                continue
            if final != address and final in self.kept:
                continue  # two addresses leading to one page
            self.seen.add(final)
            yield page
            if self.queue:
                time.sleep(max(settings.DOCENT_WEB_CRAWL_DELAY_S, self.robots.delay(address)))

    def _read(self, address: str, fetcher: Fetcher, validators: dict[str, dict] | None) -> Page | None:
        try:
            final, content_type, body, found = fetcher.get(address, accept=readable, validators=validators)
        except NotModified as exc:
            return Page(url=exc.url, content_type="", body=b"", not_modified=True)
        if content_type in _XML:
            self._sitemap(address, final, body)
            return None
        page = (
            _html_page(final, content_type, body)
            if reading_html(content_type)
            else Page(url=final, content_type=content_type, body=body)
        )
        page.validators = found
        return page

    def _follow(self, links: list[str]) -> None:
        for link in links:
            try:
                link = _without_tracking(check_url(link))
            except Refused:
                continue
            if urlsplit(link).path.lower().endswith(_NOT_PAGES):
                continue  # images, styles, scripts, media, archives: not read, so not fetched
            if link not in self.seen and in_scope(link, self.scope):
                if len(self.queue) >= _QUEUE_PER_PAGE * self.max_pages:
                    self.complete = False  # pages left unvisited may still be there
                    return
                self.seen.add(link)
                self.queue.append(link)

    def _sitemap(self, address: str, final: str, body: bytes) -> None:
        found = _sitemap_locs(body)
        if found is None or self.sitemaps >= _MAX_SITEMAPS:
            if self.first:
                raise WebError("the address gives XML that is no sitemap")
            self.skip(address, "XML that is no sitemap")
            return
        self.sitemaps += 1
        if self.first:
            self.scope = (scope_of(final)[0], "/")  # a sitemap lists its site's pages
            self.first = False
        for loc in found[1]:
            try:
                loc = check_url(urljoin(final, loc))
            except Refused:
                continue
            if loc not in self.seen and in_scope(loc, self.scope):
                if len(self.queue) >= _QUEUE_PER_PAGE * self.max_pages:
                    self.complete = False
                    return
                self.seen.add(loc)
                self.queue.append(loc)


def reading_html(content_type: str) -> bool:
    return content_type in ("text/html", "application/xhtml+xml")


def document_name(url: str) -> str:
    """The name a page's document keeps: its address without the scheme ("docs.example.com/guide/")."""
    parts = urlsplit(url)
    name = parts.netloc + (parts.path or "/")
    if parts.query:
        name += "?" + parts.query
    return name
