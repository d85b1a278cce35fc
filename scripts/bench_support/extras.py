"""Measurements other parts of the project own: finalize latency and the image pipeline.

`scripts/bench_finalize` and `scripts/bench_images` measure these themselves (each with its own
baseline, interleaved); this module runs them as they are and reads their result lines, so the
numbers in BENCHMARKS.md are the ones those scripts print and nothing is measured twice. A script
missing from this checkout, or one that fails, is reported as such, never as a number.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Callable
from typing import Any

from bench_support import toolenv
from bench_support.plan import Plan

SCRIPT_TIMEOUT_SECONDS = 1200

# "<label> 12.3 ms (min 10.1, max 15.0)", as both scripts print a median with its spread
_SERIES = re.compile(
    r"(\w[\w ]*?):? +(?:median )?([\d.]+) ms(?: wall)? \(min ([\d.]+), max ([\d.]+)\)"
)
_FINALIZE_LINE = re.compile(r"^(sqlite|postgres)\s+(\d+) images\b(.*)$")
_RESULT_LINE = re.compile(r"^result: ([\d.]+) ms/photo CPU, ([\d.]+) wall")
_POOL_LINE = re.compile(r"^pool of (\d+) processes: (\d+) photos in ([\d.]+) s = ([\d.]+) photos/s")
DATABASE_NAMES = {"sqlite": "SQLite", "postgres": "PostgreSQL"}


def _series(text: str) -> dict[str, dict[str, float]]:
    return {
        label.strip().split()[-1]: {"median": float(m), "min": float(lo), "max": float(hi)}
        for label, m, lo, hi in _SERIES.findall(text)
    }


def _run(name: str, args: list[str], log: Callable[[str], None]) -> tuple[str | None, str]:
    """(stdout, "") when the script ran and succeeded, else (None, why not)."""
    script = toolenv.ROOT / "scripts" / name
    if not script.exists():
        return None, f"scripts/{name} is not on this checkout"
    log(f"running scripts/{name} {' '.join(args)}")
    try:
        run = subprocess.run(
            [sys.executable, str(script), *args],
            cwd=toolenv.ROOT,
            capture_output=True,
            text=True,
            timeout=SCRIPT_TIMEOUT_SECONDS,
        )
    except subprocess.TimeoutExpired:
        return None, f"scripts/{name} took longer than {SCRIPT_TIMEOUT_SECONDS} s"
    if run.returncode != 0:
        tail = (run.stderr or run.stdout).strip().splitlines()[-3:]
        return None, f"scripts/{name} exited with {run.returncode}: {' / '.join(tail)}"
    return run.stdout, ""


def parse_finalize(output: str) -> list[dict[str, Any]]:
    rows = []
    for line in output.splitlines():
        match = _FINALIZE_LINE.match(line.strip())
        if match:
            kind, images, rest = match.groups()
            rows.append(
                {"database": DATABASE_NAMES[kind], "images": int(images), "series": _series(rest)}
            )
    return rows


def _wall(line: str) -> dict[str, float] | None:
    """The one "median X ms wall (min, max)" after the line's label."""
    return next(iter(_series("wall" + line.split(":", 1)[1].replace("median", "")).values()), None)


def parse_images(output: str) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for line in output.splitlines():
        line = line.strip()
        if line.startswith("process_image"):
            found["pipeline_wall"] = _wall(line)
        elif line.startswith("baseline full decode"):
            found["decode_wall"] = _wall(line)
        elif match := _RESULT_LINE.match(line):
            found["cpu_ms_per_photo"] = float(match.group(1))
            found["wall_ms_per_photo"] = float(match.group(2))
        elif match := _POOL_LINE.match(line):
            workers, rate = int(match.group(1)), float(match.group(4))
            found["pool"] = {"workers": workers, "photos_per_second": rate}
        elif line.startswith("Pillow "):
            found["setup"] = line
    return found


def measure(plan: Plan, log: Callable[[str], None]) -> dict[str, Any]:
    # the smoke run keeps to SQLite: starting PostgreSQL databases would double its time
    finalize_args = ["--smoke", "--db", "sqlite"] if plan.smoke else []
    finalize_out, finalize_why = _run("bench_finalize", finalize_args, log)
    images_out, images_why = _run("bench_images", ["--quick"] if plan.smoke else [], log)
    finalize = parse_finalize(finalize_out) if finalize_out is not None else []
    images = parse_images(images_out) if images_out is not None else {}
    if finalize_out is not None and not finalize:
        finalize_why = "scripts/bench_finalize printed no result lines this harness can read"
    if images_out is not None and "cpu_ms_per_photo" not in images:
        images_why = "scripts/bench_images printed no result line this harness can read"
    return {
        "finalize": finalize,
        "finalize_note": finalize_why,
        "images": images,
        "images_note": images_why,
    }
