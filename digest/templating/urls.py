"""URLs that reach an email: absolute http(s) only, re-quoted, with the edition's UTM."""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

from digest.errors import ConfigError

_URL_SAFE = "!#$%&'()*+,/:;=?@[]"
_CONTROL_CHARACTER = re.compile(r"[\x00-\x1f\x7f]")


def safe_url(url: object) -> str | None:
    """``url`` if it is an absolute http(s) URL (re-quoted), else None.

    Whitespace, quotes, angle brackets and non-ASCII characters are
    percent-encoded; ``~`` becomes ``%7E`` (equivalent per RFC 3986), so a URL
    can never carry a placeholder either.
    """
    if not isinstance(url, str):
        return None
    url = url.strip()
    if _CONTROL_CHARACTER.search(url):
        return None
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if parts.scheme.lower() not in {"http", "https"} or not parts.hostname:
        return None
    return quote(url, safe=_URL_SAFE).replace("~", "%7E")


def add_params(url: str, params: Mapping[str, str]) -> str:
    """``url`` with ``params`` in its query string (replacing same-named ones)."""
    if not params:
        return url
    parts = urlsplit(url)
    if not parts.query:  # the usual case: every URL of an edition gets the same query
        return urlunsplit(parts._replace(query=_encoded(tuple(params.items()))))
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k not in params]
    query.extend(params.items())
    return urlunsplit(parts._replace(query=urlencode(query)))


@functools.lru_cache(maxsize=64)
def _encoded(params: tuple[tuple[str, str], ...]) -> str:
    return urlencode(params)


def utm_params(template: Mapping[str, str], *, newsletter: str, period: str) -> dict[str, str]:
    """The newsletter's ``utm`` table with ``{newsletter}`` and ``{period}`` filled in."""
    values = {"newsletter": newsletter, "period": period}
    out = {}
    for key, value in template.items():
        try:
            out[key] = value.format_map(values)
        except (KeyError, ValueError, IndexError) as exc:
            raise ConfigError(
                f"newsletters.{newsletter}.utm.{key}: cannot fill {value!r} ({exc}); "
                "only {newsletter} and {period} can be used"
            ) from None
    return out


def tracked_url(url: object, params: Mapping[str, str]) -> str | None:
    """A safe http(s) ``url`` carrying ``params``, or None when the URL is not http(s)."""
    checked = safe_url(url)
    if checked is None:
        return None
    return safe_url(add_params(checked, params))


__all__ = ["add_params", "safe_url", "tracked_url", "utm_params"]
