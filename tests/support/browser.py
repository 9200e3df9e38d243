"""Headless Chromium for the browser tests: Debian's binary, the flags a closed network needs."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

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


@contextmanager
def chromium(
    missing_playwright: str = "playwright is not installed (pip install -e .[dev])",
) -> Iterator[Any]:
    """Debian's Chromium, headless, for a module's browser tests (a ``scope="module"``
    fixture yields it); skips, saying why, when Playwright or the binary is missing."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip(missing_playwright)
    if not CHROMIUM.exists():
        pytest.skip(MISSING)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            yield browser
        finally:
            browser.close()
