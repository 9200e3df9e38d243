"""`digest scheduler`, `digest schedule list` and `digest schedule run` from the command line."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import select
from time_machine import TimeMachineFixture

from digest.cli import cli
from digest.models import SchedulerRun
from digest.scheduling import runs
from tests.support.world import AS_OF, World, make_world
from tests.test_schedule import SUNDAY


def _world(db_url: str, tmp_path: Path, monkeypatch: Any, readers: int = 3) -> World:
    world = make_world(db_url, tmp_path, readers=readers)
    for key, value in world.env.items():
        monkeypatch.setenv(key, value)
    return world


def _run(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def test_schedule_list_shows_rule_zone_next_runs_and_last_outcome(
    sqlite_url: str, tmp_path: Path, monkeypatch: Any, time_machine: TimeMachineFixture
) -> None:
    world = _world(sqlite_url, tmp_path, monkeypatch)
    time_machine.move_to(SUNDAY)
    first = _run("schedule", "list")
    assert first.exit_code == 0, first.output
    lines = [" ".join(line.split()) for line in first.output.splitlines()]
    assert lines[0] == "weekly mon 08:00 Europe/London"
    assert lines[1] == "next Mon 2026-11-23 08:00 GMT Mon 2026-11-23 08:00 UTC"
    assert lines[3] == "Mon 2026-12-07 08:00 GMT Mon 2026-12-07 08:00 UTC"
    assert lines[4] == "last no run yet"

    runs.record_missed(world.app, "weekly", AS_OF - timedelta(days=7), "missed by 3h")
    data = json.loads(_run("schedule", "list", "--json").output)
    assert data[0]["last_run"]["outcome"] == "missed"
    assert [t["utc"] for t in data[0]["next"]] == [
        "2026-11-23T08:00:00+00:00",
        "2026-11-30T08:00:00+00:00",
        "2026-12-07T08:00:00+00:00",
    ]
    shown = _run("schedule", "list").output
    assert "last missed due Mon 2026-11-16 08:00 UTC" in " ".join(shown.split())


def test_schedule_run_sends_now_and_records_it(
    db_url: str, tmp_path: Path, monkeypatch: Any
) -> None:
    world = _world(db_url, tmp_path, monkeypatch)
    first = _run("schedule", "run", "weekly", "--as-of", "2026-11-23T08:00")
    assert first.exit_code == 0, first.output
    assert "sent: edition 1 (2026-W47): 3 sent now" in " ".join(first.output.split())
    assert len(list(world.outbox.rglob("*.eml"))) == 3

    again = _run("schedule", "run", "weekly", "--as-of", "2026-11-23T08:00", "--json")
    data = json.loads(again.stdout)  # the period line goes to stderr
    assert data["outcome"] == "skipped" and data["detail"].endswith("was already delivered")
    assert len(list(world.outbox.rglob("*.eml"))) == 3
    with world.app.sessions() as s:
        assert s.scalars(select(SchedulerRun.outcome)).all() == ["skipped"]


def test_schedule_run_unknown_newsletter_is_one_line(
    sqlite_url: str, tmp_path: Path, monkeypatch: Any
) -> None:
    _world(sqlite_url, tmp_path, monkeypatch)
    result = CliRunner().invoke(cli, ["schedule", "run", "nosuch"])
    assert result.exit_code == 2
    assert result.output.startswith("error: ") and "no newsletter called 'nosuch'" in result.output


def test_scheduler_once_runs_what_is_due(
    db_url: str, tmp_path: Path, monkeypatch: Any, time_machine: TimeMachineFixture
) -> None:
    world = _world(db_url, tmp_path, monkeypatch)
    time_machine.move_to(SUNDAY)
    assert _run("scheduler", "--once").exit_code == 0  # the job is written, nothing due
    assert not world.outbox.exists()
    time_machine.move_to(AS_OF + timedelta(seconds=30))
    result = _run("scheduler", "--once")
    assert result.exit_code == 0, result.output
    assert "scheduler: started with 1 newsletter(s), backend outbox" in result.output
    assert result.output.rstrip().endswith("scheduler: stopped")
    assert len(list(world.outbox.rglob("*.eml"))) == 3
    with world.app.sessions() as s:
        assert s.scalars(select(SchedulerRun.outcome)).all() == ["sent"]


def _read_until(stream: Any, marker: str, seen: list[str], timeout: float = 60) -> bool:
    done = threading.Event()

    def reader() -> None:
        for line in iter(stream.readline, ""):
            seen.append(line)
            if marker in line:
                done.set()
                return

    threading.Thread(target=reader, daemon=True).start()
    return done.wait(timeout)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_the_service_stops_cleanly_on_a_signal(
    sqlite_url: str, tmp_path: Path, signum: int
) -> None:
    world = make_world(sqlite_url, tmp_path, readers=1)
    env = {**os.environ, **world.env, "DIGEST_LOG_LEVEL": "INFO"}
    seen: list[str] = []
    with subprocess.Popen(
        [sys.executable, "-m", "digest.cli", "scheduler"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    ) as proc:
        assert proc.stderr is not None
        try:
            assert _read_until(proc.stderr, "scheduler: started", seen), "".join(seen)
            proc.send_signal(signum)
            rest = proc.stderr.read()
            assert proc.wait(timeout=60) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
    output = "".join(seen) + rest
    assert "weekly: schedule 'mon 08:00' (Europe/London); next run Mon " in output
    assert "scheduler: stopping after the message in hand" in output
    assert output.rstrip().endswith("scheduler: stopped")
    assert "Traceback" not in output
