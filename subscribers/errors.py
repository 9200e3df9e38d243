"""Errors of the subscribers package (which stands alone: no ``digest`` import).

The ``digest`` CLI shows any :class:`SubscribersError` as one clear line, like
its own errors.
"""

from __future__ import annotations


class SubscribersError(Exception):
    """A problem the admin can fix: the message says what, where and how."""

    exit_code = 1


class InvalidAddress(SubscribersError, ValueError):
    """An email address that does not validate."""


class InvalidRule(SubscribersError, ValueError):
    """A segment rule that is not well-formed: names the path in the rule and the problem."""

    exit_code = 2


class NotFound(SubscribersError, LookupError):
    """A list, subscriber or segment that does not exist."""


class Suppressed(SubscribersError):
    """The address is on the suppression list and may not be (re)subscribed."""


class BadToken(SubscribersError):
    """A link token that is tampered with, expired or meant for another purpose."""


class InvalidTimezone(SubscribersError, ValueError):
    """A timezone that is not an IANA name."""


class AlreadyExists(SubscribersError):
    """A list or segment with that name exists already."""


class ConsentRefused(SubscribersError):
    """A change of status that the consent state machine does not allow for its source
    (see :mod:`subscribers.consent`)."""


class NotResubscribable(ConsentRefused):
    """The address unsubscribed (or bounced, or complained): only the reader can come
    back, by confirming."""


class CsvError(SubscribersError, ValueError):
    """A CSV file that cannot be imported at all (encoding, header): names the file and line."""

    exit_code = 2


class InvalidName(SubscribersError, ValueError):
    """A list, segment or attribute name that is not allowed."""

    exit_code = 2


class UnknownCategory(SubscribersError, ValueError):
    """A category that none of the list's newsletters has."""

    exit_code = 2
