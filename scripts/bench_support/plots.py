"""PNG plots of a results JSON, run with the tool venv's Python (matplotlib lives there only).

usage: .bench/venv/bin/python scripts/bench_support/plots.py RESULTS.json OUT_DIR
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench_support.plan import MiB
from bench_support.report import Results, ratios, spread


def _bars(ax, labels: list[str], series: list[list[float | None]], unit: str) -> None:
    spreads = [spread(values) for values in series]
    medians = [s.median if s else 0 for s in spreads]
    low = [s.median - s.low if s else 0 for s in spreads]
    high = [s.high - s.median if s else 0 for s in spreads]
    positions = range(len(labels))
    ax.bar(positions, medians, yerr=[low, high], capsize=4, color="#4c78a8")
    ax.set_xticks(list(positions), labels, rotation=20, ha="right", fontsize=8)
    ax.set_ylabel(unit)
    for x, s in zip(positions, spreads, strict=True):
        if s:
            ax.annotate(f"{s.median:.0f}" if s.median >= 10 else f"{s.median:.2f}",
                        (x, s.median), ha="center", va="bottom", fontsize=7)


def throughput(results: Results, out: Path) -> None:
    labels, series = [], []
    for server, cases in results["throughput"].items():
        for case, values in cases.items():
            labels.append(f"{server}\n{case}")
            series.append(values)
    fig, ax = plt.subplots(figsize=(10, 4.5))
    _bars(ax, labels, series, "MiB/s (median, min-max)")
    ax.set_title("Upload throughput, one stream")
    fig.tight_layout()
    fig.savefig(out / "throughput.png", dpi=110)
    plt.close(fig)


def ratio_plot(results: Results, out: Path) -> None:
    """Horizontal bars: the ratio names are long, and goals read best as vertical lines."""
    found = [r for r in ratios(results) if spread(r.values)]
    if not found:
        return
    spreads = [spread(r.values) for r in found]
    fig, ax = plt.subplots(figsize=(9, 0.45 * len(found) + 1.2))
    positions = list(range(len(found)))[::-1]
    medians = [s.median for s in spreads]
    errors = [[s.median - s.low for s in spreads], [s.high - s.median for s in spreads]]
    ax.barh(positions, medians, xerr=errors, capsize=3, color="#4c78a8")
    ax.set_yticks(positions, [r.name for r in found], fontsize=8)
    for y, r, s in zip(positions, found, spreads, strict=True):
        ax.annotate(f"{s.median:.2f}", (s.high, y), xytext=(4, 0), textcoords="offset points",
                    va="center", fontsize=7)
        if r.goal is not None:
            ax.vlines(r.goal, y - 0.4, y + 0.4, colors="#e45756", linestyles="dashed")
    ax.axvline(1.0, color="grey", linewidth=0.8)
    ax.set_xlabel("tusgallery / reference (median, min-max); dashed red: goal")
    ax.set_title("tusgallery ratios")
    fig.tight_layout()
    fig.savefig(out / "ratios.png", dpi=110)
    plt.close(fig)


def rss_plot(results: Results, out: Path) -> None:
    labels = list(results["rss"])
    series = [
        [None if r is None else max(0, r["peak"] - r["baseline"]) / MiB for r in runs]
        for runs in results["rss"].values()
    ]
    fig, ax = plt.subplots(figsize=(7, 4))
    _bars(ax, labels, series, "RSS growth, MiB")
    ax.axhline(32, color="#e45756", linestyle="dashed", label="tusgallery goal: 32 MiB")
    ax.legend(fontsize=8)
    ax.set_title("Server RSS growth during a 1 GiB upload")
    fig.tight_layout()
    fig.savefig(out / "rss.png", dpi=110)
    plt.close(fig)


def photos_plot(results: Results, out: Path) -> None:
    fig, ax = plt.subplots(figsize=(7, 4))
    _bars(ax, list(results["photos"]), list(results["photos"].values()), "wall time, s")
    ax.set_title(f"{results['plan']['photo_count']} parallel photo uploads")
    fig.tight_layout()
    fig.savefig(out / "photos.png", dpi=110)
    plt.close(fig)


def main() -> None:
    results = json.loads(Path(sys.argv[1]).read_text())
    out = Path(sys.argv[2])
    out.mkdir(parents=True, exist_ok=True)
    for plot in (throughput, ratio_plot, rss_plot, photos_plot):
        plot(results, out)


if __name__ == "__main__":
    main()
