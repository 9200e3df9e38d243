"""A variant's message prepared once, each reader's copy written from it: :func:`wire_bytes`.

:func:`~digest.delivery.message.build_mime` builds a reader's message from scratch:
it fills the placeholders into the whole HTML and text bodies and quoted-printable
encodes them again (about 2 ms a message, most of it ``b2a_qp`` over 30 KB).  Here
the encoding is done once per variant and only what differs per reader is written per
message: its headers, and the lines of the bodies that hold a placeholder.  The bytes
are the same as ``build_mime(...).as_bytes()`` (tests compare them for many readers).

How the bodies stay byte-identical.  Quoted-printable (``binascii.b2a_qp``, RFC 2045)
encodes each input line on its own, left to right; what it writes for a character
depends only on the character, the column the output line has reached, and the next
input character (a line end, the end of the data, or anything else).  So:

* lines without a placeholder are encoded once, together;
* a line with placeholders is cut into fixed pieces and the readers' values; a
  fixed piece is encoded once for each column it comes to start at (at most 76;
  kept), each value per reader, and the pieces are joined in order;
* a piece is encoded at column ``c`` as ``b2a_qp("x"*c + piece + "x")`` minus the
  ``c`` pad characters before and the sentinel ``x`` after: the pad brings the output
  line to column ``c`` (a plain character never breaks a line before column 75), and
  the sentinel stands for the next piece's first character, which is never a line end;
* where that does not hold — a placeholder directly before a line end or another
  placeholder, a value holding a line break, CR or NUL, a body whose first line ends
  in CRLF after normalising (``b2a_qp`` would then write CRLF line ends) — the line, or
  the body, is filled and encoded whole for each reader, as ``build_mime`` does.

Per-reader values are whatever placeholders the variant holds (any field name), so
new per-reader links need nothing here.
"""

from __future__ import annotations

import binascii
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime, formataddr
from functools import lru_cache

from markupsafe import escape

from digest.delivery.message import (
    POLICY,
    Envelope,
    Recipient,
    _display_name,
    _text_part,
    ascii_address,
    list_headers,
    new_boundary,
    quoted_printable,
    subject_for,
)
from digest.personalize import personalize

_PLACEHOLDER = re.compile(r"~~digest\.(?:html|text)\.([a-z][a-z0-9_]*)~~")
#: Characters that change how the character before them is encoded (see the module doc).
_LOOKAHEAD = frozenset("\n\r\x00")
_MAX_COLUMN = 75


def _header(name: str, value: str) -> bytes:
    """One header line exactly as :class:`~digest.delivery.message.DigestMessage` writes it."""
    return POLICY.fold_binary(*POLICY.header_store_parse(name, value))


def _qp_at(piece: bytes, column: int, *, last: bool) -> tuple[bytes, int]:
    """``piece`` quoted-printable encoded from output column ``column``, followed by an
    ordinary character (or, with ``last``, by nothing: it ends its line or the body);
    with the column the output reaches (0 after ``last``)."""
    if not piece:
        return b"", column
    encoded = binascii.b2a_qp(b"x" * column + piece + (b"" if last else b"x"), istext=True)
    if not last:
        encoded = encoded[:-1]  # the sentinel: the last character never breaks its line
    reached = 0 if last else len(encoded) - (encoded.rfind(b"\n") + 1)
    return encoded[column:], reached


def _crlf(data: bytes) -> bytes:
    return data.replace(b"\n", b"\r\n")


class _Line:
    """One input line holding placeholders: fixed pieces around the readers' values."""

    def __init__(self, text: str) -> None:
        self.text = text
        parts = _PLACEHOLDER.split(text)
        self.fixed = [p.encode("utf-8") for p in parts[0::2]]
        self.names = parts[1::2]
        # each piece after a placeholder must start with an ordinary character
        self.fast = all(p and chr(p[0]) not in _LOOKAHEAD for p in self.fixed[1:])
        self._cache: dict[tuple[int, int], tuple[bytes, int]] = {}

    def _piece(self, index: int, column: int) -> tuple[bytes, int]:
        key = (index, column)
        found = self._cache.get(key)
        if found is None:
            encoded, reached = _qp_at(self.fixed[index], column, last=index == len(self.fixed) - 1)
            found = self._cache[key] = (_crlf(encoded), reached)
        return found

    def write(self, values: Mapping[str, str], out: list[bytes]) -> None:
        """Append this line for a reader (``values``: every placeholder's value, ready for
        the body, with no character of ``_LOOKAHEAD``)."""
        if not self.fast:
            out.append(_crlf(_fill_and_encode(self.text, values)))
            return
        piece, column = self._piece(0, 0)
        line = [piece]
        for index, name in enumerate(self.names, start=1):
            if column > _MAX_COLUMN:  # cannot happen (see the module doc); stay exact anyway
                out.append(_crlf(_fill_and_encode(self.text, values)))
                return
            encoded, column = _qp_at(values[name].encode("utf-8"), column, last=False)
            line.append(_crlf(encoded))
            piece, column = self._piece(index, column)
            line.append(piece)
        out.extend(line)


def _fill_and_encode(text: str, values: Mapping[str, str]) -> bytes:
    filled = _PLACEHOLDER.sub(lambda m: values[m.group(1)], text)
    return binascii.b2a_qp(filled.encode("utf-8"), istext=True)


class _Body:
    """One body (HTML or text) of a variant, quoted-printable encoded once."""

    def __init__(self, body: str, html: bool) -> None:
        self.body = body
        self.html = html
        normalised = body.replace("\r\n", "\n") if "\r" in body else body
        self.names = frozenset(_PLACEHOLDER.findall(normalised))
        #: A CR before a line end (left by normalising CR CR LF) can make b2a_qp write
        #: CRLF line ends, for the whole body: such a body is filled and encoded whole.
        self.whole = "\r\n" in normalised
        self.parts: list[bytes | _Line] = []
        if self.whole:
            return
        if not self.names:
            self.parts.append(_encode_plain(normalised))
            return
        plain: list[str] = []
        for line in _lines(normalised):
            if "~~digest." in line and _PLACEHOLDER.search(line):
                if plain:
                    self.parts.append(_encode_plain("".join(plain)))
                    plain.clear()
                self.parts.append(_Line(line))
            else:
                plain.append(line)
        if plain:
            self.parts.append(_encode_plain("".join(plain)))

    def write(self, fields: Mapping[str, str], out: list[bytes]) -> None:
        if not self.names and not self.whole:
            out.extend(self.parts)  # type: ignore[arg-type]  # bytes only
            return
        if not self.names <= fields.keys():
            personalize(self.body, fields, html=self.html)  # raises its TemplateError
        values = {n: str(escape(fields[n])) if self.html else fields[n] for n in self.names}
        if self.whole or any(_LOOKAHEAD.intersection(v) for v in values.values()):
            # as build_mime does it: fill, normalise line ends, encode the whole body
            out.append(
                _crlf(
                    quoted_printable(personalize(self.body, fields, html=self.html)).encode("ascii")
                )
            )
            return
        for part in self.parts:
            if isinstance(part, bytes):
                out.append(part)
            else:
                part.write(values, out)


def _lines(text: str) -> list[str]:
    """``text`` cut after each LF (and only there: ``str.splitlines`` cuts at more)."""
    lines = text.split("\n")
    last = lines.pop()
    return [line + "\n" for line in lines] + ([last] if last else [])


def _encode_plain(text: str) -> bytes:
    return _crlf(binascii.b2a_qp(text.encode("utf-8"), istext=True))


@dataclass(frozen=True)
class _Fixed:
    from_: bytes
    reply_to: bytes
    subject: bytes | None
    after_list_unsubscribe: bytes
    parts: tuple[bytes, bytes]


class PreparedVariant:
    """What every message of one variant shares, written once (see the module doc)."""

    def __init__(self, envelope: Envelope) -> None:
        self.envelope = envelope
        self.text = _Body(envelope.text, html=False)
        self.html = _Body(envelope.html, html=True)
        personal_subject = "~~digest." in envelope.subject
        sample = Recipient(None, None, "x@example.org", "", {"unsubscribe_url": "u"})
        shared = list(list_headers(envelope, sample).items())[2:]  # after List-Unsubscribe
        self.fixed = _Fixed(
            from_=_header("From", formataddr((envelope.sender_name, envelope.sender))),
            reply_to=_header("Reply-To", envelope.reply_to) if envelope.reply_to else b"",
            subject=None if personal_subject else _header("Subject", subject_for(envelope, sample)),
            after_list_unsubscribe=b"".join(_header(n, v) for n, v in shared)
            + _header("MIME-Version", "1.0"),
            parts=(_part_headers("plain"), _part_headers("html")),
        )

    def message(
        self, recipient: Recipient, *, boundary: str | None = None, date: datetime | None = None
    ) -> tuple[bytes, str]:
        """The reader's message as ``build_mime(...).as_bytes()`` writes it, and its
        Message-ID."""
        env, fixed = self.envelope, self.fixed
        heads = list_headers(env, recipient)
        message_id = heads["Message-ID"]
        to = formataddr((_display_name(recipient.name), ascii_address(recipient.email)))
        boundary = boundary or new_boundary()
        mark = boundary.encode("ascii")
        out = [
            fixed.from_,
            _header("To", to),
            fixed.reply_to,
            fixed.subject or _header("Subject", subject_for(env, recipient)),
            _header("Date", format_datetime(date or datetime.now(UTC))),
            _header("Message-ID", message_id),
            _header("List-Unsubscribe", heads["List-Unsubscribe"]),
            fixed.after_list_unsubscribe,
            _header("Content-Type", f'multipart/alternative; boundary="{boundary}"'),
            b"\r\n--" + mark + b"\r\n",
            fixed.parts[0],
        ]
        self.text.write(recipient.fields, out)
        out += [b"\r\n--" + mark + b"\r\n", fixed.parts[1]]
        self.html.write(recipient.fields, out)
        out.append(b"\r\n--" + mark + b"--\r\n")
        return b"".join(out), message_id


def _part_headers(subtype: str) -> bytes:
    part = _text_part(subtype, "")
    return b"".join(POLICY.fold_binary(h, v) for h, v in part.raw_items()) + b"\r\n"


@lru_cache(maxsize=256)
def prepare(envelope: Envelope) -> PreparedVariant:
    """The variant of ``envelope``, prepared once per process (and kept for the next
    reader: the send loop hands every post of a variant the same envelope)."""
    return PreparedVariant(envelope)


def wire_bytes(
    envelope: Envelope,
    recipient: Recipient,
    *,
    boundary: str | None = None,
    date: datetime | None = None,
) -> tuple[bytes, str]:
    """``build_mime(envelope, recipient).as_bytes()`` and its Message-ID, without
    building the message: from the variant prepared once (see the module doc)."""
    return prepare(envelope).message(recipient, boundary=boundary, date=date)


__all__ = ["PreparedVariant", "prepare", "wire_bytes"]
