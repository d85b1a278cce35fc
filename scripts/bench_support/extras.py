"""Measurements other parts of the project provide: finalize latency and the image pipeline.

They are measured only when the code they need is on this checkout; otherwise the report shows
an explicit "not measured yet" row with the reason, never a number.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench_support import servers, toolenv
from bench_support.plan import Plan
from bench_support.servers import ServerSpec

DATABASES = ("SQLite", "PostgreSQL")


def _not_measured(reason: str) -> dict[str, Any]:
    return {"value": None, "note": f"not measured yet: {reason}"}


def measure_finalize(plan: Plan, specs: list[ServerSpec], log: Callable[[str], None]) -> list[dict[str, Any]]:
    if servers.TUSGALLERY not in specs:
        reason = "tusgallery is not in this run"
    else:
        reason = "the homes API (POST /api/homes/{id}/finalize) is not on this checkout"
    return [
        {"database": db, "images": count, **_not_measured(reason)}
        for db in DATABASES
        for count in plan.finalize_counts
    ]


def measure_images(log: Callable[[str], None]) -> dict[str, Any]:
    script = toolenv.ROOT / "scripts" / "bench_images"
    if not script.exists():
        return _not_measured("scripts/bench_images is not on this checkout")
    return _not_measured("scripts/bench_images is present but not wired in yet")


def measure(
    plan: Plan, specs: list[ServerSpec], workdir: Path, log: Callable[[str], None]
) -> dict[str, Any]:
    return {"finalize": measure_finalize(plan, specs, log), "images": measure_images(log)}
