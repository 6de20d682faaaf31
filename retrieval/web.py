"""Reading web pages for web sources: a fetcher that reaches only public addresses (unless the
operator names private ones), and a crawler that follows a site's links under one address or reads
its sitemap, honouring robots.txt. No database here: `services.web_source_sync` stores what it finds.

Server-side request forgery is the risk of any fetch a user names: the address is checked after the
name is resolved, at connection time, for every redirect, so a name resolving to 127.0.0.1 or
169.254.169.254 (a cloud's metadata service) is refused, and the checked address is the one connected
to (no second lookup an attacker's DNS could answer differently).
"""

from __future__ import annotations

import ipaddress
import mimetypes
import socket
import time
import urllib.robotparser
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from urllib.parse import quote, urldefrag, urljoin, urlsplit, urlunsplit

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
_REDIRECTS = {301, 302, 303, 307, 308}
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


def _allowed_private() -> tuple[set[str], list]:
    hosts: set[str] = set()
    networks = []
    for entry in settings.DOCENT_WEB_PRIVATE_HOSTS:
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            hosts.add(entry.lower().rstrip("."))
    return hosts, networks


def address_allowed(ip: str, host: str) -> bool:
    """Public (globally routable) addresses, and the private ones or host names the operator lists
    in `DOCENT_WEB_PRIVATE_HOSTS` (an intranet wiki)."""
    address = ipaddress.ip_address(ip.split("%", 1)[0])
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    hosts, networks = _allowed_private()
    if host.lower().rstrip(".") in hosts or any(address in n for n in networks):
        return True
    return address.is_global and not address.is_multicast


class _GuardedBackend(httpcore.SyncBackend):
    """Resolves the name itself, refuses it when any of its addresses is not allowed, and connects
    to the address it checked."""

    def connect_tcp(self, host, port, timeout=None, local_address=None, socket_options=None):
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

    @property
    def extension(self) -> str:
        return _READABLE.get(self.content_type) or mimetypes.guess_extension(self.content_type) or ""


class Fetcher:
    """One connection pool for a reading; GET only, no cookies, no proxy from the environment (its
    address would be the one checked, not the page's)."""

    def __init__(self, *, timeout: float | None = None, max_bytes: int | None = None):
        self.timeout = timeout or settings.DOCENT_WEB_TIMEOUT_S
        self.max_bytes = max_bytes or settings.DOCENT_MAX_UPLOAD_BYTES
        self.pool = httpcore.ConnectionPool(network_backend=_GuardedBackend(), max_connections=4, retries=0)

    def close(self) -> None:
        self.pool.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def get(self, url: str, *, accept: Callable[[str], bool] | None = None) -> tuple[str, str, bytes]:
        """(final address, content type, body), following up to five redirects, each checked.
        `accept(content_type)` false: the body is not read (WebError)."""
        for _ in range(_MAX_REDIRECTS + 1):
            url = check_url(url)
            status, headers, body, location = self._get_once(url, accept)
            if status in _REDIRECTS:
                if not location:
                    raise WebError(f"the server redirects ({status}) without saying where", status)
                url = urljoin(url, location)
                continue
            if status in (404, 410):
                raise Gone(f"the server says the page is not there ({status})", status)
            if status >= 400:
                raise WebError(f"the server answered {status}", status)
            return url, headers, body
        raise WebError("the page redirects more than five times")

    def _get_once(self, url, accept):
        request_headers = [
            (b"User-Agent", USER_AGENT.encode()),
            (b"Accept", b"text/html,application/xhtml+xml,application/pdf,text/plain;q=0.9,*/*;q=0.5"),
            (b"Accept-Encoding", b"identity"),
        ]
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
                if status in _REDIRECTS or status >= 400:
                    return status, "", b"", headers.get("location")
                content_type = headers.get("content-type", "").split(";", 1)[0].strip().lower()
                if accept is not None and not accept(content_type):
                    raise WebError(f"not a kind of page Docent reads ({content_type or 'no type given'})")
                declared = headers.get("content-length", "")
                if declared.isdigit() and int(declared) > self.max_bytes:
                    raise WebError(self._too_large())
                body = bytearray()
                for piece in response.iter_stream():
                    body += piece
                    if len(body) > self.max_bytes:
                        raise WebError(self._too_large())
                    if time.monotonic() > deadline:
                        raise WebError("the page took too long to arrive")
                return status, content_type, bytes(body), None
        except Refused:
            raise
        except httpcore.TimeoutException as exc:
            raise WebError("the server did not answer in time") from exc
        except (httpcore.NetworkError, httpcore.ProtocolError, httpcore.UnsupportedProtocol) as exc:
            raise WebError(f"the server could not be reached ({type(exc).__name__})") from exc

    def _too_large(self) -> str:
        return f"the page is larger than the {self.max_bytes // (1024 * 1024)} MB limit"


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
    if "nofollow" in directives or "none" in directives:
        return page
    base = soup.find("base", href=True)
    base_url = urljoin(url, base["href"]) if base else url
    for a in soup.find_all("a", href=True):
        if "nofollow" in (a.get("rel") or []):
            continue
        page.links.append(urldefrag(urljoin(base_url, a["href"].strip()))[0])
    return page


def _sitemap_locs(body: bytes) -> tuple[str, list[str]] | None:
    """("urlset" or "sitemapindex", its <loc>s), or None for XML that is no sitemap."""
    soup = BeautifulSoup(body, "xml")
    root = soup.find(["urlset", "sitemapindex"])
    if root is None:
        return None
    return root.name, [" ".join(loc.get_text().split()) for loc in root.find_all("loc")]


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
    read (5xx, unreachable) allows nothing."""

    def __init__(self, fetcher: Fetcher):
        self.fetcher = fetcher
        self.sites: dict[str, urllib.robotparser.RobotFileParser] = {}

    def allows(self, url: str) -> bool:
        parts = urlsplit(url)
        origin = f"{parts.scheme}://{parts.netloc}"
        if origin not in self.sites:
            parser = urllib.robotparser.RobotFileParser()
            try:
                _, _, body = self.fetcher.get(f"{origin}/robots.txt")
                parser.parse(body.decode("utf-8", "replace").splitlines())
            except Gone:
                parser.allow_all = True
            except Refused:
                raise
            except WebError as exc:
                if exc.status is not None and exc.status < 500:  # 401, 403, ...: as though there were none
                    parser.allow_all = True
                else:
                    parser.disallow_all = True
            self.sites[origin] = parser
        return self.sites[origin].can_fetch("DocentBot", url)

    def delay(self, url: str) -> float:
        parts = urlsplit(url)
        parser = self.sites.get(f"{parts.scheme}://{parts.netloc}")
        found = parser.crawl_delay("DocentBot") if parser else None
        return min(float(found or 0), 10.0)


@dataclass
class Reading:
    """What one reading of a source found: pages to keep, and the addresses left out with why.
    `complete`: every page in reach was visited, so a page no longer found is gone."""

    pages: list[Page] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    gone: list[str] = field(default_factory=list)
    complete: bool = True


def read(
    url: str, *, crawl: bool, max_pages: int, deadline: float | None = None, fetcher: Fetcher | None = None
) -> Iterator[Page | Reading]:
    """Read a source: yields each page as it arrives, then the Reading. The first address failing is
    WebError (the whole reading failed, nothing is to be deleted); later pages failing are skipped.

    A sitemap (XML with <urlset> or <sitemapindex>) gives the pages to read, on its own site. With
    `crawl`, links are followed breadth first under the first address's folder, robots.txt honoured.
    """
    own = fetcher is None
    fetcher = fetcher or Fetcher()
    reading = Reading()
    try:
        start = check_url(url)
        scope = scope_of(start)
        robots = _Robots(fetcher) if crawl else None
        queue: list[str] = [start]
        seen: set[str] = {start}
        kept: set[str] = set()
        sitemaps = 0
        first = True
        while queue:
            if len(reading.pages) >= max_pages:
                reading.complete = False
                break
            if deadline is not None and time.monotonic() > deadline:
                reading.complete = False
                break
            address = queue.pop(0)
            if robots is not None and not first and not robots.allows(address):
                reading.skipped.append((address, "robots.txt asks robots not to read it"))
                continue
            try:
                final, content_type, body = fetcher.get(address, accept=readable)
            except Gone:
                if first:
                    raise
                reading.gone.append(address)
                continue
            except Refused as exc:
                if first:
                    raise
                reading.skipped.append((address, str(exc)))
                continue
            except WebError as exc:
                if first:
                    raise
                reading.skipped.append((address, str(exc)))
                reading.complete = False  # it may still be there: its document is kept
                continue
            if content_type in _XML:
                found = _sitemap_locs(body)
                if found is None or sitemaps >= _MAX_SITEMAPS:
                    if first:
                        raise WebError("the address gives XML that is no sitemap")
                    reading.skipped.append((address, "XML that is no sitemap"))
                    continue
                sitemaps += 1
                if first:
                    scope = (scope_of(final)[0], "/")  # a sitemap lists its site's pages
                for loc in found[1]:
                    try:
                        loc = check_url(urljoin(final, loc))
                    except Refused:
                        continue
                    if loc not in seen and in_scope(loc, scope):
                        seen.add(loc)
                        queue.append(loc)
                first = False
                continue
            page = (
                _html_page(final, content_type, body)
                if reading_html(content_type)
                else Page(url=final, content_type=content_type, body=body)
            )
            if first:
                scope = scope_of(final) if final != start else scope  # http://x redirected to https://x/
            first = False
            if crawl:
                for link in page.links:
                    try:
                        link = check_url(link)
                    except Refused:
                        continue
                    if link not in seen and in_scope(link, scope):
                        seen.add(link)
                        queue.append(link)
            if not page.index:
                reading.skipped.append((final, "the page asks not to be indexed (noindex)"))
                continue
            if final != address and final in kept:
                continue  # two addresses leading to one page
            seen.add(final)
            kept.add(final)
            reading.pages.append(page)
            yield page
            if robots is not None and queue:
                time.sleep(max(settings.DOCENT_WEB_CRAWL_DELAY_S, robots.delay(address)))
        yield reading
    finally:
        if own:
            fetcher.close()


def reading_html(content_type: str) -> bool:
    return content_type in ("text/html", "application/xhtml+xml")


def document_name(url: str) -> str:
    """The name a page's document keeps: its address without the scheme ("docs.example.com/guide/")."""
    parts = urlsplit(url)
    name = parts.netloc + (parts.path or "/")
    if parts.query:
        name += "?" + parts.query
    return name
