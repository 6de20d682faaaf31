"""Reading the web for web sources: only public addresses unless listed, every redirect checked,
limits, robots.txt, scope and sitemaps; against a real HTTP server on loopback."""

from types import SimpleNamespace

import pytest

from retrieval import web


def _read(url, *, crawl: bool, max_pages: int) -> SimpleNamespace:
    """A whole reading at once, keeping every page, as the service's slices do together."""
    crawl_ = web.Crawl(url, crawl=crawl, max_pages=max_pages)
    pages = []
    with web.Fetcher() as fetcher:
        for page in crawl_.pages(fetcher):
            crawl_.keep(page.url)
            pages.append(page)
    assert crawl_.done
    return SimpleNamespace(pages=pages, skipped=crawl_.skipped, gone=crawl_.gone, complete=crawl_.complete)


@pytest.mark.parametrize(
    "ip, allowed",
    [
        ("93.184.215.14", True),
        ("2606:2800:21f:cb07:6820:80da:af6b:8b2c", True),
        ("127.0.0.1", False),
        ("10.1.2.3", False),
        ("172.16.0.1", False),
        ("192.168.1.1", False),
        ("100.64.0.1", False),  # carrier-grade NAT
        ("169.254.169.254", False),  # a cloud's metadata service
        ("0.0.0.0", False),
        ("224.0.0.1", False),
        ("::1", False),
        ("::ffff:127.0.0.1", False),
        ("fe80::1%eth0", False),
        ("fd00::1", False),
        ("64:ff9b::7f00:1", False),  # NAT64 of 127.0.0.1
        ("64:ff9b::5db8:d70e", True),  # NAT64 of a public address
        ("2002:a00:1::1", False),  # 6to4 of 10.0.0.1
        ("2001:0:4136:e378:8000:63bf:f5ff:fffe", False),  # Teredo, its client 10.0.0.1
    ],
)
def test_only_public_addresses_by_default(settings, ip, allowed):
    settings.DOCENT_WEB_PRIVATE_HOSTS = []
    assert web.address_allowed(ip, "example.org") is allowed


def test_private_hosts_and_networks_can_be_allowed(settings):
    settings.DOCENT_WEB_PRIVATE_HOSTS = ["wiki.intranet", "10.0.0.0/8"]
    assert web.address_allowed("10.20.30.40", "anything")
    assert web.address_allowed("192.168.1.5", "Wiki.Intranet.")
    assert not web.address_allowed("192.168.1.5", "other.intranet")


@pytest.mark.parametrize(
    "url",
    [
        "ftp://example.org/x",
        "file:///etc/passwd",
        "example.org/page",
        "http://user:pw@example.org/",
        "http://x:y/",
    ],
)
def test_addresses_that_are_not_read(url):
    with pytest.raises(web.Refused):
        web.check_url(url)


def test_check_url_drops_the_fragment_and_lowers_the_host_and_gives_ascii():
    assert web.check_url(" https://Docs.Example.org/Guide#top ") == "https://docs.example.org/Guide"
    assert web.check_url("http://example.org") == "http://example.org/"
    assert web.check_url("https://Bücher.example:8443/straße?q=groß&x=%20") == (
        "https://xn--bcher-kva.example:8443/stra%C3%9Fe?q=gro%C3%9F&x=%20"
    )
    assert web.check_url("http://[::1]:8080/a b") == "http://[::1]:8080/a%20b"


def test_loopback_is_refused_by_default(settings, fake_site_server):
    fake_site_server.reset()
    settings.DOCENT_WEB_PRIVATE_HOSTS = []
    fake_site_server.html("/", "Home", "hello")
    port = fake_site_server.server.server_address[1]
    for url in (f"{fake_site_server.origin}/", f"http://localhost:{port}/"):
        with (
            web.Fetcher() as fetcher,
            pytest.raises(web.Refused, match="private address.*DOCENT_WEB_PRIVATE_HOSTS"),
        ):
            fetcher.get(url)
    assert fake_site_server.requests == []  # refused before connecting


def test_a_redirect_to_a_private_address_is_refused(settings, fake_site):
    # The site is allowed by its name; where it redirects is checked again, by address.
    settings.DOCENT_WEB_PRIVATE_HOSTS = ["localhost"]
    port = fake_site.server.server_address[1]
    fake_site.html("/secret", "Secret", "internal")
    fake_site.redirect("/go", f"http://127.0.0.1:{port}/secret")
    fake_site.redirect("/metadata", "http://169.254.169.254/latest/meta-data/")
    with web.Fetcher() as fetcher:
        for path in ("/go", "/metadata"):
            with pytest.raises(web.Refused):
                fetcher.get(f"http://localhost:{port}{path}")
    assert "/secret" not in fake_site.requests


def test_redirects_are_followed_and_limited(fake_site):
    fake_site.html("/new", "New", "moved here")
    fake_site.redirect("/old", "/new", status=301)
    for i in range(7):
        fake_site.redirect(f"/loop{i}", f"/loop{i + 1}")
    fake_site.redirect("/nowhere", "")
    with web.Fetcher() as fetcher:
        with pytest.raises(web.WebError, match="without saying where"):
            fetcher.get(f"{fake_site.origin}/nowhere")
        url, content_type, body, _ = fetcher.get(f"{fake_site.origin}/old")
        assert url == f"{fake_site.origin}/new" and content_type == "text/html" and b"moved here" in body
        with pytest.raises(web.WebError, match="more than five times"):
            fetcher.get(f"{fake_site.origin}/loop0")


def test_a_page_is_asked_for_again_with_its_validators(fake_site):
    fake_site.page(
        "/notes",
        b"v1",
        type="text/plain",
        ETag='W/"n1"',
        **{"Last-Modified": "Tue, 01 Sep 2026 10:00:00 GMT"},
    )
    fake_site.page("/dated", b"d1", type="text/plain", **{"Last-Modified": "Tue, 01 Sep 2026 10:00:00 GMT"})
    fake_site.redirect("/old-notes", "/notes")
    with web.Fetcher() as fetcher:
        first = fetcher.get(f"{fake_site.origin}/notes")
        assert first.validators == {"etag": 'W/"n1"', "modified": "Tue, 01 Sep 2026 10:00:00 GMT"}
        dated = fetcher.get(f"{fake_site.origin}/dated")
        assert dated.validators == {"modified": "Tue, 01 Sep 2026 10:00:00 GMT"}
        known = {first.url: first.validators, dated.url: dated.validators}
        # Unchanged: the server says so without the page, at the address it ends at.
        for path, url in (("/notes", "/notes"), ("/old-notes", "/notes"), ("/dated", "/dated")):
            with pytest.raises(web.NotModified) as unchanged:
                fetcher.get(f"{fake_site.origin}{path}", validators=known)
            assert unchanged.value.url == f"{fake_site.origin}{url}"
        # The redirect's first hop has no validators of its own; the page it leads to has.
        assert [h.get("if-none-match") for h in fake_site.headers[-4:]] == ['W/"n1"', None, 'W/"n1"', None]
        assert fake_site.headers[-1]["if-modified-since"] == "Tue, 01 Sep 2026 10:00:00 GMT"
        # Changed: the page, with its new validators.
        fake_site.page("/notes", b"v2", type="text/plain", ETag='"n2"')
        again = fetcher.get(f"{fake_site.origin}/notes", validators=known)
        assert (again.body, again.validators) == (b"v2", {"etag": '"n2"'})
        # Without validators, never a 304 taken for an answer.
        assert fetcher.get(f"{fake_site.origin}/dated").body == b"d1"


def test_size_and_time_limits(fake_site):
    fake_site.page("/big", b"x" * 5000, type="text/plain")
    fake_site.html("/slow", "Slow", "late")
    with web.Fetcher(max_bytes=4000) as fetcher, pytest.raises(web.WebError, match="larger than"):
        fetcher.get(f"{fake_site.origin}/big")
    fake_site.stall_s = 1.0
    with web.Fetcher(timeout=0.3) as fetcher, pytest.raises(web.WebError, match="in time"):
        fetcher.get(f"{fake_site.origin}/slow")


def test_gone_and_errors_say_so(fake_site):
    fake_site.page("/broken", b"oops", status=500, type="text/plain")
    with web.Fetcher() as fetcher:
        with pytest.raises(web.Gone, match="404"):
            fetcher.get(f"{fake_site.origin}/missing")
        with pytest.raises(web.WebError, match="answered 500"):
            fetcher.get(f"{fake_site.origin}/broken")


def test_a_sign_in_header_goes_to_the_sources_own_site_only(fake_site):
    port = fake_site.server.server_address[1]
    fake_site.html("/wiki/", "Wiki", "Members only.")
    fake_site.redirect("/away", f"http://localhost:{port}/wiki/")  # the same server, another site
    with web.Fetcher(header=(f"{fake_site.origin}/wiki/", "Authorization", "Bearer s3cret")) as fetcher:
        fetcher.get(f"{fake_site.origin}/wiki/")
        fetcher.get(f"{fake_site.origin}/away")
    sent = [
        (path, h.get("authorization")) for path, h in zip(fake_site.requests, fake_site.headers, strict=True)
    ]
    assert sent == [("/wiki/", "Bearer s3cret"), ("/away", "Bearer s3cret"), ("/wiki/", None)]


@pytest.mark.parametrize(
    ("name", "value", "url", "error"),
    [
        ("Auth orization", "x", "https://wiki.example.org/", "a header name is"),
        ("Host", "evil.example.org", "https://wiki.example.org/", "Docent sets Host itself"),
        ("Accept-Encoding", "br", "https://wiki.example.org/", "Docent sets Accept-Encoding itself"),
        ("Cookie", "a=1\r\nX-Evil: 1", "https://wiki.example.org/", "one line"),
        ("Cookie", "", "https://wiki.example.org/", "one line"),
        ("Cookie", "jeton=\u20ac", "https://wiki.example.org/", "ASCII or Latin-1"),
        ("Authorization", "Bearer t", "http://wiki.example.org/", "only over https"),
    ],
)
def test_what_a_sign_in_header_may_not_be(settings, name, value, url, error):
    with pytest.raises(ValueError, match=error):
        web.check_header(name, value, url)


def test_a_sign_in_header_goes_over_http_only_to_listed_intranet_hosts(settings):
    settings.DOCENT_WEB_PRIVATE_HOSTS = ["wiki.intranet", "10.20.0.0/16"]
    assert web.check_header(" X-Api-Key ", " k ", "http://wiki.intranet/") == ("X-Api-Key", "k")
    assert web.check_header("X-Api-Key", "k", "http://10.20.3.4:8080/")[0] == "X-Api-Key"
    with pytest.raises(ValueError, match="only over https"):
        web.check_header("X-Api-Key", "k", "http://10.21.3.4/")


def test_one_page_is_read_without_its_links(fake_site):
    fake_site.html("/docs/intro", "Intro", "Welcome to the guide.", links=("/docs/install",))
    fake_site.html("/docs/install", "Install", "pip install it")
    reading = _read(f"{fake_site.origin}/docs/intro", crawl=False, max_pages=1)
    assert [p.url for p in reading.pages] == [f"{fake_site.origin}/docs/intro"]
    assert reading.pages[0].title == "Intro" and reading.pages[0].extension == ".html"
    assert fake_site.requests == ["/docs/intro"]  # robots.txt is for crawls, not a page asked for


def test_a_crawl_stays_under_its_folder_and_honours_robots(fake_site):
    o = fake_site.origin
    fake_site.page("/robots.txt", "User-agent: *\nDisallow: /docs/private/\n", type="text/plain")
    fake_site.html(
        "/docs/",
        "Docs",
        "index",
        links=(
            "intro",
            "/docs/guide/setup#part",
            "/docs/private/keys",
            "/blog/post",
            "mailto:a@b.c",
            "http://example.org/",
        ),
    )
    fake_site.html(
        "/docs/intro",
        "Intro",
        "intro text",
        links=(
            "/docs/",
            "guide/setup",
            "/docs/?utm_source=x&utm_medium=y",
            "logo.PNG",
            "app.js",
            "/docs/intro?fbclid=1",
        ),
    )
    fake_site.html("/docs/guide/setup", "Setup", "setup text", links=("../notes.pdf", "hidden"))
    fake_site.page("/docs/notes.pdf", b"%PDF-1.4 not really", type="application/pdf")
    fake_site.html("/docs/guide/hidden", "Hidden", "x", head='<meta name="robots" content="noindex">')
    fake_site.html("/docs/private/keys", "Keys", "secret")
    fake_site.html("/blog/post", "Post", "blog")
    fake_site.page("/docs/image.zip", b"PK", type="application/zip")
    reading = _read(f"{o}/docs/", crawl=True, max_pages=50)
    assert [p.url for p in reading.pages] == [
        f"{o}/docs/",
        f"{o}/docs/intro",
        f"{o}/docs/guide/setup",
        f"{o}/docs/notes.pdf",
    ]
    assert reading.complete
    assert dict(reading.skipped) == {
        f"{o}/docs/private/keys": "robots.txt asks robots not to read it",
        f"{o}/docs/guide/hidden": "the page asks not to be indexed (noindex)",
    }
    assert "/docs/private/keys" not in fake_site.requests and "/blog/post" not in fake_site.requests
    # Campaign parameters do not make one page two; images and scripts are not fetched.
    assert not [r for r in fake_site.requests if "utm_" in r or "fbclid" in r or r.endswith((".PNG", ".js"))]
    assert fake_site.requests.count("/robots.txt") == 1


def test_a_crawl_stops_at_its_most_pages_and_is_then_incomplete(fake_site):
    fake_site.html("/", "Home", "home", links=tuple(f"/p{i}" for i in range(10)))
    for i in range(10):
        fake_site.html(f"/p{i}", f"P{i}", "page")
    reading = _read(f"{fake_site.origin}/", crawl=True, max_pages=3)
    assert len(reading.pages) == 3 and not reading.complete


def test_a_failing_page_keeps_the_reading_incomplete_and_a_missing_one_is_gone(fake_site):
    fake_site.html("/", "Home", "home", links=("/a", "/b", "/c"))
    fake_site.html("/a", "A", "a")
    fake_site.page("/b", b"down", status=503, type="text/plain")
    reading = _read(f"{fake_site.origin}/", crawl=True, max_pages=10)
    assert [p.url for p in reading.pages] == [f"{fake_site.origin}/", f"{fake_site.origin}/a"]
    assert reading.gone == [f"{fake_site.origin}/c"]
    assert not reading.complete  # /b may still be there


def test_the_first_address_failing_fails_the_reading(fake_site):
    fake_site.page("/down", b"down", status=502, type="text/plain")
    fake_site.page("/file.zip", b"PK\x03\x04", type="application/zip")
    with pytest.raises(web.WebError, match="answered 502"):
        _read(f"{fake_site.origin}/down", crawl=True, max_pages=5)
    with pytest.raises(web.Gone):
        _read(f"{fake_site.origin}/nothing", crawl=False, max_pages=1)
    with pytest.raises(web.WebError, match="not a kind of page"):
        _read(f"{fake_site.origin}/file.zip", crawl=False, max_pages=1)


def test_a_sitemap_gives_the_pages(fake_site):
    o = fake_site.origin
    fake_site.page(
        "/sitemap.xml",
        f'<?xml version="1.0"?><sitemapindex xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">'
        f"<sitemap><loc>{o}/pages.xml</loc></sitemap></sitemapindex>",
        type="application/xml",
    )
    fake_site.page(
        "/pages.xml",
        f'<?xml version="1.0"?><urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">'
        f"<url><loc>{o}/a</loc></url><url><loc> {o}/b </loc></url><url><loc>http://example.org/x</loc></url></urlset>",
        type="text/xml",
    )
    fake_site.page("/robots.txt", "User-agent: DocentBot\nDisallow: /private\n", type="text/plain")
    fake_site.html("/a", "A", "a")
    fake_site.html("/b", "B", "b")
    fake_site.html("/private", "P", "p")
    fake_site.redirect("/c", "/a")  # a page listed twice, by two addresses
    fake_site.pages["/pages.xml"] = (
        200,
        "text/xml",
        fake_site.pages["/pages.xml"][2].replace(
            b"</urlset>", f"<url><loc>{o}/c</loc></url><url><loc>{o}/private</loc></url></urlset>".encode()
        ),
        {},
    )
    reading = _read(f"{o}/sitemap.xml", crawl=False, max_pages=10)
    assert [p.url for p in reading.pages] == [f"{o}/a", f"{o}/b"]
    assert reading.skipped == [(f"{o}/private", "robots.txt asks robots not to read it")]
    assert reading.complete and "/private" not in fake_site.requests


def test_compressed_pages_are_read_and_a_compressed_bomb_is_refused(fake_site):
    import gzip
    import zlib

    text = b"<html><body><p>Compressed words.</p></body></html>"
    fake_site.page("/gz", gzip.compress(text), type="text/html", **{"Content-Encoding": "gzip"})
    fake_site.page("/deflate", zlib.compress(text), type="text/html", **{"Content-Encoding": "deflate"})
    fake_site.page(
        "/bomb", gzip.compress(b"\0" * 20_000_000), type="text/html", **{"Content-Encoding": "gzip"}
    )
    fake_site.page("/br", b"\x0b", type="text/html", **{"Content-Encoding": "br"})
    with web.Fetcher(max_bytes=1_000_000) as fetcher:
        assert fetcher.get(f"{fake_site.origin}/gz")[2] == text
        assert fetcher.get(f"{fake_site.origin}/deflate")[2] == text
        with pytest.raises(web.WebError, match="larger than"):
            fetcher.get(f"{fake_site.origin}/bomb")
        with pytest.raises(web.WebError, match="encoding Docent does not read"):
            fetcher.get(f"{fake_site.origin}/br")


def test_a_text_page_in_the_charset_its_header_names_is_kept_as_utf8(fake_site):
    latin = "<html><body><p>Café crème, naïve façade.</p></body></html>"
    fake_site.page("/latin", latin.encode("latin-1"), type="text/html; charset=ISO-8859-1")
    fake_site.page("/utf8", latin.encode(), type="text/html; charset=ISO-8859-1")  # a header that lies
    fake_site.page("/pdf", b"%PDF-1.4 \xe9", type="application/pdf; charset=latin-1")
    with web.Fetcher() as fetcher:
        url, content_type, body, _ = fetcher.get(f"{fake_site.origin}/latin")
        assert (content_type, body.decode("utf-8")) == ("text/html", latin)
        assert fetcher.get(f"{fake_site.origin}/utf8")[2].decode("utf-8") == latin
        assert fetcher.get(f"{fake_site.origin}/pdf")[2] == b"%PDF-1.4 \xe9"  # not text: as sent


def test_a_page_that_needs_its_scripts_for_any_text_is_left_out_saying_so(fake_site):
    fake_site.page(
        "/app",
        '<html><head><title>App</title><script src="/app.js"></script></head><body><div id="root"></div>'
        "<noscript>You need to enable JavaScript to run this app.</noscript></body></html>",
        type="text/html",
    )
    fake_site.html(
        "/docs", "Docs", "Plain words a reader can read without scripts.", head="<script>track()</script>"
    )
    reading = _read(f"{fake_site.origin}/app", crawl=False, max_pages=1)
    assert reading.pages == []
    assert reading.skipped == [
        (f"{fake_site.origin}/app", "the page shows its text only by running scripts, which Docent does not")
    ]
    assert [p.url for p in _read(f"{fake_site.origin}/docs", crawl=False, max_pages=1).pages] == [
        f"{fake_site.origin}/docs"
    ]


def test_https_checks_the_certificate_and_the_name_though_the_address_is_pinned(
    settings, tmp_path, monkeypatch
):
    """The connection goes to the address the guard checked, and TLS still checks the certificate
    for the name asked for: refused while no trusted authority signed it, read once the system's
    store (SSL_CERT_FILE here) holds it; the same server by its address is refused (the name on the
    certificate is not the one asked for)."""
    from tests.support.fake_site import TlsSite

    site = TlsSite(tmp_path).start()
    try:
        settings.DOCENT_WEB_PRIVATE_HOSTS = ["localhost", "127.0.0.1"]
        site.html("/", "Secure", "over TLS")
        with web.Fetcher() as fetcher, pytest.raises(web.WebError, match="could not be reached"):
            fetcher.get(f"{site.origin}/")
        monkeypatch.setenv("SSL_CERT_FILE", site.cert)
        with web.Fetcher() as fetcher:
            assert b"over TLS" in fetcher.get(f"{site.origin}/")[2]
            with pytest.raises(web.WebError, match="could not be reached"):
                fetcher.get(f"https://127.0.0.1:{site.server.server_address[1]}/")
    finally:
        site.stop()


def test_the_addresses_waiting_are_bounded_by_the_pages_a_reading_may_keep(fake_site):
    fake_site.html("/", "Home", "home", links=tuple(f"/p{i}" for i in range(500)))
    crawl = web.Crawl(f"{fake_site.origin}/", crawl=True, max_pages=3)
    with web.Fetcher() as fetcher:
        assert [p.url for p in crawl.pages(fetcher, until=0)] == [f"{fake_site.origin}/"]
    assert len(crawl.queue) == 30 and not crawl.complete
