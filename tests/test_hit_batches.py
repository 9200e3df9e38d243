"""Clicks and opens written in batches (issue 17 §3): none lost, on a graceful stop too.

The web app queues each click in memory and a thread writes the queue every
``DIGEST_HIT_FLUSH_SECONDS``; SIGTERM (a deploy, ``systemctl stop``) must write what is
queued before the process ends.  Real parts: ``digest serve`` as a process of its own,
SQLite and PostgreSQL.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

import httpx
from sqlalchemy import delete, func, select

from digest import tracking
from digest.models import Edition, Hit
from digest.web.pages import WebOptions
from subscribers.service import find_subscriber
from tests.support import web as support
from tests.support.web import client_for, html_of, outbox_messages
from tests.support.world import World, send
from tests.test_tracking import TRACKED, edition_id, hits, opt_out, tracking_world

sqlite_template = support.sqlite_template
fast_db_url = support.fast_db_url
fast_sqlite_url = support.fast_sqlite_url


def tracked_paths(world: World) -> list[str]:
    paths = []
    for message in outbox_messages(world):
        paths += [urlsplit(url).path for url in TRACKED.findall(html_of(message))]
    assert paths
    return paths


def reader_id(world: World, address: str) -> int:
    with world.app.sessions() as s:
        who = find_subscriber(s, address)
        assert who is not None
        return who.id


@contextmanager
def serving(world: World, **env: str) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """``digest serve --port 0`` on the world, as a process of its own."""
    full = {k: v for k, v in os.environ.items() if not k.startswith("DIGEST_")}
    full.update(world.env, PYTHONUNBUFFERED="1", **env)
    log = world.root / "server.log"
    with log.open("w") as errors:
        process = subprocess.Popen(
            [sys.executable, "-m", "digest.cli", "serve", "--port", "0"],
            cwd=world.root,
            env=full,
            stdout=subprocess.PIPE,
            stderr=errors,
            text=True,
        )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        found = re.search(r"http://[\d.]+:\d+", line)
        assert found, f"the server printed {line!r}; its log:\n{log.read_text()}"
        yield process, found.group(0)
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=60)
        if process.stdout is not None:
            process.stdout.close()


def test_a_graceful_stop_writes_every_queued_click(fast_db_url: str, tmp_path: Path) -> None:
    world = tracking_world(fast_db_url, tmp_path, readers=3)
    assert send(world.app, backend="outbox").counts.sent == 3
    paths = tracked_paths(world)
    # A flush interval far beyond the test: clicks reach the database only by the stop.
    with serving(world, DIGEST_HIT_FLUSH_SECONDS="3600") as (process, url):
        with httpx.Client(base_url=url, timeout=30) as client:
            for path in paths:
                answer = client.get(path)
                assert answer.status_code == 302, answer.text
        assert hits(world, "click") == 0  # all still queued in the server
        process.send_signal(signal.SIGTERM)
        # uvicorn stops gracefully, then ends by the signal it caught (as it should)
        assert process.wait(timeout=60) in (0, -signal.SIGTERM)
        assert "Application shutdown complete" in (world.root / "server.log").read_text()
    assert hits(world, "click") == len(paths)


def test_clicks_are_written_in_batches_while_serving(fast_db_url: str, tmp_path: Path) -> None:
    world = tracking_world(fast_db_url, tmp_path, readers=2, opens=True)
    assert send(world.app, backend="outbox").counts.sent == 2
    paths = tracked_paths(world)
    with client_for(world, options=WebOptions(hit_flush_seconds=600)) as client:
        recorder = client.app.state.web.hits  # type: ignore[attr-defined]
        assert isinstance(recorder, tracking.HitRecorder)
        for path in paths:
            assert client.get(path).status_code == 302
        assert client.head(paths[0]).status_code == 302  # a link checker counts nothing
        pixel = re.search(
            r'src="https://news\.example\.org(/o/[^"]+)"', html_of(outbox_messages(world)[0])
        )
        assert pixel and client.get(pixel.group(1)).status_code == 200
        assert recorder.pending == len(paths) + 1 and hits(world, "click") == 0
        assert recorder.flush() == len(paths) + 1
        assert hits(world, "click") == len(paths) and hits(world, "open") == 1
        # a damaged link is still a 404 page, queued nothing
        assert client.get(paths[0][:-2] + "xx").status_code == 404
        assert recorder.pending == 0


def test_a_batch_skips_readers_who_opted_out_and_editions_deleted(
    fast_db_url: str, tmp_path: Path
) -> None:
    world = tracking_world(fast_db_url, tmp_path, readers=3)
    assert send(world.app, backend="outbox").counts.sent == 3
    edition = edition_id(world)
    opt_out(world, "reader2@example.net")
    recorder = tracking.HitRecorder(world.app.transaction, 600)
    ids = {f"reader{i}": reader_id(world, f"reader{i}@example.net") for i in range(3)}
    for sid in ids.values():
        recorder.add(tracking.OPEN, edition, sid)
    recorder.add(tracking.OPEN, edition + 1000, ids["reader1"])  # no such edition
    assert recorder.flush() == 2  # reader2 opted out; the unknown edition is skipped
    with world.app.sessions() as s:
        stored = set(s.scalars(select(Hit.subscriber_id)))
    assert stored == {ids["reader1"], ids["reader0"]}
    # an edition deleted while its clicks waited: they are skipped, the rest written
    recorder.add(tracking.OPEN, edition, ids["reader1"])
    with world.app.transaction() as s:
        s.execute(delete(Hit))
        s.execute(delete(Edition).where(Edition.id == edition))
    assert recorder.flush() == 0
    recorder.close()


def test_concurrent_clicks_during_flushes_are_all_written(fast_db_url: str, tmp_path: Path) -> None:
    world = tracking_world(fast_db_url, tmp_path, readers=1)
    assert send(world.app, backend="outbox").counts.sent == 1
    edition = edition_id(world)
    sid = reader_id(world, "reader0@example.net")
    recorder = tracking.HitRecorder(world.app.transaction, 0.01)
    recorder.batch = 7

    def clicker() -> None:
        for _ in range(150):
            recorder.add(tracking.OPEN, edition, sid)

    threads = [threading.Thread(target=clicker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    recorder.close()
    assert recorder.pending == 0
    with world.app.sessions() as s:
        assert s.scalar(select(func.count()).select_from(Hit)) == 600
    assert recorder.written == 600


def test_a_click_answered_before_the_framework_is_the_routes_answer(
    fast_db_url: str, tmp_path: Path
) -> None:
    world = tracking_world(fast_db_url, tmp_path, readers=1)
    assert send(world.app, backend="outbox").counts.sent == 1
    path = tracked_paths(world)[0]
    tracking.LINKS._items.clear()  # the first click reads the link: the route answers it
    with client_for(world, options=WebOptions(hit_flush_seconds=3600)) as client:
        routed = client.get(path)
        assert tracking.LINKS.cached(int(path.rsplit("/", 1)[1].split(".")[0])) is not None
        direct = client.get(path)  # cached now: answered by FastClicks
        recorder = client.app.state.web.hits  # type: ignore[attr-defined]
        assert recorder.flush() == 2
    assert routed.status_code == direct.status_code == 302
    assert {k: v for k, v in routed.headers.items() if k != "date"} == {
        k: v for k, v in direct.headers.items() if k != "date"
    }
    assert "strict-transport-security" in direct.headers  # the security headers are there
    assert hits(world, "click") == 2
