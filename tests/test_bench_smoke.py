"""Smoke run of `scripts/bench --smoke`: the harness still starts the ceiling and tusgallery on
free ports, uploads through its tus client, watches RSS and writes a report where asked.

Only that it works is checked here; timing goals live in the full benchmark run (BENCHMARKS.md).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# The smoke run takes seconds; the bound only stops a hung server from hanging the suite.
SMOKE_RUN_LIMIT_SECONDS = 60


def test_bench_smoke_writes_report_to_the_given_path(tmp_path: Path) -> None:
    report_path = tmp_path / "report" / "BENCHMARKS.md"
    results_path = tmp_path / "results.json"
    plots_dir = tmp_path / "plots"
    run = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "bench"), "--smoke", "--out", str(report_path),
         "--json", str(results_path), "--plots-dir", str(plots_dir)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=SMOKE_RUN_LIMIT_SECONDS,
    )
    assert run.returncode == 0, run.stderr[-4000:]

    results = json.loads(results_path.read_text())
    assert results["errors"] == []
    assert results["plan"]["smoke"] is True
    for server in ("ceiling", "tusgallery"):
        speeds = [v for runs in results["throughput"][server].values() for v in runs]
        assert speeds and all(v is not None and v > 0 for v in speeds), (server, speeds)
        rss_runs = results["rss"][server]
        assert rss_runs and all(r["peak"] >= r["baseline"] > 0 for r in rss_runs), rss_runs
        assert all(wall is not None and wall > 0 for wall in results["photos"][server])
        assert all(ms is not None and ms > 0 for ms in results["small_patch_ms"][server])

    report = report_path.read_text()
    assert report.startswith("# Benchmarks")
    assert "Smoke run" in report
    assert "| ceiling | one request |" in report
    assert "| tusgallery | 1 MiB chunks |" in report
    assert "tusgallery 1 MiB chunks / ceiling (one request)" in report
    # finalize and the image pipeline come from their own scripts, run for real when present
    extras = results["extras"]
    if (ROOT / "scripts" / "bench_finalize").exists():
        assert [row["images"] for row in extras["finalize"]] == [3], extras
        assert "| finalize, 3 images | SQLite |" in report
    else:
        assert "| finalize, 3 images | SQLite, PostgreSQL | not measured:" in report
    assert extras["images"]["cpu_ms_per_photo"] > 0, extras
    assert "| image pipeline | CPU ms/photo |" in report
    # --smoke makes no plots, and the real report and plots were left alone
    assert not plots_dir.exists()
    assert not (tmp_path / "BENCHMARKS.md").exists()
