"""Exactly once across kill -9: a real `digest send` process is killed mid-send, twice,
then resumed.  Every reader gets one copy, except those whose message was in flight at
a kill: they are reported uncertain, settled by the provider's events where it reports
them, and resent only on request."""

from __future__ import annotations

import base64
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import select

from digest.models import Delivery, DeliveryStatus
from tests.support.sendgrid_server import Fault, SendGridServer
from tests.support.smtp_server import SMTPServer
from tests.support.web import serving
from tests.support.world import World, bulk_readers, make_world

ARGS = ("send", "weekly", "--as-of", "2026-11-23")


def _digest(world: World, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "digest.cli", *ARGS, *args],
        env={**os.environ, **world.env, **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def _kill_when(proc: subprocess.Popen[bytes], ready: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 120
    while not ready():
        if proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(f"send ended before the kill: {proc.returncode} {out!r} {err!r}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail("send too slow to reach the kill point")
        time.sleep(0.005)
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate()


def _finish(world: World, *args: str, env: dict[str, str] | None = None) -> str:
    proc = _digest(world, *args, env=env)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err.decode()
    return " ".join(out.decode().split())  # as one line, whatever the console wrapped


def _ledger(world: World) -> dict[str, DeliveryStatus]:
    with world.app.transaction() as s:
        return dict(s.execute(select(Delivery.email, Delivery.status)).all())


def _check(status: dict[str, DeliveryStatus], copies: Counter[str], readers: int) -> set[str]:
    """Everyone settled; one copy each, except the uncertain (zero or one)."""
    assert len(status) == readers
    assert set(status.values()) <= {DeliveryStatus.SENT, DeliveryStatus.UNCERTAIN}
    uncertain = {e for e, st in status.items() if st == DeliveryStatus.UNCERTAIN}
    for address, st in status.items():
        if st == DeliveryStatus.SENT:
            assert copies[address] == 1, address
        else:
            assert copies[address] <= 1, address
    return uncertain


@pytest.mark.slow
def test_smtp_kill_9_twice_then_resume(db_url: str, tmp_path: Path) -> None:
    readers = 400
    with SMTPServer() as server:
        world = make_world(db_url, tmp_path, env={"DIGEST_SMTP_URL": server.url})
        bulk_readers(world.app, readers)
        received = lambda n: lambda: len(server.sink.received) >= n  # noqa: E731
        _kill_when(_digest(world, "--backend", "smtp"), received(100))
        _kill_when(_digest(world, "--backend", "smtp"), received(250))
        out = _finish(world, "--backend", "smtp")

        status = _ledger(world)
        uncertain = _check(status, server.sink.per_recipient(), readers)
        assert len(uncertain) <= 2  # one message in flight at each kill, at most
        if uncertain:
            assert "may or may not have gone out" in out

        assert "nothing new sent" in _finish(world, "--backend", "smtp")
        _finish(world, "--backend", "smtp", "--resend-uncertain")
        copies = server.sink.per_recipient()
        assert set(copies) == set(status)  # nobody lost
        assert {e for e, n in copies.items() if n > 1} <= uncertain


@pytest.mark.slow
def test_sendgrid_5000_killed_mid_post_twice_settled_by_events(db_url: str, tmp_path: Path) -> None:
    """Issue 15 §3: the sender is killed twice while a post is held; SendGrid took the
    first held post and not the second.  Its Event Webhook then reports every message it
    took; `--resend-uncertain` waits out the grace period, then resends only the post it
    never reported: every reader gets exactly one copy, and nobody is missed."""
    readers = 5000
    signer = ec.generate_private_key(ec.SECP256R1())
    public = signer.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    with SendGridServer() as server:
        world = make_world(
            db_url,
            tmp_path,
            env={
                "SENDGRID_API_KEY": server.api_key,
                "DIGEST_SENDGRID_API_HOST": server.url,
                "DIGEST_SENDGRID_WEBHOOK_PUBLIC_KEY": base64.b64encode(public).decode(),
            },
        )
        bulk_readers(world.app, readers)
        args = ("--backend", "sendgrid", "--concurrency", "1")
        requests = lambda n: lambda: len(server.requests) >= n  # noqa: E731

        # 1st run: two batches go through; SendGrid takes the 3rd, then hangs: the
        # process is killed while waiting for the answer.
        server.script(Fault.slow(0), Fault.slow(0), Fault.slow(60))
        _kill_when(_digest(world, *args), requests(3))
        # 2nd run: the 4th batch is refused with a 503 and retried; the retry hangs
        # without SendGrid taking it (it failed inside): killed again.
        server.script(Fault.server_error(503), Fault.slow(60, accept=False))
        _kill_when(_digest(world, *args), requests(5))
        out = _finish(world, *args)
        assert "2000 message(s) were handed over without an answer" in out
        assert sum(Counter(server.recipients()).values()) == readers - 1000

        # SendGrid reports what it took (the first held post among it) to the webhook.
        with serving(world) as base:
            posted = server.post_events(
                base + "/webhooks/sendgrid", signer, server.events(("processed",))
            )
        assert posted and set(posted) == {200}
        status = _ledger(world)
        uncertain = {e for e, st in status.items() if st == DeliveryStatus.UNCERTAIN}
        assert len(uncertain) == 1000  # the post SendGrid never took, and never reported
        assert set(server.recipients()).isdisjoint(uncertain)

        # Within the grace period nothing is resent: the provider may still speak.
        out = _finish(world, *args, "--resend-uncertain")
        assert "1000 uncertain message(s) were posted less than" in out
        assert len(server.recipients()) == readers - 1000
        # After it, only the unreported post goes out again.
        out = _finish(world, *args, "--resend-uncertain", env={"DIGEST_UNCERTAIN_GRACE": "0"})
        assert "0 as failed from the provider's events (not resent); 1000 with no word" in out

        copies = Counter(server.recipients())
        assert {a for a, n in copies.items() if n > 1} == set()  # 0 duplicates
        assert set(copies) == set(status) and len(status) == readers  # 0 missing
        assert set(_ledger(world).values()) == {DeliveryStatus.SENT}
