"""Headless Chromium for the browser tests: Debian's binary, the flags a closed network needs."""

from __future__ import annotations

from pathlib import Path

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
MISSING = f"{CHROMIUM} not found: install Chromium (apt-get install chromium)"
