"""One rate per provider account, shared by every process that sends through it.

Providers limit the account, not the process: four workers at 100 messages per
second each send 400 to an account whose limit is 100.  So the budget lives in
the database, one ``rate_budget`` row per account (:class:`~digest.models.RateBudget`),
as a virtual schedule (GCRA, the "generic cell rate algorithm"): the row holds
the time at which the next message not yet spoken for may go.  A sender that
wants ``n`` messages moves it forward by ``n / rate`` seconds in one atomic
statement and is told when its share begins::

    UPDATE rate_budget SET next_at = GREATEST(next_at, now) + n / rate
    WHERE key = :account RETURNING next_at - n / rate - now

On PostgreSQL ``now`` is the database's clock (``statement_timestamp()``), so
workers on machines whose clocks disagree still share one schedule; the row lock
of the ``UPDATE`` orders concurrent senders.  On SQLite (one machine) the same
statement runs in a ``BEGIN IMMEDIATE`` transaction with this machine's clock.

Shares never overlap and nothing is saved up while the account is idle (no
burst), so however many senders there are, the messages whose shares start in
any interval of ``T`` seconds number at most ``T × rate`` plus one share.  The
send loop takes a batch's worth at a time (one statement per batch, not per
message) and spaces the batch's posts across its share, each post at most
:data:`POST_SECONDS` of the rate: over any 10-second window the account sees at
most 10 × rate plus a quarter of a second's worth, plus whatever delays on the
way bunch together.  For those the budget is spaced at :data:`HEADROOM` (95%) of
the configured rate: N workers stay within 10% of the limit over any 10 seconds
(tests/test_workers_scale_out.py measures it at SendGrid's end).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from sqlalchemy import Float, bindparam, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, sessionmaker

from digest.delivery.base import AccountLimit
from digest.models import RateBudget

#: The share of the configured rate the budget hands out.  Posts leave on time but reach
#: the provider a little late, each by its own delay (a busy machine, the network, the
#: provider's own queue); late posts bunch up with punctual ones.  Spacing them at 95%
#: of the rate leaves half a second of such bunching per 10-second window before the
#: account goes over its limit.
HEADROOM = 0.95
#: The most one post carries, in seconds of the shared rate (at 400 messages per second,
#: posts of 100): a post lands all at once, so the smaller it is, the smoother the flow.
POST_SECONDS = 0.25


def post_size(limit: AccountLimit | None, max_recipients: int) -> int:
    """Recipients per post under ``limit``: the backend's most, but at most
    :data:`POST_SECONDS` of the shared rate (and at least one)."""
    size = max(1, max_recipients)
    if limit is None:
        return size
    return max(1, min(size, int(limit.rate * POST_SECONDS)))


@dataclass(frozen=True)
class Share:
    """Messages reserved from the budget: they may go from ``start`` (this process's
    ``time.monotonic()``), one every ``1 / rate`` seconds."""

    start: float
    count: int
    rate: float
    #: The same start on the budget's own clock (seconds since the epoch; the database's
    #: on PostgreSQL): comparable between processes and machines.
    begins: float = 0.0

    def at(self, offset: int) -> float:
        """When the message ``offset`` places into the share may go (monotonic)."""
        return self.start + offset / self.rate


class SharedRate:
    """The budget of one account, taken from through ``sessions``."""

    def __init__(self, sessions: sessionmaker[Session], limit: AccountLimit) -> None:
        self.sessions = sessions
        self.limit = limit

    def reserve(self, count: int) -> Share:
        """Take ``count`` messages' worth of the account's rate (one statement); the
        share starts now or, when others were ahead, later."""
        count = max(1, count)
        rate = self.limit.rate * HEADROOM
        cost = count / rate
        with self.sessions.begin() as s:
            postgres = s.get_bind().dialect.name == "postgresql"
            now = (
                func.extract("epoch", func.statement_timestamp())
                if postgres
                else bindparam("now", time.time(), type_=Float)
            )
            later = func.greatest if postgres else func.max
            take = (
                update(RateBudget)
                .where(RateBudget.key == self.limit.key)
                .values(
                    next_at=later(RateBudget.next_at, now) + cost,
                    rate=self.limit.rate,
                    taken=RateBudget.taken + count,
                )
                .returning(RateBudget.next_at - cost, now)
            )
            row = s.execute(take).first()
            if row is None:  # the account's first share: make its row (a race is harmless)
                values = {
                    "key": self.limit.key,
                    "rate": self.limit.rate,
                    "next_at": 0.0,
                    "taken": 0,
                }
                insert = postgresql.insert(RateBudget) if postgres else sqlite.insert(RateBudget)
                s.execute(insert.values(**values).on_conflict_do_nothing(index_elements=["key"]))
                row = s.execute(take).one()
            begins, clock = row
        wait = max(0.0, float(begins) - float(clock))
        return Share(time.monotonic() + wait, count, rate, float(begins))


def budgets(session: Session) -> list[RateBudget]:
    """Every account's budget (for `digest workers list` and the admin page)."""
    return list(session.scalars(select(RateBudget).order_by(RateBudget.key)))


__all__ = ["HEADROOM", "POST_SECONDS", "Share", "SharedRate", "budgets", "post_size"]
