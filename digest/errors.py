"""One root for every error digest raises on purpose.

The CLI turns any :class:`DigestError` into one clear line on stderr and a
non-zero exit code (``exit_code``); anything else is a bug and keeps its trace.
"""

from __future__ import annotations

from subscribers import errors as subscribers_errors


class DigestError(Exception):
    """A problem the user can fix: the message says what, where and how."""

    exit_code = 1


class ConfigError(DigestError, ValueError):
    """Bad settings or a bad ``digest.toml``: names the file, the key and the problem."""

    exit_code = 2


class DatabaseError(DigestError):
    """The database cannot be reached or its schema is not what this version needs."""


class SchemaOutOfDate(DatabaseError):
    """The database schema is behind this version; ``digest init`` upgrades it."""


class SourceError(DigestError):
    """One source (feed or article page) could not be fetched or parsed."""


class NotFound(DigestError, subscribers_errors.NotFound):
    """A named thing (edition, article, variant, …) does not exist.

    There is one "not found" to catch: this is the subscribers package's
    :class:`subscribers.errors.NotFound` (a list, subscriber or segment), which
    ``subscribers`` cannot import from here, made a :class:`DigestError` too.  Catch
    ``subscribers.errors.NotFound`` for both; this one for digest's own.
    """


class TemplateError(DigestError):
    """A template is missing or broken: names the template and the line."""


class DeliveryError(DigestError):
    """A send could not proceed (bad backend settings, paused edition, …)."""


class ScheduleError(DigestError):
    """A scheduled run cannot start (another run of the same slot is in progress, …)."""
