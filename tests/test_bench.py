"""`make bench` at tiny sizes, so it cannot rot: every section runs and its figures add up."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from bench.__main__ import main
from bench.compose import NODE_DIR, forty_article_mjml, time_node


def test_bench_runs_every_section_and_writes_results(tmp_path: Path) -> None:
    out = tmp_path / "results.json"
    postgres = os.environ.get("DIGEST_TEST_POSTGRES_URL", "")
    args = ["--sizes", "150", "--smtp", "20", "--ingest", "30", "--compose-runs", "2"]
    args += ["--startup-runs", "1"]
    args += ["--rate-readers", "300", "--rate-limit", "200", "--rate-workers", "2"]
    args += ["--no-node", "--postgres", postgres, "--work", str(tmp_path), "--out", str(out)]
    args += ["--web-seconds", "0"]  # the web bursts have their own test (test_bench_web.py)
    assert main(args) == 0
    results = json.loads(out.read_text())

    compose = results["compose"]
    assert compose["ours_ms"] > 0 and compose["ours_html_bytes"] > 40_000
    assert compose["node_ms"] is None and "--no-node" in compose["node_skipped"]

    runs = results["delivery"]
    assert [r["database"] for r in runs] == ["sqlite"] + (["postgresql"] if postgres else [])
    for run in runs:
        # everyone sent once, and the server saw each of them once
        assert run["recipients"] == 150 and run["counts"] == {"sent": 150}
        assert run["server"]["distinct"] == 150 and run["server"]["duplicates"] == 0
        assert run["server"]["rejected"] == 0
        assert run["edition_status"] == "sent"
        assert 0 < run["renders"] <= 32  # one per variant, never one per reader
        assert run["total_s"] >= run["send_s"] > 0 and run["peak_rss_mb"] > 0

    smtp = results["smtp"]
    for run in smtp["digest_runs"]:
        assert run["counts"] == {"sent": 10} and run["server"]["distinct"] == 10
        assert run["server"]["duplicates"] == 0
        assert run["concurrency"] == smtp["connections"] == 4
    assert [w["received"] for w in smtp["wire_runs"]] == [10, 10]
    assert not any(w["errors"] for w in smtp["wire_runs"])
    assert smtp["ratio"] > 0 and isinstance(smtp["met"], bool)
    assert any(t["target"].startswith("SMTP") for t in results["targets"])

    ingest = results["ingest"]
    assert ingest["new"] == 30 and ingest["reingest_unchanged"] == 30 and not ingest["errors"]
    assert ingest["ratio"] > 0 and ingest["reingest_ratio"] > 0
    assert len(ingest["feedparser_seconds"]) == 3
    assert sum("ingest" in t["target"] for t in results["targets"]) == 2

    rate = results["rate"]
    assert rate["server"]["distinct"] == 300 and rate["server"]["duplicates"] == 0
    assert rate["limit_per_s"] == 200 and rate["busiest_10s_per_s"] > 0

    assert not any("compose" in t["target"] for t in results["targets"])  # information only

    start = results["startup"]
    assert start["click_s"] > 0 and start["version_s"] > 0 and start["help_s"] > 0
    [row] = [t for t in results["targets"] if "--version" in t["target"]]
    assert row["met"] in (True, False)  # a figure, never a timed assertion
    assert results["machine"]["cpus"]


@pytest.mark.skipif(
    not (NODE_DIR / "node_modules" / "mjml").is_dir(),
    reason="Node mjml is not installed in bench/node (`make bench` installs it)",
)
def test_node_mjml_renders_the_same_digest() -> None:
    source, _ = forty_article_mjml()
    answer = time_node(source, runs=2, warmup=1)
    assert len(answer["ms"]) == 2 and answer["errors"] == 0
    assert answer["bytes"] > 40_000
