"""``POST /webhooks/sendgrid``: SendGrid's Signed Event Webhook.

SendGrid signs each post with ECDSA (P-256, SHA-256) over the bytes of the
``X-Twilio-Email-Event-Webhook-Timestamp`` header followed by the raw body, and sends the
base64 DER signature in ``X-Twilio-Email-Event-Webhook-Signature`` (as SendGrid's own
``sendgrid.helpers.eventwebhook.EventWebhook.verify_signature`` checks it).  The public key
is ``DIGEST_SENDGRID_WEBHOOK_PUBLIC_KEY``: base64 DER as SendGrid's settings page shows it,
or PEM.

Unsigned, badly signed and stale posts (timestamp further than ``tolerance`` seconds from
now, either way) are refused with 403; without a key the webhook is disabled and refuses
everything.  A verified post must be a JSON array (else 400); its events are stored and
acted on by :mod:`digest.events`, each on its own, and the answer is a small JSON
summary: 200 even when some events were bad (they are logged, counted as ``rejected``
and would be just as bad when posted again), 503 only when the database could not be
reached, so that SendGrid retries the batch later.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import time

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_der_public_key, load_pem_public_key
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from digest import events
from digest.app import App
from digest.errors import ConfigError, DigestError
from digest.web.pages import client_ip, read_body

log = logging.getLogger(__name__)

PATH = "/webhooks/sendgrid"
SIGNATURE_HEADER = "X-Twilio-Email-Event-Webhook-Signature"
TIMESTAMP_HEADER = "X-Twilio-Email-Event-Webhook-Timestamp"
#: Seconds a signed post may be away from now before it counts as stale (or replayed).
DEFAULT_TOLERANCE = 300.0
#: Largest body read; SendGrid's batches are far smaller.
MAX_BODY_BYTES = 8 * 1024 * 1024
#: Digits a Unix time in the timestamp header may have (until the year 33658).
_TIMESTAMP_DIGITS = 12


class SignatureRejected(DigestError):
    """A webhook post whose signature or timestamp does not verify: says which and why."""


def load_public_key(text: str) -> ec.EllipticCurvePublicKey:
    """SendGrid's verification key, from base64 DER (as SendGrid shows it) or PEM."""
    text = text.strip()
    try:
        if "-----BEGIN" in text:
            key = load_pem_public_key(text.encode("ascii"))
        else:
            key = load_der_public_key(base64.b64decode("".join(text.split()), validate=True))
    except (ValueError, binascii.Error, UnsupportedAlgorithm, UnicodeEncodeError):
        raise ConfigError(
            "DIGEST_SENDGRID_WEBHOOK_PUBLIC_KEY is not a public key; paste the verification "
            "key from SendGrid's Mail Settings > Signed Event Webhook (base64) or a PEM file"
        ) from None
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP256R1):
        raise ConfigError(
            "DIGEST_SENDGRID_WEBHOOK_PUBLIC_KEY is not an ECDSA P-256 key; SendGrid's "
            "Signed Event Webhook key is one: paste it again from SendGrid's settings"
        )
    return key


def verify_signature(
    public_key: ec.EllipticCurvePublicKey,
    body: bytes,
    signature: str | None,
    timestamp: str | None,
    *,
    tolerance: float = DEFAULT_TOLERANCE,
    now: float | None = None,
) -> None:
    """Check a post as SendGrid signs it; :class:`SignatureRejected` says what is wrong."""
    if not signature or not signature.strip():
        raise SignatureRejected(f"missing {SIGNATURE_HEADER} header")
    if not timestamp or not timestamp.strip():
        raise SignatureRejected(f"missing {TIMESTAMP_HEADER} header")
    text = timestamp.strip()
    if not (text.isascii() and text.isdigit() and len(text) <= _TIMESTAMP_DIGITS):
        raise SignatureRejected(f"{TIMESTAMP_HEADER} is not a Unix time (seconds, digits)")
    sent_at = int(text)
    skew = (time.time() if now is None else now) - sent_at
    if abs(skew) > tolerance:
        raise SignatureRejected(
            f"{TIMESTAMP_HEADER} is {abs(skew):.0f}s {'old' if skew > 0 else 'in the future'} "
            f"(tolerance {tolerance:.0f}s): stale or replayed"
        )
    try:
        der = base64.b64decode(signature.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise SignatureRejected(f"{SIGNATURE_HEADER} is not base64") from None
    try:
        public_key.verify(der, timestamp.encode("utf-8") + body, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        raise SignatureRejected("the signature does not match the body and timestamp") from None


class SendGridWebhook:
    """The endpoint, bound to one :class:`~digest.app.App` (settings and database)."""

    def __init__(
        self,
        app: App,
        *,
        tolerance: float = DEFAULT_TOLERANCE,
        max_body_bytes: int = MAX_BODY_BYTES,
    ) -> None:
        self.app = app
        self.tolerance = tolerance
        self.max_body_bytes = max_body_bytes
        self._key: ec.EllipticCurvePublicKey | None = None

    def public_key(self) -> ec.EllipticCurvePublicKey | None:
        """The configured key (loaded once), or None when the webhook is disabled."""
        if self._key is None:
            configured = self.app.settings.sendgrid_webhook_public_key
            if not configured or not configured.strip():
                return None
            self._key = load_public_key(configured)
        return self._key

    async def handle(self, request: Request) -> Response:
        try:
            key = self.public_key()
        except ConfigError as exc:
            log.error("SendGrid webhook refused a post: %s", exc)
            return _error(403, "the webhook's verification key is misconfigured")
        if key is None:
            log.warning(
                "SendGrid webhook is disabled: set DIGEST_SENDGRID_WEBHOOK_PUBLIC_KEY to the "
                "Signed Event Webhook verification key; unsigned events are never accepted"
            )
            return _error(403, "the webhook is disabled: no verification key is configured")
        body = await read_body(request, self.max_body_bytes)
        if body is None:
            return _error(413, f"the body is larger than {self.max_body_bytes} bytes")
        try:
            verify_signature(
                key,
                body,
                request.headers.get(SIGNATURE_HEADER),
                request.headers.get(TIMESTAMP_HEADER),
                tolerance=self.tolerance,
            )
        except SignatureRejected as exc:
            log.warning("SendGrid webhook refused a post from %s: %s", client_ip(request), exc)
            return _error(403, str(exc))
        try:
            batch = json.loads(body)
        except (UnicodeDecodeError, ValueError):
            return _error(400, "the body is not JSON")
        except RecursionError:
            return _error(400, "the body nests far too deeply to be a batch of events")
        if not isinstance(batch, list):
            return _error(400, "the body is not a JSON array of event objects")
        summary = await run_in_threadpool(events.ingest_sendgrid, self.app.transaction, batch)
        return JSONResponse(summary.as_dict(), status_code=503 if summary.failed else 200)


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def routes(
    app: App, *, tolerance: float = DEFAULT_TOLERANCE, max_body_bytes: int = MAX_BODY_BYTES
) -> list[BaseRoute]:
    """The webhook routes, to mount on the web application."""
    hook = SendGridWebhook(app, tolerance=tolerance, max_body_bytes=max_body_bytes)
    return [Route(PATH, hook.handle, methods=["POST"], name="sendgrid_webhook")]


__all__ = [
    "DEFAULT_TOLERANCE",
    "PATH",
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "SendGridWebhook",
    "SignatureRejected",
    "load_public_key",
    "routes",
    "verify_signature",
]
