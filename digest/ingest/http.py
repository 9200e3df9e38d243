"""Reading a source's bytes: over HTTP (httpx) or from a local file, within limits.

Every failure becomes a :class:`~digest.errors.SourceError` whose message says
what went wrong (the caller adds which source).  Responses are streamed and cut
off as soon as they pass ``DIGEST_HTTP_MAX_BYTES``, so a huge or endless body
never sits in memory; the whole request must finish within
``DIGEST_HTTP_TIMEOUT`` seconds, even when a server drips bytes slowly.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from email.message import Message
from pathlib import Path

import httpx

from digest import __version__
from digest.config import Settings
from digest.errors import SourceError


def user_agent(settings: Settings) -> str:
    """``digest/VERSION (+BASE_URL)``: names the project, and the publication running it
    so a site's operator can see whose fetches these are."""
    return f"digest/{__version__} (newsletter digest; +{settings.base_url})"


MAX_REDIRECTS = 5
ACCEPT = (
    "application/rss+xml, application/atom+xml, application/feed+json, "
    "application/xml;q=0.9, text/xml;q=0.9, application/json;q=0.9, "
    "text/html;q=0.8, */*;q=0.5"
)


@dataclass
class Fetched:
    """What a source gave us."""

    #: Where it came from: the final URL after redirects, or the file path.
    location: str
    body: bytes = b""
    content_type: str | None = None
    charset: str | None = None
    etag: str | None = None
    last_modified: str | None = None
    #: True after a ``304 Not Modified``: nothing new, nothing to parse.
    not_modified: bool = False

    @property
    def is_http(self) -> bool:
        return self.location.startswith(("http://", "https://"))


def is_url(ref: str) -> bool:
    return bool(re.match(r"^https?://", ref, re.I))


def make_client(settings: Settings) -> httpx.Client:
    """An httpx client with digest's timeout, User-Agent and redirect limit."""
    return httpx.Client(
        timeout=settings.http_timeout,
        follow_redirects=True,
        max_redirects=MAX_REDIRECTS,
        headers={"User-Agent": user_agent(settings), "Accept": ACCEPT},
    )


def fetch(
    ref: str,
    settings: Settings,
    *,
    client: httpx.Client,
    etag: str | None = None,
    last_modified: str | None = None,
) -> Fetched:
    """The bytes behind ``ref`` (a URL or an absolute file path)."""
    if is_url(ref):
        return fetch_url(ref, settings, client=client, etag=etag, last_modified=last_modified)
    return read_file(Path(ref), settings.http_max_bytes)


def fetch_url(
    url: str,
    settings: Settings,
    *,
    client: httpx.Client,
    etag: str | None = None,
    last_modified: str | None = None,
) -> Fetched:
    """GET ``url`` (conditionally, when ``etag``/``last_modified`` are known)."""
    headers = {"User-Agent": user_agent(settings), "Accept": ACCEPT}
    if etag:
        headers["If-None-Match"] = etag
    if last_modified:
        headers["If-Modified-Since"] = last_modified
    limit = settings.http_max_bytes
    timeout = settings.http_timeout
    deadline = time.monotonic() + timeout
    try:
        with client.stream(
            "GET", url, headers=headers, timeout=timeout, follow_redirects=True
        ) as response:
            final = str(response.url)
            if response.status_code == 304:
                return Fetched(
                    location=final,
                    etag=response.headers.get("ETag") or etag,
                    last_modified=response.headers.get("Last-Modified") or last_modified,
                    not_modified=True,
                )
            if not 200 <= response.status_code < 300:
                reason = response.reason_phrase or ""
                where = f" (redirected to {final})" if final != url else ""
                raise SourceError(
                    f"HTTP {response.status_code} {reason}".rstrip()
                    + where
                    + "; check the URL or try again later"
                )
            declared = response.headers.get("Content-Length", "")
            if declared.isdigit() and int(declared) > limit:
                raise SourceError(_too_big(limit, f"the server announced {int(declared)} bytes"))
            chunks: list[bytes] = []
            size = 0
            for chunk in response.iter_bytes():
                size += len(chunk)
                if size > limit:
                    raise SourceError(_too_big(limit, f"more than {limit} bytes arrived"))
                if time.monotonic() > deadline:
                    raise httpx.ReadTimeout("total time exceeded")
                chunks.append(chunk)
            content_type = response.headers.get("Content-Type")
            return Fetched(
                location=final,
                body=b"".join(chunks),
                content_type=_mime(content_type),
                charset=_charset(content_type),
                etag=response.headers.get("ETag"),
                last_modified=response.headers.get("Last-Modified"),
            )
    except httpx.TimeoutException:
        raise SourceError(
            f"no complete answer within {timeout:g} s (DIGEST_HTTP_TIMEOUT); "
            "the server is slow or down, try again later"
        ) from None
    except httpx.TooManyRedirects:
        raise SourceError(
            f"more than {MAX_REDIRECTS} redirects; the URL loops or moved too often"
        ) from None
    except httpx.ConnectError as exc:
        raise SourceError(
            f"cannot connect ({_reason(exc)}); check the URL and that the site is up"
        ) from None
    except (httpx.InvalidURL, httpx.UnsupportedProtocol) as exc:
        raise SourceError(f"not a usable URL ({_reason(exc)})") from None
    except httpx.HTTPError as exc:
        raise SourceError(f"HTTP error: {_reason(exc)}") from None


def read_file(path: Path, limit: int) -> Fetched:
    """A local file's bytes, refusing anything larger than ``limit``."""
    try:
        size = path.stat().st_size
        if path.is_dir():
            raise SourceError("is a folder, not a feed or page file")
        if size > limit:
            raise SourceError(_too_big(limit, f"the file has {size} bytes"))
        with path.open("rb") as fh:
            body = fh.read(limit + 1)
    except FileNotFoundError:
        raise SourceError("file not found; check the path") from None
    except PermissionError:
        raise SourceError("cannot read the file (permission denied)") from None
    except OSError as exc:
        raise SourceError(f"cannot read the file ({exc.strerror or exc})") from None
    if len(body) > limit:  # grew while we looked
        raise SourceError(_too_big(limit, f"the file has more than {limit} bytes"))
    return Fetched(location=str(path), body=body)


def _too_big(limit: int, what: str) -> str:
    return (
        f"too large: {what}, over the limit of {limit} bytes; "
        "raise DIGEST_HTTP_MAX_BYTES if this source is genuine"
    )


def _reason(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _mime(content_type: str | None) -> str | None:
    if not content_type:
        return None
    return content_type.split(";", 1)[0].strip().lower() or None


def _charset(content_type: str | None) -> str | None:
    if not content_type:
        return None
    msg = Message()
    msg["Content-Type"] = content_type
    charset = msg.get_param("charset")
    return charset.strip() if isinstance(charset, str) and charset.strip() else None
