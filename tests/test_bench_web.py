"""The bench's web bursts at a tiny size, so they cannot rot: correctness only, no timings.

Every click the app answered with a redirect is in the database (none lost, the last
ones written when the server stops), every one-click unsubscribe it answered took
effect, and nothing but 200 and 302 came back (SQLite, and PostgreSQL when set)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from bench.__main__ import main


def test_web_bursts_lose_no_click_and_miss_no_unsubscribe(tmp_path: Path) -> None:
    out = tmp_path / "results.json"
    postgres = os.environ.get("DIGEST_TEST_POSTGRES_URL", "")
    args = ["--only", "web", "--web-seconds", "1.5", "--web-readers", "12"]
    args += ["--web-concurrency", "4", "--postgres", postgres]
    args += ["--work", str(tmp_path), "--out", str(out)]
    assert main(args) == 0
    results = json.loads(out.read_text())

    runs = results["web"]["runs"]
    assert [r["database"] for r in runs] == ["sqlite"] + (["postgresql"] if postgres else [])
    for run in runs:
        assert run["readers"] == 12 and run["workers"] == 2
        for name in ("click", "unsubscribe", "ceiling"):
            assert run[name]["requests"] > 0 and not run[name]["errors"]
        assert set(run["click"]["statuses"]) == {"302"}
        assert set(run["unsubscribe"]["statuses"]) == {"200"}
        assert run["clicks_stored"] == run["click"]["statuses"]["302"]
        assert run["lost_clicks"] == 0 and run["unsubscribes_missing"] == 0
        # each request unsubscribes a reader of its own: the 12 sent to, then others
        unsubscribed = run["unsubscribe"]["readers_unsubscribed"]
        assert 0 < unsubscribed == run["unsubscribe"]["requests"] <= run["unsubscribe_urls"]
    # per database: the click target, the unsubscribe target, and none lost (met)
    lost = [t for t in results["targets"] if t["target"].startswith("no click lost")]
    assert len(results["targets"]) == 3 * len(runs) and len(lost) == len(runs)
    assert all(t["met"] for t in lost)
