"""`digest serve` and `digest preview`: real processes serving real HTTP on loopback."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
from click.testing import CliRunner

from digest.cli import cli
from tests.support import web as support
from tests.support.web import web_world

sqlite_template = support.sqlite_template
fast_sqlite_url = support.fast_sqlite_url


@contextmanager
def running(args: list[str], env: dict[str, str], cwd: Path) -> Iterator[str]:
    """Run ``digest ARGS`` and yield the first URL it prints; stop it afterwards."""
    full_env = {**os.environ, **env, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        [sys.executable, "-m", "digest.cli", *args],
        cwd=cwd,
        env=full_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert process.stdout is not None
        seen = []
        for line in process.stdout:
            seen.append(line)
            found = re.search(r"http://\S+", line)
            if found:
                yield found.group(0)
                return
        raise AssertionError("the command printed no URL:\n" + "".join(seen))
    finally:
        process.terminate()
        process.wait(timeout=60)
        if process.stdout is not None:
            process.stdout.close()


def test_digest_preview_prints_a_url_that_serves_the_preview(
    fast_sqlite_url: str, tmp_path: Path
) -> None:
    world = web_world(fast_sqlite_url, tmp_path)
    args = ["preview", "weekly", "--as-of", "2026-11-23", "--port", "0"]
    with running(args, world.env, tmp_path) as url:
        assert url.startswith("http://127.0.0.1:") and "/preview?newsletter=weekly" in url
        page = httpx.get(url, timeout=10)
        base = url.split("/preview")[0]
        serve_health = httpx.get(f"{base}/api/health", timeout=10)
    assert page.status_code == 200  # open: no sign-in on the editor's machine
    assert "The Weekly: Policy story 1" in page.text and "as_of=2026-11-23" in url
    assert serve_health.json() == {"status": "ok"}


def test_digest_serve_serves_the_app(fast_sqlite_url: str, tmp_path: Path) -> None:
    world = web_world(fast_sqlite_url, tmp_path)
    with running(["serve", "--port", "0"], world.env, tmp_path) as url:
        home = httpx.get(url, timeout=10)
        preview = httpx.get(url + "preview", timeout=10)
    assert home.status_code == 200 and "The Weekly" in home.text
    assert preview.status_code == 401  # in `digest serve` the preview needs signing in


def test_a_busy_port_is_one_clear_line(fast_sqlite_url: str, tmp_path: Path) -> None:
    world = web_world(fast_sqlite_url, tmp_path)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        result = CliRunner().invoke(cli, ["serve", "--port", str(port)], env=world.env)
    assert result.exit_code == 2
    assert f"error: 127.0.0.1:{port} is already in use" in result.output
    assert "Traceback" not in result.output


def test_serve_refuses_to_start_with_an_https_address_and_the_development_secret(
    fast_sqlite_url: str, tmp_path: Path
) -> None:
    world = web_world(fast_sqlite_url, tmp_path)
    with socket.socket() as busy:  # were it to start, it would stop at the busy port
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        result = CliRunner().invoke(
            cli, ["serve", "--port", str(port)], env={**world.env, "DIGEST_SECRET_KEY": None}
        )
    assert result.exit_code == 2, result.output
    assert result.output.startswith(
        "error: DIGEST_SECRET_KEY is the development default but DIGEST_BASE_URL is "
        "https://news.example.org"
    )
    assert result.output.count("\n") == 1 and "Traceback" not in result.output
