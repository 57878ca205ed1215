"""The targets under test, started as a user would start them, with the settings they get.

    ours      python -m bff --workers N --port 0 --admin-port 0           (this checkout)
    before    <checkout>/.venv/bin/python -m bff ...  in <checkout>        (BENCH_BEFORE)
    baseline  python -m bench.baseline --port 0                            (one process)

Our BFF's builds run with their DEFAULT settings (access log at INFO, no rate limit) unless a
scenario says otherwise: that is what an operator gets. Their stdout, the access log with it,
goes to a file in the run's log directory, as a deployment writes to a log collector.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from bench import procs
from bench.config import Config, Scenario, Target

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True, slots=True)
class Server:
    target: Target
    proc: procs.Proc
    base: str  # the public listener
    admin: str | None  # our BFF's admin listener (/readyz, /metrics); None for the baseline
    workers: int


def clean_env() -> dict[str, str]:
    """The harness's environment without settings that would change what is measured."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("BFF_", "OTEL_"))}


def target_env(
    config: Config, scenario: Scenario, target: Target, urls: Mapping[str, str], sink: str | None
) -> dict[str, str]:
    env = clean_env()
    env.update({f"BFF_{s.upper()}_URL": url for s, url in urls.items()})
    if target == "baseline":
        return env
    # The stop comes after the measured window; the default 2 s of draining would only make
    # every run 2 s longer.
    env["BFF_DRAIN_DELAY_S"] = "0"
    env["OTEL_SERVICE_NAME"] = "bff-bench"
    if config.tracing and sink is not None:
        env.update(
            {
                "OTEL_TRACES_SAMPLER": "always_on",
                "OTEL_TRACES_EXPORTER": "otlp",
                "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
                "OTEL_EXPORTER_OTLP_ENDPOINT": sink,
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": f"{sink}/v1/traces",
                "OTEL_METRICS_EXPORTER": "none",
                "OTEL_LOGS_EXPORTER": "none",
            }
        )
    else:
        env.update({"OTEL_SDK_DISABLED": "true", "OTEL_TRACES_EXPORTER": "none"})
    env.update(scenario.env)
    env.update(config.bff_env)
    return env


def start(
    config: Config,
    scenario: Scenario,
    target: Target,
    urls: Mapping[str, str],
    log_dir: Path,
    sink: str | None = None,
) -> Server:
    """The target started and ready: /readyz answered 200 twice per worker in a row."""
    workers = (scenario.workers or config.workers) if target != "baseline" else 1
    env = target_env(config, scenario, target, urls, sink)
    name = f"{target}-{scenario.name}"
    if target == "baseline":
        argv = ["-m", "bench.baseline", "--host", "127.0.0.1", "--port", "0"]
        proc = procs.start(name, argv, env, log_dir, ROOT)
    else:
        argv = ["-m", "bff", "--host", "127.0.0.1", "--port", "0"]
        argv += ["--workers", str(workers), "--admin-port", "0"]
        if target == "before":
            assert config.before is not None
            python = str(config.before / ".venv" / "bin" / "python")
            proc = procs.start(name, argv, env, log_dir, config.before, python)
        else:
            proc = procs.start(name, argv, env, log_dir, ROOT)
    try:
        admin: str | None = None
        if target == "baseline":
            base = proc.wait_for_urls(1)[0]
        else:  # announces its admin listener (/readyz) first, then the API
            admin, base = proc.wait_for_urls(2)
        procs.wait_ready(proc, f"{admin or base}/readyz", consecutive=2 * workers)
    except BaseException:
        proc.stop()
        raise
    return Server(target, proc, base, admin, workers)
