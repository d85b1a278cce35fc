"""Smoke run of `scripts/bench --quick`: the harness still starts the ceiling and tusgallery on
free ports, uploads through its tus client, watches RSS and writes a report where asked.

Only that it works is checked here; timing goals live in the full benchmark run (BENCHMARKS.md).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# The quick run takes seconds; the bound only stops a hung server from hanging the suite.
QUICK_RUN_LIMIT_SECONDS = 60


def test_bench_quick_writes_report_to_the_given_path(tmp_path: Path) -> None:
    report_path = tmp_path / "report" / "BENCHMARKS.md"
    results_path = tmp_path / "results.json"
    plots_dir = tmp_path / "plots"
    run = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "bench"), "--quick", "--out", str(report_path),
         "--json", str(results_path), "--plots-dir", str(plots_dir)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=QUICK_RUN_LIMIT_SECONDS,
    )
    assert run.returncode == 0, run.stderr[-4000:]

    results = json.loads(results_path.read_text())
    assert results["errors"] == []
    assert results["plan"]["quick"] is True
    for server in ("ceiling", "tusgallery"):
        speeds = [v for runs in results["throughput"][server].values() for v in runs]
        assert speeds and all(v is not None and v > 0 for v in speeds), (server, speeds)
        rss_runs = results["rss"][server]
        assert rss_runs and all(r["peak"] >= r["baseline"] > 0 for r in rss_runs), rss_runs
        assert all(wall is not None and wall > 0 for wall in results["photos"][server])

    report = report_path.read_text()
    assert report.startswith("# Benchmarks")
    assert "Quick smoke run" in report
    assert "| ceiling | one request |" in report
    assert "| tusgallery | 1 MiB chunks |" in report
    assert "tusgallery 1 MiB chunks / ceiling (one request)" in report
    # finalize and the image pipeline show a result or say plainly that they were not measured
    assert "| finalize, 3 images | SQLite |" in report
    assert "| image pipeline, 12 MP JPEG |" in report
    # --quick makes no plots, and the real report and plots were left alone
    assert not plots_dir.exists()
    assert not (tmp_path / "BENCHMARKS.md").exists()
