"""The backend interface: each provider only turns a :class:`Post` into a request.

Everything else — batching, retries, rate limiting, pausing, the ledger — lives
once in :mod:`digest.delivery.loop`.  Each backend builds itself from the
settings (:meth:`Backend.from_settings`, reading only its own), and is found by
name in :mod:`digest.delivery.registry`.  A backend reports problems by raising:

- :class:`RetryableError` for anything worth trying again (429, 5xx, timeouts,
  dropped connections), with ``retry_after`` when the provider said how long;
- :class:`PermanentError` when the provider refused the post (other 4xx): the
  recipients are recorded as failed with the provider's message;
- :class:`AmbiguousError` when the post was handed over but no answer came back
  (a read timeout, a connection dropped after the request was sent): the
  provider may or may not have accepted it, so retrying could send a second
  copy.  Those recipients become *uncertain* and are resent only on request;
- :class:`FatalError` when nothing can be sent until a human fixes something
  (bad credentials, a refused sender): the edition pauses at once.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar, Self

from digest.config import Settings
from digest.delivery.message import Post
from digest.errors import DeliveryError


class BackendError(DeliveryError):
    """A backend's refusal, with the provider's own words."""


class RetryableError(BackendError):
    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class PermanentError(BackendError):
    pass


class AmbiguousError(BackendError):
    pass


class FatalError(BackendError):
    pass


@dataclass(frozen=True)
class AccountLimit:
    """The provider account's rate, which every sending process shares."""

    #: Names the account, never its secret: ``sendgrid:api.sendgrid.com:3f2a…`` (a hash
    #: of the key), ``smtp:user@relay.example.org:587``.
    key: str
    #: Messages per second, across every process.
    rate: float
    #: The setting it came from, for messages (``DIGEST_SENDGRID_RATE``).
    setting: str


@dataclass(frozen=True)
class RecipientResult:
    """What happened to one recipient of a post."""

    delivery_id: int | None
    ok: bool
    provider_id: str | None = None
    message_id: str | None = None
    error: str | None = None


class Backend(ABC):
    """One provider.  Instances are used by one thread at a time."""

    name: ClassVar[str]
    #: Most recipients one post may carry.
    max_recipients: ClassVar[int] = 1
    #: Recipients per ledger batch when an edition is planned for this backend.
    batch_size: ClassVar[int] = 100
    #: Sending threads by default: enough to overlap the waits on the provider.
    concurrency: ClassVar[int] = 1
    #: True for backends that really email people (smtp, sendgrid); False for those that
    #: keep messages (the outbox writes files, the memory backend keeps them in a list).
    #: A real send through one that delivers mail needs an https DIGEST_BASE_URL and a
    #: secret key of its own (see :func:`digest.delivery.registry.check_mail_settings`);
    #: what people are told about a test copy says where it went.
    delivers_mail: ClassVar[bool] = True

    @classmethod
    def reports_events(cls, settings: Settings) -> bool:
        """True when the provider reports what became of each message (an event webhook
        configured with these settings): an uncertain delivery then waits
        ``DIGEST_UNCERTAIN_GRACE`` for the provider's word before it may be resent."""
        return False

    @classmethod
    @abstractmethod
    def from_settings(cls, settings: Settings) -> Self:
        """A fresh instance configured from ``settings`` (only this backend's own
        keys); a missing or malformed key is a ConfigError naming it."""

    @classmethod
    def connection_limit(cls, settings: Settings) -> int | None:
        """How many connections the provider allows at once, as configured (e.g. SMTP's
        ``?connections=N``): a send then uses that many sending threads unless asked for
        fewer, and never more.  None: nothing said (``concurrency`` by default)."""
        return None

    @classmethod
    def configured_by(cls, settings: Settings) -> str | None:
        """The setting that asks for this backend when ``DIGEST_BACKEND`` is unset
        (e.g. ``DIGEST_SMTP_URL`` for SMTP), if it is set; None otherwise."""
        return None

    @classmethod
    def account_limit(cls, settings: Settings) -> AccountLimit | None:
        """The account's shared rate (e.g. ``DIGEST_SENDGRID_RATE``), if one is set: the
        send loop then takes its messages from one budget in the database, with every
        other process sending through the same account (:mod:`digest.delivery.throttle`)."""
        return None

    def open(self) -> None:  # noqa: B027 - optional hook
        """Set up (connect, authenticate) before the first post."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""

    @abstractmethod
    def send(self, post: Post) -> list[RecipientResult]:
        """Deliver ``post``; return one result per recipient, or raise for the whole post."""

    def __enter__(self) -> Backend:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
