"""Composing: the 40-article digest's MJML through our renderer and through Node ``mjml``.

Information, not a target: how our MJML step compares with the reference.  The
MJML is rendered once from our template with Jinja2 (the composer's own first
step, on the same 40 articles as the composer's quality-bar test), then the
same MJML text goes through

* ours: :func:`digest.templating.mjml_to_html`, exactly what the composer runs:
  MRML (mjml-python, in Rust) on the whole document; timed in this process
  with ``time.perf_counter``;
* the reference: the ``mjml`` npm package (v4) in one warm Node process
  (``bench/mjml_node.js``), timed inside Node after 100 untimed warm-up renders (V8
  compiles its hot paths as it goes: with only a few, Node looks ~15% slower).

The full composer render (subject, preheader, Jinja2, MJML, plain text) of the
same digest is reported too (median of a few renders).

Node's package is installed into ``bench/node/`` on first use; without node or
npm (or with no registry) the comparison is reported as skipped.
"""

from __future__ import annotations

import json
import shutil
import statistics
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
NODE_DIR = BENCH / "node"
NODE_SCRIPT = BENCH / "mjml_node.js"
MJML_PACKAGE = "mjml@4"


def forty_article_mjml(renders: int = 5) -> tuple[str, float]:
    """The 40-article digest's MJML, and the full composer render time (ms, median of
    ``renders``) it came from."""
    from digest.compose import Composer
    from digest.config import Settings
    from tests.data.compose import factory as f

    nl = f.newsletter()
    collection = f.collection(f.articles(40), nl)
    composer = Composer(Settings(base_url="https://civic.example"), nl)
    composer.render(collection)  # warm: templates compiled
    ms = []
    for _ in range(max(renders, 1)):
        start = time.perf_counter()
        variant = composer.render(collection)
        ms.append((time.perf_counter() - start) * 1000)
    return variant.mjml, statistics.median(ms)


def _time(
    render: Callable[[str], str], source: str, runs: int, warmup: int
) -> tuple[list[float], int]:
    for _ in range(warmup):
        html = render(source)
    ms = []
    for _ in range(runs):
        start = time.perf_counter()
        html = render(source)
        ms.append((time.perf_counter() - start) * 1000)
    return ms, len(html.encode("utf-8"))


def time_ours(source: str, runs: int, warmup: int = 3) -> tuple[list[float], int]:
    """:func:`digest.templating.mjml_to_html`, as the composer calls it."""
    from digest.templating import mjml_to_html

    return _time(lambda s: mjml_to_html(s, template="bench"), source, runs, warmup)


def ensure_node_mjml() -> str | None:
    """Install Node ``mjml`` into bench/node/ if need be; the reason when it cannot run."""
    if shutil.which("node") is None:
        return "node is not installed"
    if (NODE_DIR / "node_modules" / "mjml" / "package.json").is_file():
        return None
    if shutil.which("npm") is None:
        return "npm is not installed"
    try:
        proc = subprocess.run(
            [
                "npm",
                "install",
                "--prefix",
                str(NODE_DIR),
                MJML_PACKAGE,
                "--no-audit",
                "--no-fund",
                "--fetch-retries=1",
                "--fetch-timeout=30000",
            ],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return f"npm install {MJML_PACKAGE} timed out"
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["?"])[-1]
        return f"npm install {MJML_PACKAGE} failed: {last}"
    return None


def time_node(source: str, runs: int, warmup: int = 100) -> dict[str, Any]:
    proc = subprocess.Popen(
        ["node", str(NODE_SCRIPT)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    request = json.dumps({"mjml": source, "runs": runs, "warmup": warmup})
    out, err = proc.communicate(request + "\n", timeout=600)
    if proc.returncode != 0 or not out.strip():
        raise RuntimeError(f"node mjml failed: {err.strip()[-500:]}")
    return dict(json.loads(out.strip().splitlines()[-1]))


def measure(runs: int = 200, node: bool = True) -> dict[str, Any]:
    source, full_ms = forty_article_mjml()
    ours, html_bytes = time_ours(source, runs)
    ours_ms = statistics.median(ours)
    result: dict[str, Any] = {
        "articles": 40,
        "mjml_bytes": len(source.encode("utf-8")),
        "runs": runs,
        "ours_ms": round(ours_ms, 3),
        "ours_mean_ms": round(statistics.fmean(ours), 3),
        "ours_html_bytes": html_bytes,
        "full_render_ms": round(full_ms, 1),
        "node_ms": None,
        "ratio": None,
        "node_skipped": None,
    }
    reason = ensure_node_mjml() if node else "not asked for (--no-node)"
    if reason is None:
        try:
            answer = time_node(source, runs)
        except (RuntimeError, OSError, subprocess.TimeoutExpired) as exc:
            reason = str(exc)
        else:
            node_ms = statistics.median(answer["ms"])
            result.update(
                node_ms=round(node_ms, 3),
                node_mean_ms=round(statistics.fmean(answer["ms"]), 3),
                node_html_bytes=answer["bytes"],
                node_mjml_version=answer["version"],
                ratio=round(node_ms / ours_ms, 1),
            )
    result["node_skipped"] = reason
    return result
