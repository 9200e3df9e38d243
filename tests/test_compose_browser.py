"""The composed sample edition in headless Chromium: mobile, desktop and dark mode.

Nothing leaves the machine: every request the page makes is answered by the
test (images get a small generated PNG) or aborted.  Screenshots are saved in
each test's tmp folder.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from digest.cli import cli
from digest.config import SAMPLE_CONFIG
from tests.support.browser import chromium

pytestmark = pytest.mark.browser


try:
    from playwright.sync_api import Browser, Page, Route, sync_playwright
except ImportError:  # pragma: no cover - depends on the machine
    sync_playwright = None  # type: ignore[assignment]


def _png(width: int, height: int, rgb: tuple[int, int, int]) -> bytes:
    row = b"\x00" + bytes(rgb) * width
    raw = row * height

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


IMAGE = _png(320, 200, (120, 144, 168))


@pytest.fixture(scope="module")
def sample_html(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The sample's 2026-W47 edition as `digest compose` writes it."""
    root = tmp_path_factory.mktemp("sample")
    env = {
        "DIGEST_DATABASE_URL": f"sqlite:///{root / 'sample.db'}",
        "DIGEST_CONFIG": str(SAMPLE_CONFIG),
        "DIGEST_TEMPLATES": "",
        "DIGEST_BASE_URL": "http://127.0.0.1:8000",
    }
    runner = CliRunner()
    out = root / "out"
    for args in (["ingest"], ["compose", "weekly", "--as-of", "2026-11-23", "--out", str(out)]):
        result = runner.invoke(cli, args, env=env, catch_exceptions=False)
        assert result.exit_code == 0, result.output
    return (out / "all.html").read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as b:
        yield b


def _offline(route: Route) -> None:
    """Images get a local PNG, anything else is refused: nothing goes out."""
    if route.request.resource_type == "image":
        route.fulfill(status=200, content_type="image/png", body=IMAGE)
    else:
        route.abort()


def open_page(browser: Browser, html: str, width: int, scheme: str = "light") -> Page:
    page = browser.new_page(viewport={"width": width, "height": 900}, color_scheme=scheme)
    page.route("**/*", _offline)
    page.set_content(html, wait_until="load")
    return page


def _luminance(rgb: tuple[float, float, float]) -> float:
    def channel(c: float) -> float:
        c = c / 255
        return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (channel(c) for c in rgb)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast(a: tuple[float, float, float], b: tuple[float, float, float]) -> float:
    hi, lo = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


# For each text element: its colour and the first opaque background behind it.
COLOURS_JS = """
(selector) => {
  const rgb = (s) => (s.match(/[\\d.]+/g) || []).map(Number);
  const out = [];
  for (const el of document.querySelectorAll(selector)) {
    if (!el.textContent.trim() || el.offsetParent === null) continue;
    let bg = null, node = el;
    while (node && node.nodeType === 1) {
      const c = rgb(getComputedStyle(node).backgroundColor);
      if (c.length >= 3 && (c.length < 4 || c[3] > 0.5)) { bg = c.slice(0, 3); break; }
      node = node.parentElement;
    }
    out.push({text: el.textContent.trim().slice(0, 40),
              fg: rgb(getComputedStyle(el).color).slice(0, 3), bg: bg || [255, 255, 255]});
  }
  return out;
}
"""


def _check_legible(page: Page, minimum: float) -> list[dict[str, Any]]:
    samples = page.evaluate(COLOURS_JS, "h3, h3 a, p, .dg-card td > div, .dg-foot td > div, a")
    assert len(samples) > 20
    for s in samples:
        ratio = contrast(tuple(s["fg"]), tuple(s["bg"]))
        assert ratio >= minimum, f"{s['text']!r}: contrast {ratio:.2f} ({s['fg']} on {s['bg']})"
    return samples


def test_no_horizontal_scrolling_on_a_phone(
    browser: Browser, sample_html: str, tmp_path: Path
) -> None:
    page = open_page(browser, sample_html, 375)
    assert page.evaluate("document.documentElement.scrollWidth") <= 375
    widest = page.evaluate(
        "Math.max(...[...document.querySelectorAll('img, table, div')]"
        ".map(e => e.getBoundingClientRect().right))"
    )
    assert widest <= 375.5
    _check_legible(page, 4.5)
    page.screenshot(path=str(tmp_path / "mobile.png"), full_page=True)
    page.close()


def test_centred_600px_column_on_a_desktop(
    browser: Browser, sample_html: str, tmp_path: Path
) -> None:
    page = open_page(browser, sample_html, 1024)
    box = page.evaluate(
        "(() => { const r = document.querySelector('.dg-card').getBoundingClientRect();"
        " return {left: r.left, right: r.right, width: r.width}; })()"
    )
    assert box["width"] == pytest.approx(600, abs=1)
    assert box["left"] == pytest.approx(1024 - box["right"], abs=2)
    assert page.evaluate("document.documentElement.scrollWidth") <= 1024
    for img in page.query_selector_all("img"):
        assert img.evaluate("e => e.naturalWidth") > 0  # answered locally
        assert img.get_attribute("alt") == ""  # decorative: the headline beside it says it
        assert img.get_attribute("width") and img.get_attribute("height")
    _check_legible(page, 4.5)
    page.screenshot(path=str(tmp_path / "desktop.png"), full_page=True)
    page.close()


def test_legible_in_dark_mode(browser: Browser, sample_html: str, tmp_path: Path) -> None:
    page = open_page(browser, sample_html, 1024, scheme="dark")
    assert page.evaluate("matchMedia('(prefers-color-scheme: dark)').matches")
    samples = _check_legible(page, 4.5)
    body = [s for s in samples if s["bg"] != [255, 255, 255]]
    assert body, "dark mode should darken the backgrounds"
    card = page.evaluate("getComputedStyle(document.querySelector('.dg-card')).backgroundColor")
    assert _luminance(tuple(float(x) for x in card[4:-1].split(",")[:3])) < 0.05
    page.screenshot(path=str(tmp_path / "dark.png"), full_page=True)
    page.close()


def test_links_read_without_images(browser: Browser, sample_html: str, tmp_path: Path) -> None:
    page = browser.new_page(viewport={"width": 600, "height": 900})
    page.route("**/*", lambda route: route.abort())  # images blocked, as many clients do
    page.set_content(sample_html, wait_until="load")
    titles = page.evaluate("[...document.querySelectorAll('h3 a')].map(a => a.textContent)")
    assert len(titles) >= 15 and all(t.strip() for t in titles)
    assert page.get_by_text("Unsubscribe").count() >= 1
    page.screenshot(path=str(tmp_path / "no-images.png"))
    page.close()
