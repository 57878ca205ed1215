"""One tiny real run of the benchmark (bench/): every kind of scenario starts its processes,
drives its load and lands in a report that parses.

Timing on a shared machine is noise, so nothing here checks a figure against a promise: the
run only proves the harness still measures what the report says it measures.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = "seed-64,herd,flood,stream-ttfb"


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_smoke_run_of_every_kind_writes_a_report_that_parses(
    tmp_path: Path, binary: Callable[[str], str]
) -> None:
    """A closed-loop scenario, the herd, the flood and the stream, 1 s per wrk target and a
    few requests per probe. Needs wrk: without it the test skips (fails in CI)."""
    binary("wrk")
    env = {
        **os.environ,
        "BENCH_SMOKE_SECONDS": "1",
        "BENCH_SCENARIOS": SCENARIOS,
        "BENCH_OUT": str(tmp_path),
    }
    for knob in ("BENCH_QUICK", "BENCH_BEFORE", "BENCH_PROFILE", "BENCH_TRACING"):
        env.pop(knob, None)
    done = subprocess.run(
        [sys.executable, "-m", "bench"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    (report,) = tmp_path.glob("*-smoke.json")
    data = json.loads(report.read_text())
    assert data["mode"] == "smoke"
    runs = {(r["scenario"], r["target"]): r for r in data["results"]}
    assert set(runs) == {
        ("seed-64", "ours"),
        ("seed-64", "baseline"),
        ("herd", "ours"),
        ("herd", "baseline"),
        ("flood", "ours"),
        ("stream-ttfb", "ours"),
    }

    for target in ("ours", "baseline"):
        seed = runs["seed-64", target]
        assert seed["requests"] > 0
        assert seed["cpu_ms_per_req"] > 0
        assert seed["peak_rss_mib"]
        # Each answer was matched to its request by the X-Request-ID the target echoed.
        assert seed["ok_ms"]["n"] > 0
        assert seed["goodput"] > 0
    assert runs["seed-64", "ours"]["hedges"] is not None  # read from ours' /metrics
    assert runs["seed-64", "baseline"]["hedges"] is None

    # The herd: every request answered, and the product mock's calls counted per target. The
    # baseline does not coalesce: one product call per request.
    herd = data["probes"]["herd_requests"]
    for target in ("ours", "baseline"):
        assert sum(runs["herd", target]["statuses"].values()) == herd
    assert runs["herd", "baseline"]["product_calls"] == herd
    assert runs["herd", "ours"]["product_calls"] >= 1

    # The flood: wrk's flooder is rate limited; the polite client asked on its beat.
    flood = runs["flood", "ours"]
    assert flood["statuses"].get("429", 0) > 0
    assert flood["polite"]["n"] == 10  # 1 s, one request every 100 ms

    # The stream: both lines timed, the first before the last (reviews take 400 ms).
    stream = runs["stream-ttfb", "ours"]["stream"]
    assert stream["product_latency"] == 50
    assert 0 < stream["first_p50"] < stream["last_p50"]

    verdicts = {p["promise"] for p in data["promises"]}
    assert "herd: product calls <= workers" in verdicts
    assert "flood: polite client >= 95% answered 200" in verdicts
    assert "stream-ttfb: first line p50 <= product latency + 20 ms" in verdicts
    markdown = report.with_suffix(".md").read_text()
    for heading in ("## Promises", "## Closed loop (wrk)", "## Herd", "## Flood"):
        assert heading in markdown
    assert "## Incremental answers" in markdown
    assert "| seed-64 | ours |" in markdown
