"""The report's picture: goodput and p99 against concurrency (closed loop, seed latencies),
every target on the same axes, and CPU per request per scenario beside them. matplotlib with
the Agg backend (no display), PNG."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from bench.config import CONCURRENCY_LADDER, EVERY_TARGET
from bench.results import RunResult

_COLORS = {"ours": "#1f77b4", "baseline": "#ff7f0e", "before": "#7f7f7f"}


def plot(results: Sequence[RunResult], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    by = {(r.scenario, r.target): r for r in results}
    fig, (ax_good, ax_p99, ax_cpu) = plt.subplots(1, 3, figsize=(17, 5.2))
    for target in EVERY_TARGET:
        points = [by[n, target] for n in CONCURRENCY_LADDER if (n, target) in by]
        if not points:
            continue
        x = [r.connections for r in points]
        color = _COLORS[target]
        ax_good.plot(x, [r.goodput for r in points], "o-", color=color, label=target)
        ax_p99.plot(
            x, [r.latency_ms["p99"] for r in points], "o-", color=color, label=f"{target}: all"
        )
        ok = [(r.connections, r.ok_ms["p99"]) for r in points if r.ok_ms.get("n")]
        if ok:
            ax_p99.plot(*zip(*ok, strict=True), "s--", color=color, label=f"{target}: 200s")
    for ax, label in ((ax_good, "goodput (200s per second)"), (ax_p99, "p99 latency, ms")):
        ax.set_xscale("log", base=2)
        ax.set_xticks([64, 256, 1024], ["64", "256", "1,024"])
        ax.set_xlabel("connections (closed loop, no back-off, seed latencies)")
        ax.set_title(label)
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    ax_p99.axhline(500, color="red", linewidth=0.8, linestyle=":", label="deadline")

    closed = [
        n
        for n in dict.fromkeys(r.scenario for r in results if r.kind == "closed")
        if any((n, t) in by and by[n, t].cpu_ms_per_req for t in EVERY_TARGET)
    ]
    width = 0.27
    for t, target in enumerate(EVERY_TARGET):
        values = [by[n, target].cpu_ms_per_req if (n, target) in by else 0 for n in closed]
        if not any(values):
            continue
        bars = ax_cpu.bar(
            [i + (t - 1) * width for i in range(len(closed))],
            values,
            width,
            color=_COLORS[target],
            label=target,
            edgecolor="black",
            linewidth=0.3,
        )
        ax_cpu.bar_label(bars, fmt="%.2f", fontsize=6)
    ax_cpu.set_xticks(list(range(len(closed))), closed, rotation=35, fontsize=7, ha="right")
    ax_cpu.set_title("CPU ms per request (every process of the target)")
    ax_cpu.grid(axis="y", alpha=0.3)
    if ax_cpu.get_legend_handles_labels()[0]:
        ax_cpu.legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
