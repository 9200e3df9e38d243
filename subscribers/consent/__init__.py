"""Consent: the one place a reader's or a membership's status changes.

* :mod:`~subscribers.consent.machine`: the states, the allowed changes and who may
  cause each (pure data; the README's "Consent" table is :func:`rules_table`);
* :mod:`~subscribers.consent.changes`: the changes themselves (join, confirm, leave,
  remove, a bounce or a complaint, erasure), checked against the machine, and the
  note that a suppression was lifted (which changes nothing);
* :mod:`~subscribers.consent.bulk`: a CSV import's changes, and a burst of
  unsubscribes, in bulk;
* :mod:`~subscribers.consent.log`: the consent log every change writes, a reader's
  history, and replaying it.

No code outside this package assigns ``Subscriber.status`` or ``Membership.status``
(``tests/test_subscribers_consent.py`` checks).
"""

from __future__ import annotations

from subscribers.consent.bulk import Leaving, leave_many
from subscribers.consent.changes import (
    LIVE,
    RESUBSCRIBE_HINT,
    admit,
    confirm,
    drop_list,
    erase,
    gone_message,
    join,
    leave,
    lifted,
    remove,
    request,
    set_membership,
    set_reader,
    suppressed,
)
from subscribers.consent.log import By, Replayed, asked_since_leaving, history, left_on, replay
from subscribers.consent.machine import (
    GONE,
    GONE_STATES,
    Level,
    State,
    allowed,
    explain,
    rules_table,
    who_may,
)

__all__ = [
    "GONE",
    "GONE_STATES",
    "LIVE",
    "RESUBSCRIBE_HINT",
    "By",
    "Leaving",
    "Level",
    "Replayed",
    "State",
    "admit",
    "allowed",
    "asked_since_leaving",
    "confirm",
    "drop_list",
    "erase",
    "explain",
    "gone_message",
    "history",
    "join",
    "leave",
    "leave_many",
    "left_on",
    "lifted",
    "remove",
    "replay",
    "request",
    "rules_table",
    "set_membership",
    "set_reader",
    "suppressed",
    "who_may",
]
