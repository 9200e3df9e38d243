"""Delivery backends by name, and which one a send uses (and why).

The one registry of backends (the model is django-anymail): a name maps to a
:class:`~digest.delivery.base.Backend` subclass, which builds itself from the
settings with :meth:`~digest.delivery.base.Backend.from_settings`, reading only
its own keys.  Classes are named by import path and loaded when first used, so
listing the names (``--backend``'s choices) imports no provider's client.

To add a backend: write the class (see ADDING_BACKENDS.md) and add one line to
:data:`BACKENDS`.

:func:`resolve_backend` is the one place that decides which backend a send, a
test copy or a confirmation email goes through, and says why:

1. the name asked for (``--backend``), if any;
2. else ``DIGEST_BACKEND``, if set;
3. else the one provider whose settings are filled in (``DIGEST_SMTP_URL`` →
   smtp, ``SENDGRID_API_KEY`` → sendgrid): a user who configured SMTP and sends
   expects SMTP, not files in a folder, and readers sent to the outbox are
   recorded as sent;
4. else the outbox.

Two providers configured and no ``DIGEST_BACKEND`` is a ConfigError asking to
choose.  The reason is shown by ``digest send``, ``digest send-test``, the
scheduler and the preview's test send.

It is also where a real send is refused when its links would not be safe
(:func:`check_mail_settings`): a backend that really emails people
(:attr:`~digest.delivery.base.Backend.delivers_mail`: smtp, sendgrid) needs an
https ``DIGEST_BASE_URL`` (RFC 8058 one-click unsubscribe) and a
``DIGEST_SECRET_KEY`` other than the development default.  Every sending path
resolves its backend here first (send, send-test, schedule run, the scheduler
and workers at start, the preview's test send, confirmation emails), so all of
them obey; the outbox, which keeps files, may use http.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from importlib import import_module
from types import MappingProxyType
from urllib.parse import urlsplit

from digest.config import DEVELOPMENT_SECRET_KEY, Settings
from digest.delivery.base import Backend
from digest.errors import ConfigError

#: Every backend: name → ``module:Class``.
BACKENDS: Mapping[str, str] = MappingProxyType(
    {
        "outbox": "digest.delivery.outbox:OutboxBackend",
        "smtp": "digest.delivery.smtp:SMTPBackend",
        "sendgrid": "digest.delivery.sendgrid:SendGridBackend",
    }
)
#: What sends when nothing else is asked for or configured.
DEFAULT = "outbox"


def names() -> tuple[str, ...]:
    """The backend names, in the registry's order."""
    return tuple(BACKENDS)


def backend_class(name: str, *, setting: str = "backend") -> type[Backend]:
    """The class registered as ``name``; an unknown name is one ConfigError listing the
    known ones (``setting`` names where the name came from, e.g. ``DIGEST_BACKEND``)."""
    path = BACKENDS.get(name)
    if path is None:
        known = ", ".join(BACKENDS)
        raise ConfigError(f"{setting}: unknown backend {name!r}; use one of {known}")
    module, _, attr = path.partition(":")
    cls = getattr(import_module(module), attr)
    if not (isinstance(cls, type) and issubclass(cls, Backend)):
        raise TypeError(f"{path} is not a Backend subclass")
    return cls


@dataclass(frozen=True)
class BackendChoice:
    """The backend a send goes through, and why it is that one."""

    name: str
    reason: str

    @property
    def backend_class(self) -> type[Backend]:
        return backend_class(self.name)

    def factory(self, settings: Settings) -> Callable[[], Backend]:
        """What the send loop calls for each sending thread's own instance."""
        return partial(self.backend_class.from_settings, settings)

    def __str__(self) -> str:
        return f"{self.name} ({self.reason})"


def check_mail_settings(settings: Settings, backend: str | type[Backend]) -> None:
    """Refuse, with what to set, a real send whose links would not be safe: through a
    backend that really emails people, ``DIGEST_BASE_URL`` must be https (the
    List-Unsubscribe link of RFC 8058 one-click unsubscribe must be) and
    ``DIGEST_SECRET_KEY`` must not be the development default (it signs every
    reader's links).  Backends that keep messages (the outbox) may use either."""
    cls = backend_class(backend) if isinstance(backend, str) else backend
    if not cls.delivers_mail:
        return
    name = cls.name
    problems = []
    if urlsplit(settings.base_url.strip()).scheme.lower() != "https":
        problems.append(
            f"DIGEST_BASE_URL is {settings.base_url}: {name} really emails readers, and the "
            "links in its messages (List-Unsubscribe, RFC 8058) must be https; set "
            "DIGEST_BASE_URL to the https address of `digest serve` (e.g. "
            "https://news.example.org), or send to files with --backend outbox"
        )
    if settings.secret_key.get_secret_value() == DEVELOPMENT_SECRET_KEY:
        problems.append(
            f"DIGEST_SECRET_KEY is the development default: {name} really emails readers, "
            "whose links it signs; set DIGEST_SECRET_KEY to a long random value (e.g. the "
            "output of `python -c 'import secrets; print(secrets.token_urlsafe(32))'`), the "
            "same for every digest process"
        )
    if problems:
        raise ConfigError("; also ".join(problems))


def resolve_backend(
    settings: Settings,
    requested: str | None = None,
    *,
    requested_by: str = "--backend",
    sending: bool = True,
) -> BackendChoice:
    """Which backend to use, and why (see the module doc for the order).

    ``requested`` is a name asked for explicitly (``requested_by`` says how, for the
    reason).  Raises ConfigError for an unknown name, or when ``DIGEST_BACKEND`` is
    unset and more than one provider is configured, or (``sending``: a real send, not
    a dry run) when the backend really emails and the links would not be safe
    (:func:`check_mail_settings`).
    """
    choice = _choose(settings, requested, requested_by)
    if sending:
        check_mail_settings(settings, choice.backend_class)
    return choice


def _choose(settings: Settings, requested: str | None, requested_by: str) -> BackendChoice:
    if requested:
        backend_class(requested, setting=requested_by)
        return BackendChoice(requested, f"{requested_by} {requested}")
    configured = {
        name: key
        for name in BACKENDS
        if (key := backend_class(name).configured_by(settings)) is not None
    }
    if settings.backend:
        backend_class(settings.backend, setting="DIGEST_BACKEND")
        reason = f"DIGEST_BACKEND={settings.backend}"
        unused = [
            f"{key} is set but only used with DIGEST_BACKEND={name}"
            for name, key in configured.items()
            if name != settings.backend
        ]
        return BackendChoice(settings.backend, "; ".join([reason, *unused]))
    if len(configured) > 1:
        keys = " and ".join(configured.values())
        options = " or ".join(f"DIGEST_BACKEND={name}" for name in configured)
        raise ConfigError(
            f"DIGEST_BACKEND is unset and both {keys} are set; set {options} to say which one sends"
        )
    if configured:
        ((name, key),) = configured.items()
        return BackendChoice(name, f"DIGEST_BACKEND is unset and {key} is set")
    return BackendChoice(
        DEFAULT, "the default: DIGEST_BACKEND is unset and no provider's settings are filled in"
    )


__all__ = [
    "BACKENDS",
    "DEFAULT",
    "BackendChoice",
    "backend_class",
    "check_mail_settings",
    "names",
    "resolve_backend",
]
