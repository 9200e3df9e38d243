"""digest.web.groupcommit: many requests' writes in one transaction, each answered
after the commit; and the one-click burst it serves (digest.web.unsubscribes)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from digest.web import create_app
from digest.web.groupcommit import GroupCommit
from digest.web.pages import WebState
from subscribers import consent, service
from subscribers.models import ConsentSource, Status, Subscriber
from subscribers.tokens import make_token
from tests.support import web as support
from tests.support.web import web_world
from tests.support.world import World

sqlite_template = support.sqlite_template
fast_db_url = support.fast_db_url
SECRET = "test-secret-key-of-some-length"


class Store:
    """A stand-in database: a transaction's writes land in ``rows`` on commit only."""

    def __init__(self) -> None:
        self.rows: list[Any] = []
        self.transactions: list[list[Any]] = []

    @contextmanager
    def transaction(self) -> Iterator[list[Any]]:
        writes: list[Any] = []
        yield writes  # an exception here rolls back: nothing lands
        self.rows += writes
        self.transactions.append(writes)


def doubled(writes: list[Any], items: Sequence[Any]) -> list[Any]:
    for item in items:
        if item == "bad":
            raise ValueError("a bad item")
        writes.append(item)
    return [item * 2 for item in items]


class Held:
    """``doubled``, with the first transaction held open until :meth:`burst` lets it go."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.hold = threading.Event()

    def write(self, writes: list[Any], items: Sequence[Any]) -> list[Any]:
        self.entered.set()
        self.hold.wait(30)
        return doubled(writes, items)

    async def burst(self, group: GroupCommit[Any, Any], items: list[Any]) -> list[Any]:
        """The first item, taken into a transaction that stays open; the rest, queued
        behind it; then the transaction let go."""
        tasks = [asyncio.ensure_future(group.submit(items[0]))]
        await _until(self.entered.is_set)
        tasks += [asyncio.ensure_future(group.submit(item)) for item in items[1:]]
        await _until(lambda: group.waiting == len(items) - 1)
        self.hold.set()
        return await asyncio.gather(*tasks, return_exceptions=True)


async def _until(done: Any) -> None:
    deadline = time.monotonic() + 30
    while not done():
        assert time.monotonic() < deadline
        await asyncio.sleep(0.01)


def test_a_burst_is_written_in_few_transactions_and_each_gets_its_own_result() -> None:
    store, held = Store(), Held()
    group: GroupCommit[int, int] = GroupCommit(store.transaction, held.write)  # type: ignore[arg-type]
    results = asyncio.run(held.burst(group, list(range(40))))
    assert results == [i * 2 for i in range(40)]
    assert sorted(store.rows) == list(range(40))
    # the first item alone, then the 39 that queued behind it, together
    assert [len(t) for t in store.transactions] == [1, 39]
    assert (group.commits, group.written) == (2, 40)


def test_a_bad_item_fails_its_own_request_only() -> None:
    store, held = Store(), Held()
    group: GroupCommit[Any, Any] = GroupCommit(store.transaction, held.write)  # type: ignore[arg-type]
    results = asyncio.run(held.burst(group, [0, 1, "bad", 3]))
    assert results[:2] == [0, 2] and results[3] == 6
    assert isinstance(results[2], ValueError)
    # the batch [1, bad, 3] rolled back and was written again item by item
    assert sorted(store.rows) == [0, 1, 3]
    assert [len(t) for t in store.transactions] == [1, 1, 1]


def test_the_thread_ends_when_idle_and_comes_back_with_the_next_request() -> None:
    store = Store()
    group: GroupCommit[int, int] = GroupCommit(store.transaction, doubled)  # type: ignore[arg-type]
    group.idle = 0.05
    assert asyncio.run(group.submit(1)) == 2
    deadline = time.monotonic() + 30
    while group._thread is not None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert group._thread is None
    assert asyncio.run(group.submit(2)) == 4
    assert store.rows == [1, 2]


# ---------------------------------------------------------------------------
# The one-click burst through the app


@pytest.fixture
def world(fast_db_url: str, tmp_path: Path) -> World:
    return web_world(fast_db_url, tmp_path)


def test_a_burst_of_one_click_posts_unsubscribes_each_reader_once(world: World) -> None:
    with world.app.transaction() as s:
        ids = [
            service.add_subscriber(s, f"r{i}@example.net", "weekly").subscriber.id
            for i in range(30)
        ]
    web = create_app(world.app)

    async def burst() -> list[int]:
        transport = httpx.ASGITransport(app=web)
        async with httpx.AsyncClient(transport=transport, base_url="https://testserver") as c:
            posts = [
                c.post(
                    f"/u/{make_token(SECRET, sid, 'unsubscribe', list_name='weekly')}",
                    content=b"List-Unsubscribe=One-Click",
                    headers={"Content-Type": "application/x-www-form-urlencoded"},
                )
                for sid in ids + ids[:5]  # five readers post twice
            ]
            return [r.status_code for r in await asyncio.gather(*posts)]

    assert asyncio.run(burst()) == [200] * 35
    state = web.state.web
    assert isinstance(state, WebState)
    assert state.unsubscribes.written == 35
    with world.app.transaction() as s:
        for sid in ids:
            reader = s.get(Subscriber, sid)
            assert reader is not None and reader.status is Status.UNSUBSCRIBED
            left = [
                line
                for line in consent.history(s, sid)
                if line.to_status is Status.UNSUBSCRIBED and line.list_name == "weekly"
            ]
            assert len(left) == 1 and left[0].source is ConsentSource.ONE_CLICK
            assert consent.replay(consent.history(s, sid)).problems == []
