"""Backends by name, built from settings."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from digest.config import Settings
from digest.delivery.backends import Backend
from digest.errors import ConfigError

BACKENDS = ("outbox", "smtp", "sendgrid")


def backend_class(name: str) -> type[Backend]:
    """The class behind a backend name (its limits, without building one)."""
    if name == "outbox":
        from digest.delivery.outbox import OutboxBackend

        return OutboxBackend
    if name == "smtp":
        from digest.delivery.smtp import SMTPBackend

        return SMTPBackend
    if name == "sendgrid":
        from digest.delivery.sendgrid import SendGridBackend

        return SendGridBackend
    raise ConfigError(f"unknown backend {name!r}; use one of {', '.join(BACKENDS)}")


def make_backend(name: str, settings: Settings) -> Backend:
    """A fresh backend instance (one per sending thread)."""
    if name == "outbox":
        from digest.delivery.outbox import OutboxBackend

        return OutboxBackend(settings.outbox_dir)
    if name == "smtp":
        from digest.delivery.smtp import SMTPBackend, parse_smtp_url

        return SMTPBackend(parse_smtp_url(settings.smtp_url))
    if name == "sendgrid":
        from digest.delivery.sendgrid import SendGridBackend

        key = settings.sendgrid_api_key.get_secret_value() if settings.sendgrid_api_key else None
        return SendGridBackend(key, settings.sendgrid_api_host, timeout=settings.http_timeout)
    raise ConfigError(f"unknown backend {name!r}; use one of {', '.join(BACKENDS)}")


def backend_factory(name: str, settings: Settings) -> Callable[[], Backend]:
    """What the send loop calls for each sending thread's backend."""
    return partial(make_backend, name, settings)
