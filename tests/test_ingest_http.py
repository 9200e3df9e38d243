"""Fetching over real HTTP (a server on 127.0.0.1 started here) and from files."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select

from digest import __version__, db
from digest.config import DigestConfig, Settings, load_config
from digest.errors import SourceError
from digest.ingest import ingest
from digest.ingest.http import fetch, make_client, read_file
from digest.models import Article, Source

DATA = Path(__file__).parent / "data" / "ingest"
RSS = (DATA / "rss20.xml").read_bytes()
MB = 1024 * 1024
NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)

Handler = Callable[[BaseHTTPRequestHandler], None]


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: object, client_address: object) -> None:
        """Our client hanging up mid-answer (timeouts, size limits) is what some tests do."""


class LocalServer:
    """A real HTTP server on 127.0.0.1 with a route table and a request log."""

    def __init__(self) -> None:
        self.routes: dict[str, Handler] = {}
        self.requests: list[tuple[str, dict[str, str]]] = []
        self.release = threading.Event()  # lets slow handlers finish at teardown
        self.sent: dict[str, int] = {}
        self.finished: dict[str, threading.Event] = {}
        server = self

        class _Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                server.requests.append((self.path, dict(self.headers.items())))
                route = server.routes.get(self.path.split("?")[0])
                if route is None:
                    self.send_error(404, "Not Found")
                    return
                route(self)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.httpd = _QuietServer(("127.0.0.1", 0), _Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
        )

    @property
    def base(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    def url(self, path: str) -> str:
        return self.base + path

    def route(self, path: str) -> Callable[[Handler], Handler]:
        def register(fn: Handler) -> Handler:
            self.routes[path] = fn
            return fn

        return register

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


def respond(
    req: BaseHTTPRequestHandler,
    body: bytes,
    status: int = 200,
    content_type: str = "application/rss+xml; charset=utf-8",
    headers: dict[str, str] | None = None,
) -> None:
    req.send_response(status)
    req.send_header("Content-Type", content_type)
    req.send_header("Content-Length", str(len(body)))
    for name, value in (headers or {}).items():
        req.send_header(name, value)
    req.end_headers()
    req.wfile.write(body)


@pytest.fixture
def server() -> Iterator[LocalServer]:
    srv = LocalServer()
    srv.start()
    yield srv
    srv.stop()


def settings(**overrides: object) -> Settings:
    values: dict[str, object] = {"http_timeout": 5.0, "http_max_bytes": 1 * MB}
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


def get(url: str, cfg: Settings | None = None, **kwargs: str | None):  # type: ignore[no-untyped-def]
    cfg = cfg or settings()
    with make_client(cfg) as client:
        return fetch(url, cfg, client=client, **kwargs)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# ---------------------------------------------------------------------------
# fetch()


def test_user_agent_names_the_project(server: LocalServer) -> None:
    server.routes["/feed.xml"] = lambda req: respond(req, RSS)
    fetched = get(server.url("/feed.xml"))
    assert fetched.body == RSS
    assert fetched.content_type == "application/rss+xml"
    assert fetched.charset == "utf-8"
    [(_, headers)] = server.requests
    assert headers["User-Agent"] == (
        f"digest/{__version__} (newsletter digest; +http://127.0.0.1:8000)"
    )


def test_redirects_are_followed_and_the_final_url_kept(server: LocalServer) -> None:
    def hop(to: str, status: int) -> Handler:
        return lambda req: respond(req, b"", status, headers={"Location": to})

    server.routes["/old"] = hop("/older", 301)
    server.routes["/older"] = hop("/feeds/current.xml", 302)
    server.routes["/feeds/current.xml"] = lambda req: respond(req, RSS)
    fetched = get(server.url("/old"))
    assert fetched.location == server.url("/feeds/current.xml")
    assert fetched.body == RSS


def test_redirect_loops_are_cut_short(server: LocalServer) -> None:
    server.routes["/loop"] = lambda req: respond(req, b"", 302, headers={"Location": "/loop"})
    with pytest.raises(SourceError, match="more than 5 redirects"):
        get(server.url("/loop"))
    assert len(server.requests) == 6  # the first request and five redirects, no more


@pytest.mark.parametrize(("status", "text"), [(404, "HTTP 404 Not Found"), (500, "HTTP 500")])
def test_error_statuses_are_reported(server: LocalServer, status: int, text: str) -> None:
    server.routes["/x"] = lambda req: respond(req, b"oops", status)
    with pytest.raises(SourceError, match=text):
        get(server.url("/x"))


def test_conditional_get_sends_the_validators(server: LocalServer) -> None:
    @server.route("/feed.xml")
    def feed(req: BaseHTTPRequestHandler) -> None:
        if req.headers.get("If-None-Match") == '"v1"':
            respond(req, b"", 304, headers={"ETag": '"v1"'})
        else:
            respond(req, RSS, headers={"ETag": '"v1"', "Last-Modified": "Fri, 20 Nov 2026"})

    first = get(server.url("/feed.xml"))
    assert (first.etag, first.last_modified, first.not_modified) == (
        '"v1"',
        "Fri, 20 Nov 2026",
        False,
    )
    again = get(server.url("/feed.xml"), etag='"v1"', last_modified="Fri, 20 Nov 2026")
    assert again.not_modified and again.body == b""
    assert server.requests[1][1]["If-None-Match"] == '"v1"'
    assert server.requests[1][1]["If-Modified-Since"] == "Fri, 20 Nov 2026"


def test_a_50_mb_response_is_cut_off_while_streaming(server: LocalServer) -> None:
    total = 50 * MB
    done = threading.Event()

    @server.route("/huge")
    def huge(req: BaseHTTPRequestHandler) -> None:
        # No Content-Length: the client only learns the size by reading.
        req.protocol_version = "HTTP/1.0"
        req.send_response(200)
        req.send_header("Content-Type", "application/rss+xml")
        req.end_headers()
        chunk = b"<item>" + b"x" * (64 * 1024 - 6)
        sent = 0
        try:
            while sent < total:
                req.wfile.write(chunk)
                sent += len(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass
        finally:
            server.sent["/huge"] = sent
            done.set()

    with pytest.raises(SourceError, match=r"too large: more than 1048576 bytes arrived"):
        get(server.url("/huge"))
    assert done.wait(10)
    assert server.sent["/huge"] < total // 2  # the client hung up long before the end


def test_an_announced_huge_response_is_refused_before_reading(server: LocalServer) -> None:
    @server.route("/announced")
    def announced(req: BaseHTTPRequestHandler) -> None:
        req.send_response(200)
        req.send_header("Content-Length", str(50 * MB))
        req.end_headers()
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            req.wfile.write(b"<rss>")

    with pytest.raises(SourceError, match=r"the server announced 52428800 bytes"):
        get(server.url("/announced"))


def test_a_silent_server_times_out(server: LocalServer) -> None:
    @server.route("/slow")
    def slow(req: BaseHTTPRequestHandler) -> None:
        server.release.wait(10)  # says nothing until the test is over
        respond(req, RSS)

    with pytest.raises(SourceError, match=r"no complete answer within 0.3 s"):
        get(server.url("/slow"), settings(http_timeout=0.3))


def test_a_dripping_server_hits_the_total_deadline(server: LocalServer) -> None:
    @server.route("/drip")
    def drip(req: BaseHTTPRequestHandler) -> None:
        req.send_response(200)
        req.send_header("Content-Length", "100000")
        req.end_headers()
        try:
            while not server.release.wait(0.02):  # a byte every 20 ms: never idle long
                req.wfile.write(b"x")
                req.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            pass

    with pytest.raises(SourceError, match=r"no complete answer within 0.3 s"):
        get(server.url("/drip"), settings(http_timeout=0.3))


def test_a_dead_host_is_one_clear_error() -> None:
    with pytest.raises(SourceError, match=r"^cannot connect \(.*\); check the URL"):
        get(f"http://127.0.0.1:{closed_port()}/feed.xml")


# ---------------------------------------------------------------------------
# Local files


def test_local_files_obey_the_same_size_limit(tmp_path: Path) -> None:
    big = tmp_path / "big.xml"
    big.write_bytes(b"x" * 2048)
    with pytest.raises(SourceError, match=r"too large: the file has 2048 bytes"):
        read_file(big, 1024)
    assert read_file(big, 4096).body == b"x" * 2048


def test_missing_files_and_folders(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="file not found"):
        read_file(tmp_path / "nope.xml", 1024)
    with pytest.raises(SourceError, match="is a folder"):
        read_file(tmp_path, 1024)


# ---------------------------------------------------------------------------
# ingest() over HTTP, on both databases


def _config(tmp_path: Path) -> DigestConfig:
    path = tmp_path / "digest.toml"
    path.write_text(
        '[newsletters.weekly]\ntitle = "Weekly"\nlist = "weekly"\nsender = "news@example.org"\n'
    )
    return load_config(path)


def _articles(engine: Engine) -> list[Article]:
    with db.session_factory(engine)() as s:
        return list(s.scalars(select(Article).order_by(Article.canonical_url)))


@pytest.fixture
def feed_server(server: LocalServer) -> LocalServer:
    """/etag.xml answers 304 to its ETag; /lm.xml to its Last-Modified."""

    @server.route("/etag.xml")
    def etag(req: BaseHTTPRequestHandler) -> None:
        if req.headers.get("If-None-Match") == '"abc"':
            respond(req, b"", 304, headers={"ETag": '"abc"'})
        else:
            respond(req, RSS, headers={"ETag": '"abc"'})

    @server.route("/lm.xml")
    def last_modified(req: BaseHTTPRequestHandler) -> None:
        stamp = "Fri, 20 Nov 2026 10:00:00 GMT"
        if req.headers.get("If-Modified-Since") == stamp:
            respond(req, b"", 304)
        else:
            respond(req, (DATA / "atom.xml").read_bytes(), headers={"Last-Modified": stamp})

    return server


@pytest.mark.parametrize("path", ["/etag.xml", "/lm.xml"])
def test_conditional_get_skips_unchanged_feeds(
    feed_server: LocalServer, engine: Engine, tmp_path: Path, path: str
) -> None:
    sessions = db.session_factory(engine)
    config, cfg = _config(tmp_path), settings()
    url = feed_server.url(path)
    first = ingest(sessions, config, cfg, [url], now=NOW)
    [result] = first.results
    assert result.ok and result.new >= 2 and not result.not_modified
    before = [(a.id, a.updated_at, a.content_hash) for a in _articles(engine)]

    later = datetime(2026, 11, 21, tzinfo=UTC)
    second = ingest(sessions, config, cfg, [url], now=later)
    [again] = second.results
    assert again.not_modified
    assert (again.new, again.updated, again.unchanged) == (0, 0, result.new)
    assert [(a.id, a.updated_at, a.content_hash) for a in _articles(engine)] == before
    sent = feed_server.requests[-1][1]
    assert sent.get("If-None-Match") == '"abc"' or sent.get("If-Modified-Since")
    with sessions() as s:
        source = s.scalars(select(Source).where(Source.url == url)).one()
        assert source.last_fetched_at == later
        assert source.last_error is None


def test_hostile_http_sources_each_give_one_error_and_good_ones_land(
    server: LocalServer, engine: Engine, tmp_path: Path
) -> None:
    server.routes["/good.xml"] = lambda req: respond(req, RSS)
    server.routes["/png"] = lambda req: respond(
        req, b"\x89PNG\r\n\x1a\n" + bytes(100), content_type="image/png"
    )
    server.routes["/empty"] = lambda req: respond(req, b"")
    server.routes["/gone"] = lambda req: respond(req, b"gone", 410)
    server.routes["/bomb.xml"] = lambda req: respond(
        req, (DATA / "billion-laughs.xml").read_bytes()
    )
    server.routes["/cut.xml"] = lambda req: respond(req, (DATA / "truncated.xml").read_bytes())
    dead = f"http://127.0.0.1:{closed_port()}/feed.xml"
    refs = [
        server.url(p) for p in ("/good.xml", "/png", "/empty", "/gone", "/bomb.xml", "/cut.xml")
    ]
    report = ingest(
        db.session_factory(engine), _config(tmp_path), settings(), [*refs, dead], now=NOW
    )
    assert report.ok
    good, *bad = report.results
    assert (good.ok, good.kind, good.new) == (True, "rss", 3)
    assert len(_articles(engine)) == 3
    expected = [
        "looks like a PNG image",
        "empty",
        "HTTP 410 Gone",
        "declares its own entities",
        "truncated XML",
        "cannot connect",
    ]
    for result, text in zip(bad, expected, strict=True):
        assert result.error is not None
        assert result.error.startswith(result.ref + ": ")
        assert text in result.error
        assert "\n" not in result.error
        assert (result.new, result.updated) == (0, 0)
    assert report.totals == {
        "sources": 7,
        "new": 3,
        "updated": 0,
        "unchanged": 0,
        "merged": 0,
        "skipped": 0,
        "errors": 6,
    }
    with db.session_factory(engine)() as s:
        errors = {url: err for url, err in s.execute(select(Source.url, Source.last_error))}
        assert errors[good.ref] is None
        assert all(errors[r.ref] == r.error for r in bad)
        assert s.scalar(select(func.count()).select_from(Article)) == 3


def test_relative_links_resolve_against_the_final_feed_url(
    server: LocalServer, engine: Engine, tmp_path: Path
) -> None:
    body = (
        b'<?xml version="1.0"?><rss version="2.0"><channel><title>t</title>'
        b"<item><title>Rel</title><link>../stories/one.html?utm_source=x</link>"
        b'<description>&lt;a href="two.html"&gt;next&lt;/a&gt;</description></item>'
        b"</channel></rss>"
    )
    server.routes["/moved"] = lambda req: respond(req, b"", 301, headers={"Location": "/a/b/feed"})
    server.routes["/a/b/feed"] = lambda req: respond(req, body)
    report = ingest(
        db.session_factory(engine), _config(tmp_path), settings(), [server.url("/moved")], now=NOW
    )
    assert report.ok
    [article] = _articles(engine)
    assert article.canonical_url == server.url("/a/stories/one.html")
    assert article.summary_html == (
        f'<a href="{server.url("/a/b/two.html")}" rel="noopener">next</a>'
    )
