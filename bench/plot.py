"""The report's picture: latency percentiles, CPU per request and throughput per scenario,
ours next to the baseline. matplotlib with the Agg backend (no display), PNG."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from bench.config import Target
from bench.runner import RunResult

_COLORS = {"ours": "#1f77b4", "baseline": "#ff7f0e"}
_TARGETS: tuple[Target, Target] = ("ours", "baseline")
_PERCENTILES = (("p50", 1.0), ("p90", 0.7), ("p99", 0.4))


def plot(results: Sequence[RunResult], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scenarios = list(dict.fromkeys(r.scenario for r in results))
    by = {(r.scenario, r.target): r for r in results}
    x = range(len(scenarios))
    fig, (ax_lat, ax_cpu, ax_rps) = plt.subplots(1, 3, figsize=(17, 5.2))

    width = 0.13
    for t, target in enumerate(_TARGETS):
        for p, (name, alpha) in enumerate(_PERCENTILES):
            offset = (t * len(_PERCENTILES) + p - 2.5) * width
            values = [by[s, target].latency_ms[name] if (s, target) in by else 0 for s in scenarios]
            ax_lat.bar(
                [i + offset for i in x],
                values,
                width,
                color=_COLORS[target],
                alpha=alpha,
                label=f"{target} {name}",
                edgecolor="black",
                linewidth=0.3,
            )
    ax_lat.set_yscale("log")
    ax_lat.set_ylabel("latency, ms (log scale)")
    ax_lat.set_title("Latency percentiles")
    ax_lat.legend(fontsize=7, ncol=2)

    for ax, field, label in (
        (ax_cpu, "cpu_ms_per_req", "CPU ms per request (all target processes)"),
        (ax_rps, "rps", "requests per second"),
    ):
        for t, target in enumerate(_TARGETS):
            values = [getattr(by[s, target], field) if (s, target) in by else 0 for s in scenarios]
            bars = ax.bar(
                [i + (t - 0.5) * 0.38 for i in x],
                values,
                0.38,
                color=_COLORS[target],
                label=target,
                edgecolor="black",
                linewidth=0.3,
            )
            ax.bar_label(bars, fmt="%.3g" if field == "cpu_ms_per_req" else "%.0f", fontsize=7)
        ax.set_title(label)
        ax.legend(fontsize=8)

    for ax in (ax_lat, ax_cpu, ax_rps):
        ax.set_xticks(list(x), scenarios, rotation=20, fontsize=8)
        ax.grid(axis="y", alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
