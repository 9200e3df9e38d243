"""A local SendGrid v3 Mail Send server that holds requests to SendGrid's contract.

``POST /v3/mail/send`` behaves as SendGrid documents it:

* ``Authorization: Bearer <key>`` is required (401 otherwise);
* the JSON body is validated against SendGrid's own OpenAPI description
  (``../shared/sendgrid/tsg_mail_v3.json``, the request body of ``POST /v3/mail/send``,
  its ``$ref``\\ s resolved) **plus** the documented limits the schema does not encode
  (see :func:`validate_mail_send`);
* an invalid body gets 400 with SendGrid's error shape
  ``{"errors": [{"message": ..., "field": ..., "help": ...}]}`` naming each bad field;
* a valid one gets 202, an empty body and an ``X-Message-Id`` header.

Every request is recorded (:class:`RecordedRequest`) and accepted ones can be expanded into
the per-recipient messages SendGrid would send (:meth:`SendGridServer.messages`), with each
personalization's substitutions applied to the subject and content.

Faults are scripted per request with :meth:`SendGridServer.script` — a queue consumed in
order, one fault per ``POST /v3/mail/send``, after which requests are served normally::

    server.script(Fault.rate_limit(retry_after=2), Fault.server_error(503), Fault.drop())

Benchmarks may check only a sample of requests and keep no bodies
(``SendGridServer(validate_every=10, keep_bodies=False, on_accept=count)``); tests keep the
defaults, which check every request.

Use it as the ``sendgrid_server`` fixture (add ``"tests.support.sendgrid_server"`` to
``pytest_plugins`` in ``tests/conftest.py``) or directly: ``with SendGridServer() as server: ...``.

Schema quirk patched in memory: the file types the top-level ``custom_args`` as a string,
while the real API takes (and SendGrid's own clients send) an object of string values like
the personalization-level ``custom_args``.  The in-memory copy types it as
``{"type": "object", "additionalProperties": {"type": "string"}}``.
"""

from __future__ import annotations

import base64
import copy
import gzip
import hashlib
import json
import re
import secrets
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from jsonschema import Draft202012Validator, FormatChecker
from referencing import Registry
from referencing.jsonschema import DRAFT202012

#: SendGrid's own OpenAPI description (MIT, Twilio): the shared copy beside the project
#: when there is one, else the copy vendored with the tests (tests/data/sendgrid).
_SHARED_SCHEMA = Path(__file__).resolve().parents[3] / "shared" / "sendgrid" / "tsg_mail_v3.json"
_VENDORED_SCHEMA = Path(__file__).resolve().parents[1] / "data" / "sendgrid" / "tsg_mail_v3.json"
SCHEMA_FILE = _SHARED_SCHEMA if _SHARED_SCHEMA.is_file() else _VENDORED_SCHEMA
MAIL_SEND_PATH = "/v3/mail/send"
DEFAULT_API_KEY = "SG.test-key.contract-server"

#: SendGrid's documented limits that the OpenAPI schema does not (fully) encode.
MAX_PERSONALIZATIONS = 1000
MAX_RECIPIENTS = 1000
MAX_SUBSTITUTIONS_BYTES = 10_000
MAX_CUSTOM_ARGS_BYTES = 10_000
MAX_CATEGORIES = 10
MAX_CATEGORY_CHARS = 255
MAX_BODY_BYTES = 30 * 1024 * 1024
#: Headers SendGrid does not let a request set (compared case-insensitively).
RESERVED_HEADERS = frozenset(
    {
        "x-sg-id",
        "x-sg-eid",
        "received",
        "dkim-signature",
        "content-type",
        "content-transfer-encoding",
        "to",
        "from",
        "subject",
        "reply-to",
        "cc",
        "bcc",
    }
)

_SCHEMA_URI = "urn:sendgrid:tsg_mail_v3"
_BODY_POINTER = "#/components/requestBodies/PostMailSend/content/application~1json/schema"
_HELP = "http://sendgrid.com/docs/API_Reference/Web_API_v3/Mail/errors.html#message."
_ADDRESS = re.compile(r"^[^@\s\"(),:;<>\[\\\]]+@[^@\s\"(),:;<>\[\\\]]+\.[^@\s\"(),:;<>\[\\\]]+$")


# ---------------------------------------------------------------------------
# Validation


def sendgrid_error(message: str, field: str | None = None) -> dict[str, Any]:
    """One entry of SendGrid's ``errors`` array."""
    help_url = _HELP + re.sub(r"\.\d+", "", field) if field else None
    return {"message": message, "field": field, "help": help_url}


@cache
def mail_send_validator() -> Draft202012Validator:
    """A validator for the request body of ``POST /v3/mail/send``, from SendGrid's own file."""
    if not SCHEMA_FILE.is_file():
        raise FileNotFoundError(
            f"{SCHEMA_FILE}: SendGrid's OpenAPI description is missing; it is expected next to "
            "the project as ../shared/sendgrid/tsg_mail_v3.json"
        )
    document = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    document = copy.deepcopy(document)
    body = document["components"]["requestBodies"]["PostMailSend"]["content"]["application/json"]
    # Quirk: the file says "string"; the API takes an object of strings (see module doc).
    body["schema"]["properties"]["custom_args"] = {
        "type": "object",
        "additionalProperties": {"type": "string"},
    }
    registry: Registry[Any] = Registry().with_resource(
        _SCHEMA_URI, DRAFT202012.create_resource(document)
    )
    return Draft202012Validator(
        {"$ref": _SCHEMA_URI + _BODY_POINTER},
        registry=registry,
        format_checker=FormatChecker(),
    )


def validate_mail_send(body: Any) -> list[dict[str, Any]]:
    """Every problem SendGrid would report for this request body (empty when valid).

    Schema errors come from SendGrid's OpenAPI file; on top of it these documented rules
    are checked: at least one and at most 1,000 personalizations; at most 1,000 recipients
    (to + cc + bcc) per request; every personalization has a ``to``; each address appears
    once across to/cc/bcc of a personalization; addresses look valid; recipient names have
    no ``;`` or ``,``; substitutions at most 10,000 bytes per personalization; custom_args
    values are strings and at most 10,000 bytes in total (request level merged with the
    personalization's); content present unless ``template_id``, ``text/plain`` first then
    ``text/html``; a subject at the top level or in every personalization (unless
    ``template_id``); ``from.email`` present and valid; at most 10 categories of at most 255
    characters; no reserved header; header values are strings; not both ``reply_to`` and
    ``reply_to_list``.  Sizes are measured as UTF-8 bytes of the compact JSON encoding of
    the object (slightly stricter than counting keys and values alone).
    """
    errors = _limit_errors(body) if isinstance(body, dict) else []
    reported = {err["field"] for err in errors}
    for err in sorted(mail_send_validator().iter_errors(body), key=lambda e: list(e.path)):
        where = _schema_field(err)
        # One error per field: the documented rule's wording wins over the schema's, and a
        # missing object ("from") is already reported as its missing member ("from.email").
        if where in reported or any(str(f).startswith(f"{where}.") for f in reported if f):
            continue
        reported.add(where)
        errors.append(sendgrid_error(_schema_message(err), where))
    return errors


def _schema_field(err: Any) -> str | None:
    parts = [str(p) for p in err.absolute_path]
    if err.validator == "required" and isinstance(err.instance, dict):
        missing = [p for p in err.validator_value if p not in err.instance]
        if missing:
            parts.append(str(missing[0]))
    return ".".join(parts) or None


def _schema_message(err: Any) -> str:
    message = str(err.message)
    return message if len(message) <= 300 else message[:297] + "..."


def _json_bytes(value: Any) -> int:
    return len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8"))


def _limit_errors(body: dict[str, Any]) -> list[dict[str, Any]]:
    errors: list[dict[str, Any]] = []

    def add(message: str, where: str | None) -> None:
        errors.append(sendgrid_error(message, where))

    template = body.get("template_id")
    top_args = body.get("custom_args")
    top_args = top_args if isinstance(top_args, dict) else {}
    _check_string_values(top_args, "custom_args", add)
    if _json_bytes(top_args) > MAX_CUSTOM_ARGS_BYTES:
        add("The custom_args may not exceed 10,000 bytes in total.", "custom_args")
    _check_headers(body.get("headers"), "headers", add)

    sender = body.get("from")
    sender_email = sender.get("email") if isinstance(sender, dict) else None
    if not isinstance(sender_email, str) or not sender_email:
        add(
            "The from object must be provided for every email send. It is an object that "
            "requires the email parameter, but may also contain a name parameter.",
            "from.email",
        )
    elif not _ADDRESS.match(sender_email):
        add("The from email does not contain a valid address.", "from.email")
    if "reply_to" in body and "reply_to_list" in body:
        add("The reply_to and reply_to_list properties are mutually exclusive.", "reply_to_list")

    personalizations = body.get("personalizations")
    if isinstance(personalizations, list):
        _check_personalizations(personalizations, top_args, add)
        lacking = any(isinstance(p, dict) and not p.get("subject") for p in personalizations)
        if lacking and not template and not body.get("subject"):
            add(
                "The subject is required. You can get around this requirement if you use "
                "a template with a subject defined or if every personalization has a "
                "subject defined.",
                "subject",
            )

    _check_content(body.get("content"), template, add)
    categories = body.get("categories")
    if isinstance(categories, list):
        if len(categories) > MAX_CATEGORIES:
            add("Too many categories: no more than 10 are allowed per request.", "categories")
        for i, cat in enumerate(categories):
            if isinstance(cat, str) and len(cat) > MAX_CATEGORY_CHARS:
                add("A category cannot have more than 255 characters.", f"categories.{i}")
    return errors


def _check_personalizations(items: list[Any], top_args: dict[str, Any], add: Any) -> None:
    if not items:
        add("You must have at least one personalization.", "personalizations")
    if len(items) > MAX_PERSONALIZATIONS:
        add(
            f"The personalization block is limited to 1000 personalizations per API request. "
            f"You have provided {len(items)} personalizations. Please consider splitting this "
            "into multiple requests and resending your request.",
            "personalizations",
        )
    total = 0
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            continue
        where = f"personalizations.{i}"
        seen: set[str] = set()
        for kind in ("to", "cc", "bcc"):
            addresses = item.get(kind)
            if kind == "to" and not addresses:
                add(
                    "The to array is required for all personalization objects, and must have "
                    "at least one email object with a valid email address.",
                    f"{where}.to",
                )
            if not isinstance(addresses, list):
                continue
            for j, address in enumerate(addresses):
                total += 1
                if not isinstance(address, dict):
                    continue
                email, name = address.get("email"), address.get("name")
                if isinstance(email, str):
                    if not _ADDRESS.match(email):
                        add("Does not contain a valid address.", f"{where}.{kind}.{j}.email")
                    if email.lower() in seen:
                        add(
                            "Each email address in the personalization block should be unique "
                            "between to, cc, and bcc. We found the first duplicate instance of "
                            f"[{email}] in the {where}.{kind} field.",
                            where,
                        )
                    seen.add(email.lower())
                if isinstance(name, str) and (";" in name or "," in name):
                    add(
                        "The to.name, cc.name, and bcc.name personalizations cannot include "
                        "either the ; or , characters.",
                        f"{where}.{kind}.{j}.name",
                    )
        substitutions = item.get("substitutions")
        if isinstance(substitutions, dict) and _json_bytes(substitutions) > (
            MAX_SUBSTITUTIONS_BYTES
        ):
            add(
                "The total size of substitutions may not exceed 10,000 bytes per "
                "personalization object.",
                f"{where}.substitutions",
            )
        args = item.get("custom_args")
        if isinstance(args, dict):
            _check_string_values(args, f"{where}.custom_args", add)
            if _json_bytes({**top_args, **args}) > MAX_CUSTOM_ARGS_BYTES:
                add(
                    "The custom_args may not exceed 10,000 bytes in total.",
                    f"{where}.custom_args",
                )
        _check_headers(item.get("headers"), f"{where}.headers", add)
    if total > MAX_RECIPIENTS:
        add(
            "There is a limit of 1000 total recipients (to + cc + bcc) per request.",
            "personalizations",
        )


def _check_string_values(values: dict[str, Any], where: str, add: Any) -> None:
    for key, value in values.items():
        if not isinstance(value, str):
            add(f"Invalid type. Expected: string, given: {type(value).__name__}.", f"{where}.{key}")


def _check_headers(headers: Any, where: str, add: Any) -> None:
    if not isinstance(headers, dict):
        return
    for key, value in headers.items():
        if key.lower() in RESERVED_HEADERS:
            add(
                f"The header {key!r} is reserved and cannot be set: x-sg-id, x-sg-eid, received, "
                "dkim-signature, Content-Type, Content-Transfer-Encoding, To, From, Subject, "
                "Reply-To, CC and BCC may not be overridden.",
                f"{where}.{key}",
            )
        if not isinstance(value, str):
            add(f"Invalid type. Expected: string, given: {type(value).__name__}.", f"{where}.{key}")


def _check_content(content: Any, template: Any, add: Any) -> None:
    if not content:
        if not template:
            add(
                "Unless a valid template_id is provided, the content parameter is required. "
                "There must be at least one defined content block.",
                "content",
            )
        return
    if not isinstance(content, list):
        return
    types = [c.get("type") if isinstance(c, dict) else None for c in content]
    plain_misplaced = "text/plain" in types and types.index("text/plain") != 0
    html_at = 1 if "text/plain" in types else 0
    html_misplaced = "text/html" in types and types.index("text/html") != html_at
    if plain_misplaced or html_misplaced:
        add(
            "If present, text/plain must be first, followed by text/html, followed by any "
            "other content.",
            "content",
        )


# ---------------------------------------------------------------------------
# Faults, records, expansion

FaultKind = Literal[
    "rate_limit", "server_error", "slow", "drop", "drop_after_read", "reject", "too_large"
]


@dataclass(frozen=True)
class Fault:
    """One scripted misbehaviour, consumed by the next ``POST /v3/mail/send``."""

    kind: FaultKind
    status: int | None = None
    retry_after: int | None = None
    seconds: float = 0.0
    message: str = ""
    field: str | None = None
    #: For ``slow``: whether the request is taken (the mail goes out) before the wait.
    accept: bool = True

    @classmethod
    def rate_limit(cls, retry_after: int = 1) -> Fault:
        """429 with ``Retry-After: N`` (and SendGrid's X-RateLimit-* headers)."""
        return cls("rate_limit", status=429, retry_after=retry_after)

    @classmethod
    def server_error(cls, status: int = 500) -> Fault:
        """A 5xx (500, 502, 503, 504) with SendGrid's error body; nothing is accepted."""
        return cls("server_error", status=status)

    @classmethod
    def slow(cls, seconds: float, *, accept: bool = True) -> Fault:
        """Wait ``seconds`` before answering normally.  The request is recorded (and accepted,
        when valid) *before* the wait, like a provider that took the mail but answered late.
        ``accept=False``: recorded but never accepted, like a provider that failed inside
        before queuing the mail (it then answers 500 after the wait)."""
        return cls("slow", seconds=seconds, accept=accept)

    @classmethod
    def drop(cls) -> Fault:
        """Close the connection without a response; the request is not accepted."""
        return cls("drop")

    @classmethod
    def drop_after_read(cls) -> Fault:
        """Read and process the request, then close without a response: the "caught mid-post"
        case.  A valid request is recorded as accepted (the mail goes out)."""
        return cls("drop_after_read")

    @classmethod
    def reject(cls, message: str, field: str | None = None) -> Fault:
        """400 with this error message (and field)."""
        return cls("reject", status=400, message=message, field=field)

    @classmethod
    def too_large(cls) -> Fault:
        """413 Payload Too Large."""
        return cls("too_large", status=413)


@dataclass
class RecordedRequest:
    """One request as it arrived, and what the server answered."""

    index: int
    method: str
    path: str
    #: Header names lower-cased.
    headers: dict[str, str]
    raw: bytes
    #: The parsed JSON body (None if it was not JSON).
    body: Any
    #: The status answered; None when the connection was dropped without an answer.
    status: int | None = None
    errors: list[dict[str, Any]] = field(default_factory=list)
    #: True when SendGrid would send the mail (202, or dropped after being accepted).
    accepted: bool = False
    message_id: str | None = None
    fault: FaultKind | None = None
    #: ``time.monotonic()`` when the request's headers had arrived (the server's own clock).
    arrived: float = 0.0
    #: Personalizations in the body (messages, one reader each), kept without the body.
    messages: int = 0


@dataclass(frozen=True)
class ExpandedMessage:
    """What one recipient of an accepted request would get."""

    request_index: int
    personalization_index: int
    x_message_id: str | None
    recipient: str
    recipient_name: str | None
    #: "to", "cc" or "bcc".
    kind: str
    to: tuple[str, ...]
    from_email: str
    from_name: str | None
    reply_to: str | None
    subject: str
    text: str | None
    html: str | None
    #: Request-level headers overridden by the personalization's.
    headers: dict[str, str]
    #: Request-level custom_args overridden by the personalization's.
    custom_args: dict[str, str]
    categories: tuple[str, ...]
    send_at: int | None
    #: Substitution tags of this request still present in subject, content or headers.
    unfilled: tuple[str, ...]


def expand(request: RecordedRequest) -> list[ExpandedMessage]:
    """The per-recipient messages of one accepted request, substitutions applied as SendGrid
    does (to the subject and each content value; headers and custom_args are left as is)."""
    body = request.body
    if not request.accepted or not isinstance(body, dict):
        return []
    all_tags = {tag for p in body["personalizations"] for tag in (p.get("substitutions") or {})}
    contents = {c["type"]: c["value"] for c in body.get("content") or []}
    messages = []
    for i, p in enumerate(body["personalizations"]):
        subs = p.get("substitutions") or {}
        sender = p.get("from") or body["from"]
        reply_to = body.get("reply_to") or {}
        headers = {**(body.get("headers") or {}), **(p.get("headers") or {})}
        subject = _substitute(p.get("subject") or body.get("subject") or "", subs)
        text = _substitute(contents["text/plain"], subs) if "text/plain" in contents else None
        html = _substitute(contents["text/html"], subs) if "text/html" in contents else None
        haystack = "\n".join([subject, text or "", html or "", *headers.values()])
        unfilled = tuple(sorted(tag for tag in all_tags if tag in haystack))
        to = tuple(a["email"] for a in p.get("to") or [])
        for kind in ("to", "cc", "bcc"):
            for address in p.get(kind) or []:
                messages.append(
                    ExpandedMessage(
                        request_index=request.index,
                        personalization_index=i,
                        x_message_id=request.message_id,
                        recipient=address["email"],
                        recipient_name=address.get("name"),
                        kind=kind,
                        to=to,
                        from_email=sender["email"],
                        from_name=sender.get("name"),
                        reply_to=reply_to.get("email"),
                        subject=subject,
                        text=text,
                        html=html,
                        headers=headers,
                        custom_args={
                            **(body.get("custom_args") or {}),
                            **(p.get("custom_args") or {}),
                        },
                        categories=tuple(body.get("categories") or ()),
                        send_at=p.get("send_at", body.get("send_at")),
                        unfilled=unfilled,
                    )
                )
    return messages


def _substitute(value: str, substitutions: dict[str, str]) -> str:
    """Replace every tag at once (longest first), so a value is never substituted again."""
    if not substitutions:
        return value
    pattern = re.compile(
        "|".join(re.escape(t) for t in sorted(substitutions, key=len, reverse=True))
    )
    return pattern.sub(lambda m: substitutions[m.group(0)], value)


# ---------------------------------------------------------------------------
# The server


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = False  # server_close() joins handler threads: a clean teardown
    block_on_close = True
    owner: SendGridServer

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that hung up (timeout, dropped connection) is expected here: stay quiet."""


class _Handler(BaseHTTPRequestHandler):
    server: _HTTPServer
    protocol_version = "HTTP/1.1"
    timeout = 10  # seconds a silent client may hold a handler thread

    def do_POST(self) -> None:
        self.arrived = time.monotonic()
        self.server.owner._handle(self)

    def do_GET(self) -> None:
        self.server.owner._handle(self)

    do_PUT = do_PATCH = do_DELETE = do_GET

    def log_message(self, format: str, *args: Any) -> None:
        pass


class SendGridServer:
    """A SendGrid v3 Mail Send contract server on 127.0.0.1 (a random free port)."""

    def __init__(
        self,
        api_key: str = DEFAULT_API_KEY,
        *,
        host: str = "127.0.0.1",
        max_body_bytes: int = MAX_BODY_BYTES,
        validate_every: int = 1,
        keep_bodies: bool = True,
        on_accept: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        """``validate_every``: 1 (the default) holds every request to the contract; N > 1
        checks the first request and then one in N, 0 none (for benchmarks, where the
        validation's CPU would crowd out the client being measured).  Requests not checked
        are still authenticated and parsed, and accepted when they are JSON objects.
        ``keep_bodies=False`` records requests without their raw and parsed bodies (so
        :meth:`messages` is empty); ``on_accept`` is called with each accepted body, in
        the handler's thread, to count what arrived instead."""
        self.api_key = api_key
        self.max_body_bytes = max_body_bytes
        self.validate_every = validate_every
        self.keep_bodies = keep_bodies
        self.on_accept = on_accept
        self._posts = 0
        self._host = host
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._faults: list[Fault] = []
        self._requests: list[RecordedRequest] = []
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle
    def start(self) -> SendGridServer:
        mail_send_validator()  # fail early if the schema file is missing
        httpd = _HTTPServer((self._host, 0), _Handler)
        httpd.owner = self
        self._httpd = httpd
        self._thread = threading.Thread(
            target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is None:
            return
        self._closing.set()  # wakes up slow replies
        self._httpd.shutdown()
        self._httpd.server_close()
        assert self._thread is not None
        self._thread.join()
        self._httpd = None

    def __enter__(self) -> SendGridServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self._httpd is not None, "the server is not started"
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        """The base URL to give the client as its host, e.g. ``http://127.0.0.1:54321``."""
        return f"http://{self._host}:{self.port}"

    # -- scripting and inspection
    def script(self, *faults: Fault) -> None:
        """Queue faults: each ``POST /v3/mail/send`` consumes one, then requests are normal."""
        with self._lock:
            self._faults.extend(faults)

    @property
    def pending_faults(self) -> list[Fault]:
        with self._lock:
            return list(self._faults)

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request received, in arrival order."""
        with self._lock:
            return list(self._requests)

    @property
    def accepted(self) -> list[RecordedRequest]:
        return [r for r in self.requests if r.accepted]

    def busiest(self, seconds: float = 10.0) -> tuple[int, float]:
        """The most messages accepted in any window of ``seconds`` (by arrival, on the
        server's clock), and when that window began: the rate a provider would see."""
        times = sorted((r.arrived, r.messages) for r in self.accepted)
        best, start, total, first = 0, 0.0, 0, 0
        for arrived, count in times:
            total += count
            while times[first][0] <= arrived - seconds:
                total -= times[first][1]
                first += 1
            if total > best:
                best, start = total, times[first][0]
        return best, start

    def messages(self) -> list[ExpandedMessage]:
        """Every per-recipient message of every accepted request, in order."""
        return [m for r in self.accepted for m in expand(r)]

    def recipients(self) -> list[str]:
        """The address of every message sent (a repeat means someone got two copies)."""
        return [m.recipient for m in self.messages()]

    def reset(self) -> None:
        with self._lock:
            self._requests.clear()
            self._faults.clear()

    # -- the Event Webhook: SendGrid's reports of what became of each message
    def events(
        self, kinds: tuple[str, ...] = ("processed", "delivered"), *, at: int | None = None
    ) -> list[dict[str, Any]]:
        """The events SendGrid would post for every message accepted so far, shaped as its
        Event Webhook sends them: the message's ``custom_args`` as top-level keys, a
        stable ``sg_event_id`` per (message, event) so that posting twice is a replay."""
        when = int(time.time()) if at is None else at
        out = []
        for m in self.messages():
            for kind in kinds:
                key = f"{m.request_index}.{m.personalization_index}.{m.recipient}.{kind}"
                out.append(
                    {
                        **m.custom_args,
                        "email": m.recipient,
                        "timestamp": when,
                        "event": kind,
                        "sg_event_id": hashlib.sha256(key.encode()).hexdigest()[:22],
                        "sg_message_id": f"{m.x_message_id}.recvd-{m.personalization_index}",
                        "smtp-id": m.headers.get("Message-ID", ""),
                        "category": list(m.categories),
                    }
                )
        return out

    def post_events(
        self,
        webhook_url: str,
        private_key: ec.EllipticCurvePrivateKey,
        events: list[dict[str, Any]] | None = None,
        *,
        batch: int = 1000,
    ) -> list[int]:
        """Post ``events`` (default: :meth:`events`) to ``webhook_url`` as SendGrid's Signed
        Event Webhook does: JSON arrays of up to ``batch`` events, each post signed with
        ECDSA P-256 over the timestamp header followed by the body.  Returns the status
        of each post."""
        events = self.events() if events is None else events
        statuses = []
        for start in range(0, len(events), batch):
            body = json.dumps(events[start : start + batch]).encode()
            stamp = str(int(time.time()))
            signature = private_key.sign(stamp.encode() + body, ec.ECDSA(hashes.SHA256()))
            request = urllib.request.Request(
                webhook_url,
                data=body,
                method="POST",
                headers={
                    "Content-Type": "application/json",
                    "X-Twilio-Email-Event-Webhook-Signature": base64.b64encode(signature).decode(),
                    "X-Twilio-Email-Event-Webhook-Timestamp": stamp,
                },
            )
            try:
                with urllib.request.urlopen(request, timeout=60) as answer:
                    statuses.append(answer.status)
            except urllib.error.HTTPError as refused:
                statuses.append(refused.code)
        return statuses

    # -- request handling (runs in the handler's thread)
    def _handle(self, h: _Handler) -> None:
        h.close_connection = True
        path = urlsplit(h.path).path
        length = int(h.headers.get("Content-Length") or 0)
        headers = {k.lower(): v for k, v in h.headers.items()}
        if path != MAIL_SEND_PATH or h.command != "POST":
            self._discard(h, length)
            status, message = (
                (404, "not found") if path != MAIL_SEND_PATH else (405, "method not allowed")
            )
            self._record(h, path, headers, b"", None, status=status)
            self._reply(h, status, {"errors": [sendgrid_error(message)]})
            return
        with self._lock:
            fault = self._faults.pop(0) if self._faults else None
        if length > self.max_body_bytes:
            self._discard(h, length)
            self._record(h, path, headers, b"", None, status=413, fault=fault and fault.kind)
            self._reply(h, 413, {"errors": [sendgrid_error("content too large")]})
            return
        raw = h.rfile.read(length)
        body = _parse_json(raw, headers)
        if fault is not None and fault.kind not in ("slow", "drop_after_read"):
            self._fault_reply(h, fault, path, headers, raw, body)
            return
        status, errors, message_id = self._process(headers, body)
        if fault is not None and fault.kind == "slow" and not fault.accept and status == 202:
            status, errors, message_id = 500, [sendgrid_error("internal server error")], None
        accepted = status == 202
        self._record(
            h,
            path,
            headers,
            raw,
            body,
            status=None if fault and fault.kind == "drop_after_read" else status,
            errors=errors,
            accepted=accepted,
            message_id=message_id,
            fault=fault and fault.kind,
        )
        if fault is not None and fault.kind == "drop_after_read":
            return  # close without an answer
        if fault is not None and fault.kind == "slow" and self._closing.wait(fault.seconds):
            return  # shutting down: do not answer
        if accepted:
            self._reply(h, 202, None, {"X-Message-Id": message_id or ""})
        else:
            self._reply(h, status, {"errors": errors})

    def _process(
        self, headers: dict[str, str], body: Any
    ) -> tuple[int, list[dict[str, Any]], str | None]:
        auth = headers.get("authorization", "")
        if not auth:
            return 401, [sendgrid_error("authorization required")], None
        if auth != f"Bearer {self.api_key}":
            message = "The provided authorization grant is invalid, expired, or revoked"
            return 401, [sendgrid_error(message)], None
        if body is _NOT_JSON:
            return 400, [sendgrid_error("Bad Request: the request body is not valid JSON")], None
        with self._lock:
            nth = self._posts
            self._posts += 1
        every = self.validate_every
        if every == 1 or (every > 1 and nth % every == 0):
            errors = validate_mail_send(body)
        elif not isinstance(body, dict):
            errors = [sendgrid_error("Bad Request: the request body is not a JSON object")]
        else:
            errors = []
        if errors:
            return 400, errors, None
        if self.on_accept is not None:
            self.on_accept(body)
        return 202, [], secrets.token_urlsafe(16)[:22]

    def _fault_reply(
        self,
        h: _Handler,
        fault: Fault,
        path: str,
        headers: dict[str, str],
        raw: bytes,
        body: Any,
    ) -> None:
        if fault.kind == "drop":
            self._record(h, path, headers, raw, body, status=None, fault="drop")
            return
        status = fault.status or 500
        extra: dict[str, str] = {}
        if fault.kind == "rate_limit":
            message = "too many requests"
            extra = {
                "Retry-After": str(fault.retry_after),
                "X-RateLimit-Limit": "600",
                "X-RateLimit-Remaining": "0",
                "X-RateLimit-Reset": str(int(time.time()) + int(fault.retry_after or 0)),
            }
        elif fault.kind == "reject":
            message = fault.message
        elif fault.kind == "too_large":
            message = "content too large"
        else:
            message = "internal server error" if status == 500 else f"service error {status}"
        errors = [sendgrid_error(message, fault.field)]
        self._record(h, path, headers, raw, body, status=status, errors=errors, fault=fault.kind)
        self._reply(h, status, {"errors": errors}, extra)

    def _record(
        self,
        h: _Handler,
        path: str,
        headers: dict[str, str],
        raw: bytes,
        body: Any,
        **outcome: Any,
    ) -> None:
        personalizations = body.get("personalizations") if isinstance(body, dict) else None
        outcome.setdefault("arrived", getattr(h, "arrived", time.monotonic()))
        outcome.setdefault(
            "messages", len(personalizations) if isinstance(personalizations, list) else 0
        )
        with self._lock:
            self._requests.append(
                RecordedRequest(
                    index=len(self._requests),
                    method=h.command,
                    path=path,
                    headers=headers,
                    raw=raw if self.keep_bodies else b"",
                    body=None if body is _NOT_JSON or not self.keep_bodies else body,
                    **outcome,
                )
            )

    @staticmethod
    def _discard(h: _Handler, length: int) -> None:
        while length > 0:
            chunk = h.rfile.read(min(length, 1 << 16))
            if not chunk:
                break
            length -= len(chunk)

    @staticmethod
    def _reply(
        h: _Handler, status: int, payload: Any, headers: dict[str, str] | None = None
    ) -> None:
        data = b"" if payload is None else json.dumps(payload).encode("utf-8")
        try:
            h.send_response(status)
            if data:
                h.send_header("Content-Type", "application/json")
            h.send_header("Content-Length", str(len(data)))
            h.send_header("Connection", "close")
            for name, value in (headers or {}).items():
                h.send_header(name, value)
            h.end_headers()
            h.wfile.write(data)
        except OSError:
            pass  # the client gave up (e.g. timed out on a slow reply)


_NOT_JSON = object()


def _parse_json(raw: bytes, headers: dict[str, str]) -> Any:
    try:
        if headers.get("content-encoding", "").lower() == "gzip":
            raw = gzip.decompress(raw)
        return json.loads(raw.decode("utf-8"))
    except (OSError, EOFError, UnicodeDecodeError, ValueError):
        return _NOT_JSON


@pytest.fixture
def sendgrid_server() -> Iterator[SendGridServer]:
    """A running :class:`SendGridServer`; its ``url`` is the client's host, its ``api_key``
    the key to use."""
    with SendGridServer() as server:
        yield server
