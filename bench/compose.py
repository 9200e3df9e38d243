"""Composing: the 40-article digest's MJML through mjml-python and through Node ``mjml``.

The MJML is rendered once from our template with Jinja2 (the composer's own
first step, on the same 40 articles as the composer's quality-bar test), then
the same MJML text goes through

* ours: :func:`digest.templating.mjml_to_html` (mjml-python, MRML in Rust),
  timed in this process with ``time.perf_counter``;
* the reference: the ``mjml`` npm package (v4) in one warm Node process
  (``bench/mjml_node.js``), timed inside Node, after warm-up renders.

Node's package is installed into ``bench/node/`` on first use; without node or
npm (or with no registry) the comparison is reported as skipped.
"""

from __future__ import annotations

import json
import shutil
import statistics
import subprocess
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
NODE_DIR = BENCH / "node"
NODE_SCRIPT = BENCH / "mjml_node.js"
MJML_PACKAGE = "mjml@4"


def forty_article_mjml() -> tuple[str, float]:
    """The 40-article digest's MJML, and the full composer render time (ms) it came from."""
    from digest.compose import Composer
    from digest.config import Settings
    from tests.data.compose import factory as f

    nl = f.newsletter()
    collection = f.collection(f.articles(40), nl)
    composer = Composer(Settings(base_url="https://civic.example"), nl)
    composer.render(collection)  # warm: templates compiled
    start = time.perf_counter()
    variant = composer.render(collection)
    return variant.mjml, (time.perf_counter() - start) * 1000


def time_ours(source: str, runs: int, warmup: int = 3) -> tuple[list[float], int]:
    from digest.templating import mjml_to_html

    for _ in range(warmup):
        html = mjml_to_html(source, template="bench")
    ms = []
    for _ in range(runs):
        start = time.perf_counter()
        html = mjml_to_html(source, template="bench")
        ms.append((time.perf_counter() - start) * 1000)
    return ms, len(html.encode("utf-8"))


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


def time_node(source: str, runs: int, warmup: int = 5) -> dict[str, Any]:
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


def measure(runs: int = 50, node: bool = True) -> dict[str, Any]:
    source, full_ms = forty_article_mjml()
    ours, html_bytes = time_ours(source, runs)
    result: dict[str, Any] = {
        "articles": 40,
        "mjml_bytes": len(source.encode("utf-8")),
        "runs": runs,
        "ours_ms": round(statistics.median(ours), 2),
        "ours_mean_ms": round(statistics.fmean(ours), 2),
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
                node_ms=round(node_ms, 2),
                node_mean_ms=round(statistics.fmean(answer["ms"]), 2),
                node_html_bytes=answer["bytes"],
                node_mjml_version=answer["version"],
                ratio=round(node_ms / result["ours_ms"], 1),
            )
    result["node_skipped"] = reason
    return result
