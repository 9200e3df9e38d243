"""The consent state machine: a reader's states and a membership's, the changes
allowed between them, and who may cause each.  Pure data and checks, no database.

A **reader** is ``pending`` (signed up on the form, has confirmed nothing yet),
``active``, ``unsubscribed`` (from every list), ``bounced``, ``complained`` or
``erased`` (nothing is kept but a hash of the address).  A **membership** (a reader
on one list) is ``pending`` (waiting for the double opt-in), ``active`` or
``unsubscribed``.  ``none`` is "no record": a reader not yet known, someone not on
the list.

The one rule that matters most: only the reader's own confirmation (``confirm``)
moves someone who unsubscribed, bounced or complained back to ``active``.  An
import, an admin, the API and the form never do; the form (or an admin) may only
*request* a confirmation email (see :data:`REQUESTERS`).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable

from subscribers.errors import ConsentRefused
from subscribers.models import ConsentSource, Status

S = ConsentSource


class State(enum.StrEnum):
    NONE = "none"
    PENDING = "pending"
    ACTIVE = "active"
    UNSUBSCRIBED = "unsubscribed"
    BOUNCED = "bounced"
    COMPLAINED = "complained"
    ERASED = "erased"

    @classmethod
    def of(cls, status: Status | str | None) -> State:
        return cls.NONE if status is None else cls(Status(status).value)


class Level(enum.StrEnum):
    READER = "reader"
    MEMBERSHIP = "membership"


#: States that stop mail until the reader confirms again.
GONE_STATES = frozenset({State.UNSUBSCRIBED, State.BOUNCED, State.COMPLAINED})
#: The same, as stored statuses.
GONE = (Status.UNSUBSCRIBED, Status.BOUNCED, Status.COMPLAINED)

#: The reader acting on a page or an email of their own.
_READER_LEAVES = frozenset({S.ONE_CLICK, S.UNSUBSCRIBE_PAGE, S.PREFERENCES, S.MAILTO})
#: Who may unsubscribe someone (the reader, an admin, a provider event, the API).
LEAVERS = _READER_LEAVES | {S.ADMIN, S.WEBHOOK, S.API}
#: Who may state that a new person agreed (besides the form and a confirmation).
ADMITTERS = frozenset({S.ADMIN, S.IMPORT, S.API})
#: Who may ask for a confirmation email for someone who left (no status changes).
REQUESTERS = frozenset({S.FORM, S.ADMIN, S.API})
#: Who may report a bounce or a complaint (a provider's webhook, a bounce or feedback
#: report received by mail, an admin, the API).
REPORTERS = frozenset({S.WEBHOOK, S.INBOUND, S.ADMIN, S.API})
#: Who may erase a reader (and delete a list with its memberships).
ERASERS = frozenset({S.ADMIN, S.API})
_ONLY_THE_READER = frozenset({S.CONFIRM})

_P, _A, _U = State.PENDING, State.ACTIVE, State.UNSUBSCRIBED
_B, _C = State.BOUNCED, State.COMPLAINED


def _rules(
    *pairs: tuple[Iterable[tuple[State, State]], frozenset[S]],
) -> dict[tuple[State, State], frozenset[S]]:
    out: dict[tuple[State, State], frozenset[S]] = {}
    for edges, who in pairs:
        for edge in edges:
            out[edge] = out.get(edge, frozenset()) | who
    return out


#: (from, to) → who may cause it, for a reader.
READER_RULES: dict[tuple[State, State], frozenset[S]] = _rules(
    ([(State.NONE, _P)], frozenset({S.FORM})),
    ([(State.NONE, _A)], ADMITTERS | {S.FORM}),
    ([(_P, _A)], ADMITTERS | {S.FORM, S.CONFIRM}),
    ([(_P, _U), (_A, _U)], LEAVERS),
    ([(_U, _A), (_B, _A), (_C, _A)], _ONLY_THE_READER),
    ([(s, _B) for s in (_P, _A, _U, _C)], REPORTERS),
    ([(s, _C) for s in (_P, _A, _U, _B)], REPORTERS),
    ([(s, State.ERASED) for s in (_P, _A, _U, _B, _C)], ERASERS),
)

#: (from, to) → who may cause it, for a membership.  ``none`` as the target is
#: taking someone off a list (never someone who unsubscribed from it: that record
#: is what keeps imports from adding them again); ``erased`` is the membership
#: deleted with its reader or its list.
MEMBERSHIP_RULES: dict[tuple[State, State], frozenset[S]] = _rules(
    ([(State.NONE, _P)], frozenset({S.FORM})),
    ([(State.NONE, _A)], ADMITTERS | {S.FORM, S.CONFIRM}),
    ([(_P, _A)], ADMITTERS | {S.FORM, S.CONFIRM}),
    ([(_P, _U), (_A, _U)], LEAVERS),
    ([(_U, _A)], _ONLY_THE_READER),
    ([(_P, State.NONE), (_A, State.NONE)], ERASERS),
    ([(s, State.ERASED) for s in (_P, _A, _U)], ERASERS),
)

RULES = {Level.READER: READER_RULES, Level.MEMBERSHIP: MEMBERSHIP_RULES}


def who_may(level: Level, old: State, new: State) -> frozenset[S]:
    """Who may move a reader (or a membership) from ``old`` to ``new`` (empty: nobody)."""
    return RULES[level].get((old, new), frozenset())


def allowed(level: Level, old: State, new: State, source: S) -> bool:
    """Whether ``source`` may cause ``old`` → ``new`` (staying put is always allowed)."""
    return old == new or source in who_may(level, old, new)


def explain(level: Level, old: State, new: State, source: S) -> str:
    """Why ``source`` may not cause ``old`` → ``new``, in one sentence."""
    who = who_may(level, old, new)
    if not who:
        return f"a {level.value} cannot go from {old.value} to {new.value}"
    if who == _ONLY_THE_READER:
        return (
            f"{old.value} → {new.value} is for the reader alone, by confirming; "
            f"{source.value} may not do it"
        )
    names = ", ".join(sorted(s.value for s in who))
    return f"{old.value} → {new.value} may be caused by {names}, not by {source.value}"


def require(level: Level, old: State, new: State, source: S) -> None:
    """:class:`ConsentRefused` (saying why) unless ``source`` may cause ``old`` → ``new``."""
    if not allowed(level, old, new, source):
        raise ConsentRefused(explain(level, old, new, source))


def rules_table() -> str:
    """The transitions as a Markdown table (the README's "Consent" section holds it):
    one line per level, target and set of causes, the starting states joined."""
    lines = ["| what | from | to | who may cause it |", "| --- | --- | --- | --- |"]
    for level, rules in RULES.items():
        grouped: dict[tuple[State, frozenset[S]], list[State]] = {}
        for (old, new), who in rules.items():
            grouped.setdefault((new, who), []).append(old)
        for (new, who), olds in grouped.items():
            starts = ", ".join(o.value for o in olds)
            names = ", ".join(sorted(s.value for s in who))
            lines.append(f"| {level.value} | {starts} | {new.value} | {names} |")
    return "\n".join(lines)


__all__ = [
    "ADMITTERS",
    "ERASERS",
    "GONE",
    "GONE_STATES",
    "LEAVERS",
    "MEMBERSHIP_RULES",
    "READER_RULES",
    "REPORTERS",
    "REQUESTERS",
    "RULES",
    "Level",
    "State",
    "allowed",
    "explain",
    "require",
    "rules_table",
    "who_may",
]
