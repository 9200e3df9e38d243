"""The SendGrid backend: one v3 Mail Send request per post of up to 1,000 recipients.

Bodies carry placeholders; each personalization fills them through
``substitutions`` (separate spellings for the HTML and text parts, see
:mod:`digest.personalize`).  ``custom_args`` carry the edition and subscriber
ids so Event Webhook events can be matched back to the ledger.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import urllib.error
from email.utils import parseaddr
from typing import Any, Self
from urllib.parse import urlsplit

from python_http_client import exceptions as http_errors
from sendgrid import SendGridAPIClient

from digest.config import Settings
from digest.delivery.base import (
    AccountLimit,
    AmbiguousError,
    Backend,
    FatalError,
    PermanentError,
    RecipientResult,
    RetryableError,
)
from digest.delivery.message import (
    Envelope,
    Post,
    Recipient,
    UnsendableAddress,
    ascii_address,
    list_headers,
    subject_for,
)
from digest.errors import ConfigError
from digest.personalize import substitutions

MAX_PERSONALIZATIONS = 1000


def _address(value: str, name: str = "") -> dict[str, str]:
    out = {"email": value}
    # SendGrid rejects the whole request when a name holds ',' or ';'.
    clean = " ".join(name.replace(",", " ").replace(";", " ").split())
    if clean:
        out["name"] = clean
    return out


def personalization(envelope: Envelope, recipient: Recipient) -> dict[str, Any]:
    """One reader's part of the request: only what differs from reader to reader.

    What every reader of the post shares (List-Unsubscribe-Post, the newsletter
    in ``custom_args``) is said once at the top of the request, and
    only the placeholders the variant's bodies and subject still hold are
    substituted (``web_url`` is filled into the bodies once per variant): a
    1,000-reader post is about a third smaller, and cheaper to build and parse.
    """
    headers = list_headers(envelope, recipient)
    out: dict[str, Any] = {
        "to": [_address(ascii_address(recipient.email), recipient.name)],
        # Both ids in every personalization, whatever SendGrid does with the request's
        # own custom_args: webhook events are matched to the ledger by them.
        "custom_args": {
            "edition_id": str(envelope.edition_id),
            "subscriber_id": str(recipient.subscriber_id or ""),
        },
        "headers": {
            "List-Unsubscribe": headers["List-Unsubscribe"],
            "Message-ID": headers["Message-ID"],
        },
    }
    subs = substitutions(recipient.fields, envelope.used_fields)
    if subs:
        out["substitutions"] = subs
    subject = subject_for(envelope, recipient)
    if subject != envelope.subject:
        out["subject"] = subject
    return out


def build_payload(post: Post) -> dict[str, Any]:
    """The Mail Send request body for one post."""
    env = post.envelope
    if not 1 <= len(post.recipients) <= MAX_PERSONALIZATIONS:
        raise ValueError(f"a post carries 1 to {MAX_PERSONALIZATIONS} recipients")
    payload: dict[str, Any] = {
        "from": _address(env.sender, env.sender_name),
        "subject": env.subject,
        "content": [
            {"type": "text/plain", "value": env.text},
            {"type": "text/html", "value": env.html},
        ],
        "personalizations": [personalization(env, r) for r in post.recipients],
        "categories": [env.newsletter, f"{env.newsletter}-{env.period}"][:10],
        "headers": {
            "List-Id": env.list_id,
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
            "X-Digest-Edition": f"{env.newsletter}/{env.period}/{env.variant_key}",
        },
        # Carried into every event (merged with each personalization's ids).
        "custom_args": {"newsletter": env.newsletter},
    }
    if env.reply_to:
        name, addr = parseaddr(env.reply_to)
        payload["reply_to"] = _address(addr, name)
    if env.test:
        payload["categories"] = [*payload["categories"], "test"]
    return payload


class SendGridBackend(Backend):
    name = "sendgrid"
    max_recipients = MAX_PERSONALIZATIONS
    batch_size = MAX_PERSONALIZATIONS
    concurrency = 4  # each post waits on the network: four overlap it

    @classmethod
    def reports_events(cls, settings: Settings) -> bool:
        """SendGrid's Event Webhook reports every message, once its key is configured."""
        return bool((settings.sendgrid_webhook_public_key or "").strip())

    def __init__(self, api_key: str | None, host: str, timeout: float = 30.0) -> None:
        if not api_key:
            raise ConfigError(
                "SENDGRID_API_KEY is not set; put the API key in the environment or .env"
            )
        self.client = SendGridAPIClient(api_key=api_key, host=host.rstrip("/"))
        # python_http_client passes the timeout on to each request it builds.
        self.client.client.timeout = timeout
        self.host = host

    @classmethod
    def from_settings(cls, settings: Settings) -> Self:
        """From ``SENDGRID_API_KEY``, ``DIGEST_SENDGRID_API_HOST`` and ``DIGEST_HTTP_TIMEOUT``."""
        key = settings.sendgrid_api_key.get_secret_value() if settings.sendgrid_api_key else None
        return cls(key, settings.sendgrid_api_host, timeout=settings.http_timeout)

    @classmethod
    def configured_by(cls, settings: Settings) -> str | None:
        key = settings.sendgrid_api_key
        return "SENDGRID_API_KEY" if key is not None and key.get_secret_value() else None

    @classmethod
    def account_limit(cls, settings: Settings) -> AccountLimit | None:
        """``DIGEST_SENDGRID_RATE`` for the account the API key names (the key is hashed)."""
        if settings.sendgrid_rate is None:
            return None
        key = settings.sendgrid_api_key.get_secret_value() if settings.sendgrid_api_key else ""
        host = urlsplit(settings.sendgrid_api_host).netloc or settings.sendgrid_api_host
        account = hashlib.sha256(key.encode()).hexdigest()[:12]
        return AccountLimit(
            f"sendgrid:{host}:{account}", settings.sendgrid_rate, "DIGEST_SENDGRID_RATE"
        )

    def send(self, post: Post) -> list[RecipientResult]:
        refused: list[RecipientResult] = []
        carried = []
        for r in post.recipients:
            try:
                ascii_address(r.email)
            except UnsendableAddress as exc:
                refused.append(RecipientResult(r.delivery_id, ok=False, error=str(exc)))
            else:
                carried.append(r)
        if not carried:
            return refused
        post = Post(post.envelope, carried)
        payload = build_payload(post)
        try:
            response = self.client.client.mail.send.post(request_body=payload)
        except http_errors.HTTPError as exc:
            raise _classify(exc) from None
        except urllib.error.URLError as exc:
            # urllib wraps what fails while connecting and sending: the request did
            # not reach SendGrid whole, so trying again cannot make a second copy.
            raise RetryableError(f"cannot reach SendGrid at {self.host}: {exc.reason}") from None
        except (http.client.HTTPException, OSError) as exc:
            # Raised while waiting for the answer: SendGrid has the whole request
            # and may have accepted it.
            raise AmbiguousError(
                f"SendGrid at {self.host} took the request but did not answer "
                f"({type(exc).__name__}: {exc})"
            ) from None
        provider_id = _header(response.headers, "X-Message-Id")
        return refused + [
            RecipientResult(r.delivery_id, ok=True, provider_id=provider_id)
            for r in post.recipients
        ]


def _header(headers: Any, name: str) -> str | None:
    if headers is None:
        return None
    try:
        value = headers.get(name)
    except AttributeError:
        return None
    return str(value) if value else None


def _provider_message(exc: http_errors.HTTPError) -> str:
    body = exc.body.decode("utf-8", "replace") if isinstance(exc.body, bytes) else str(exc.body)
    try:
        errors = json.loads(body).get("errors", [])
        parts = [
            f"{e.get('message', '')}" + (f" (field: {e['field']})" if e.get("field") else "")
            for e in errors
        ]
        if parts:
            return "; ".join(parts)
    except (ValueError, AttributeError):
        pass
    return body.strip()[:300] or exc.reason


def _classify(exc: http_errors.HTTPError) -> Exception:
    status = exc.status_code
    message = f"SendGrid answered {status}: {_provider_message(exc)}"
    if status == 429:
        retry_after = _header(exc.headers, "Retry-After")
        try:
            wait = float(retry_after) if retry_after else None
        except ValueError:
            wait = None
        return RetryableError(message, retry_after=wait)
    if status >= 500 or status == 408:
        return RetryableError(message)
    if status in (401, 403):
        return FatalError(f"{message}; check SENDGRID_API_KEY and its Mail Send permission")
    return PermanentError(message)
