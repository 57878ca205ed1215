"""`python -m bench` (what `make bench` runs). Settings come from BENCH_* variables; the
flags override them. See bench/README.md."""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import time

from bench import machine, report
from bench.config import Config, ConfigError
from bench.runner import ROOT, Run
from bench.verdicts import promises


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="~1-minute run (BENCH_QUICK=1)")
    parser.add_argument("--workers", type=int, help="BFF workers (BENCH_WORKERS; CPU count)")
    parser.add_argument("--tracing", action="store_true", help="100%% sampling (BENCH_TRACING=1)")
    parser.add_argument("--scenarios", help="comma-separated names (BENCH_SCENARIOS; all)")
    parser.add_argument("--out", help="report directory (BENCH_OUT; bench/results)")
    parser.add_argument("--before", help="another checkout with its .venv (BENCH_BEFORE)")
    parser.add_argument("--profile", action="store_true", help="py-spy profiles (BENCH_PROFILE=1)")
    args = parser.parse_args(argv)
    env = dict(os.environ)
    for flag, name, value in (
        (args.quick, "BENCH_QUICK", "1"),
        (args.tracing, "BENCH_TRACING", "1"),
        (args.workers, "BENCH_WORKERS", str(args.workers)),
        (args.scenarios, "BENCH_SCENARIOS", args.scenarios),
        (args.out, "BENCH_OUT", args.out),
        (args.before, "BENCH_BEFORE", args.before),
        (args.profile, "BENCH_PROFILE", "1"),
    ):
        if flag:
            env[name] = value
    try:
        config = Config.from_env(env)
    except ConfigError as exc:
        parser.exit(2, f"python -m bench: {exc}\n")
    started = dt.datetime.now(dt.UTC)
    clock = time.monotonic()
    facts = machine.facts(ROOT)
    results = Run(config).execute()
    knobs = " ".join(f"{k}={env[k]}" for k in sorted(env) if k.startswith("BENCH_"))
    took = time.monotonic() - clock
    path = report.write(config, results, facts, started, f"{knobs} make bench".strip(), took)
    print(f"bench: report written to {path} ({took / 60:.1f} minutes)")
    for what, figure, ok in promises(results, config.tracing):
        verdict = {True: "met   ", False: "MISSED", None: "-     "}[ok]
        print(f"  promise {verdict} {what}: {figure}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
