"""BENCHMARKS.md from the raw results: medians with min and max, ratios, goals met or not.

Ratios are taken round by round (tusgallery and its reference measured in the same alternating
round, minutes apart at most) and then summarised, so slow drift of the machine cancels out.
A missing measurement is shown as missing with its reason, never as a number.
"""

from __future__ import annotations

import os
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench_support.plan import ONE_REQUEST, MiB, chunk_label, size_label

Results = dict[str, Any]
TG = "tusgallery"
# Hot-path changes made from what a run showed, with their before/after: kept by hand, since a
# run cannot measure the code as it was before a change.
CHANGES = Path(__file__).resolve().parent / "changes.md"


@dataclass(frozen=True)
class Spread:
    median: float
    low: float
    high: float
    n: int


def spread(values: list[float | None]) -> Spread | None:
    present = [v for v in values if v is not None]
    if not present:
        return None
    return Spread(statistics.median(present), min(present), max(present), len(present))


def paired(top: list[float | None], bottom: list[float | None]) -> list[float | None]:
    return [
        a / b if a is not None and b is not None and b > 0 else None
        for a, b in zip(top, bottom, strict=True)
    ]


@dataclass(frozen=True)
class Ratio:
    name: str
    values: list[float | None]
    goal: float | None  # minimum; None: shown for information
    as_percent: bool


def _fmt(value: float, as_percent: bool) -> str:
    return f"{value * 100:.0f} %" if as_percent else f"{value:.2f}x"


def _throughput(results: Results, server: str, case: str) -> list[float | None] | None:
    return results["throughput"].get(server, {}).get(case)


def ratios(results: Results) -> list[Ratio]:
    plan = results["plan"]
    chunks = sorted(plan["chunk_sizes"], reverse=True)
    goals_vs_ceiling = dict(zip(chunks, (0.90, 0.75), strict=False))
    peer_goals = {"tuspyserver": 1.5, "@tus/server": 1.0}
    found = []
    ceiling_one = _throughput(results, "ceiling", ONE_REQUEST)
    for chunk in chunks:
        label = chunk_label(chunk)
        tg = _throughput(results, TG, label)
        if tg is None:
            continue
        if ceiling_one is not None:
            found.append(
                Ratio(f"{TG} {label} / ceiling (one request)", paired(tg, ceiling_one),
                      goals_vs_ceiling.get(chunk), True)
            )
        for peer, goal in peer_goals.items():
            other = _throughput(results, peer, label)
            if other is not None:
                found.append(Ratio(f"{TG} / {peer}, {label}", paired(tg, other), goal, False))
        same = _throughput(results, "ceiling", label)
        if same is not None:
            found.append(Ratio(f"{TG} / ceiling, both {label}", paired(tg, same), None, True))
    timed = (
        (results["photos"], f"{plan['photo_count']} parallel photos"),
        (results.get("small_patch_ms", {}), "one small PATCH"),
    )
    for times, what in timed:
        if TG not in times:
            continue
        for peer in ("ceiling", *peer_goals):
            if peer in times:
                # times: the peer's over tusgallery's reads as "tusgallery is N x faster"
                found.append(
                    Ratio(f"{TG} / {peer}, {what} (speed)", paired(times[peer], times[TG]),
                          None, peer == "ceiling")
                )
    return found


def _ratio_rows(found: list[Ratio]) -> list[str]:
    rows = ["| ratio | median | min | max | runs | goal | met |", "|---|---|---|---|---|---|---|"]
    for ratio in found:
        s = spread(ratio.values)
        goal = f">= {_fmt(ratio.goal, ratio.as_percent)}" if ratio.goal is not None else "(info)"
        if s is None:
            rows.append(f"| {ratio.name} | not measured | | | 0 | {goal} | n/a |")
            continue
        met = "n/a" if ratio.goal is None else ("yes" if s.median >= ratio.goal else "**no**")
        cells = [_fmt(v, ratio.as_percent) for v in (s.median, s.low, s.high)]
        rows.append(f"| {ratio.name} | {' | '.join(cells)} | {s.n} | {goal} | {met} |")
    return rows


def _throughput_rows(results: Results) -> list[str]:
    rows = ["| server | upload | MiB/s median | min | max | runs |", "|---|---|---|---|---|---|"]
    for server, cases in results["throughput"].items():
        for case, values in cases.items():
            s = spread(values)
            if s is None:
                rows.append(f"| {server} | {case} | failed (see errors) | | | 0 |")
            else:
                rows.append(
                    f"| {server} | {case} | {s.median:.0f} | {s.low:.0f} | {s.high:.0f} | {s.n} |"
                )
    return rows


def _rss_rows(results: Results) -> list[str]:
    rows = [
        "| server | idle baseline MiB | peak MiB | growth MiB median | min | max | goal | met |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for server, runs in results["rss"].items():
        present = [r for r in runs if r is not None]
        if not present:
            rows.append(f"| {server} | failed (see errors) | | | | | | |")
            continue
        growth = spread([max(0, r["peak"] - r["baseline"]) / MiB for r in present])
        base = statistics.median(r["baseline"] / MiB for r in present)
        peak = statistics.median(r["peak"] / MiB for r in present)
        assert growth is not None
        goal, met = "(info)", "n/a"
        if server == TG:
            goal, met = "<= 32 MiB", "yes" if growth.high <= 32 else "**no**"
        rows.append(
            f"| {server} | {base:.1f} | {peak:.1f} | {growth.median:.1f} | {growth.low:.1f} | "
            f"{growth.high:.1f} | {goal} | {met} |"
        )
    return rows


def _per_server_rows(by_server: dict[str, list[float | None]], unit: str) -> list[str]:
    """One row per server: median, min and max of its rounds."""
    rows = [f"| server | {unit} median | min | max | runs |", "|---|---|---|---|---|"]
    for server, values in by_server.items():
        s = spread(values)
        if s is None:
            rows.append(f"| {server} | failed (see errors) | | | 0 |")
        else:
            rows.append(f"| {server} | {s.median:.2f} | {s.low:.2f} | {s.high:.2f} | {s.n} |")
    return rows


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def _ms(series: dict[str, float] | None) -> list[str]:
    return [_num((series or {}).get(key)) for key in ("median", "min", "max")]


def _extras_rows(results: Results) -> list[str]:
    extras = results.get("extras", {})
    rows = [
        "| measurement | database | ms median | min | max | bare insert ms | over HTTP ms |",
        "|---|---|---|---|---|---|---|",
    ]
    finalize = extras.get("finalize", [])
    for row in finalize:
        series = row["series"]
        rows.append(
            f"| finalize, {row['images']} images | {row['database']} | "
            f"{' | '.join(_ms(series.get('finalize')))} | "
            f"{_num(series.get('baseline', {}).get('median'))} | "
            f"{_num(series.get('http', {}).get('median'))} |"
        )
    if not finalize:
        why = extras.get("finalize_note") or "not run"
        for count in results["plan"]["finalize_counts"]:
            rows.append(f"| finalize, {count} images | SQLite, PostgreSQL | not measured: {why} "
                        "| | | | |")
    images = extras.get("images", {})
    rows += ["", "| image pipeline | CPU ms/photo | wall ms median | min | max | "
             "full decode wall ms | pool photos/s |", "|---|---|---|---|---|---|---|"]
    if "cpu_ms_per_photo" in images:
        pool = images.get("pool") or {}
        rate = _num(pool.get("photos_per_second"))
        photo = images.get("setup", "").split("; ")[-1] or "photo"
        rows.append(
            f"| {photo} | {images['cpu_ms_per_photo']:.1f} | "
            f"{' | '.join(_ms(images.get('pipeline_wall')))} | "
            f"{_num((images.get('decode_wall') or {}).get('median'))} | "
            f"{rate} ({pool.get('workers', '?')} processes) |"
        )
    else:
        why = extras.get("images_note") or "not run"
        rows.append(f"| image pipeline, 12 MP JPEG | not measured: {why} | | | | | |")
    return rows


def _profile_lines(profile: dict[str, Any] | None) -> list[str]:
    if not profile:
        return []
    if "error" in profile:
        return ["## Profile", "", f"Not recorded: {profile['error']}", ""]
    lines = [
        "## Profile of tusgallery during an upload",
        "",
        f"py-spy, {profile['samples']} busy samples while uploading with "
        f"{size_label(profile['chunk_size'])} chunks ({profile['upload_seconds']:.2f} s); "
        "idle (waiting on the socket) is not counted.",
        "",
        "| self % | function (file) |",
        "|---|---|",
    ]
    lines += [f"| {pct:.1f} | `{frame}` |" for frame, pct in profile["self"]]
    lines += ["", "| total % | function (file) |", "|---|---|"]
    lines += [f"| {pct:.1f} | `{frame}` |" for frame, pct in profile["total"]]
    return [*lines, ""]


def _method(results: Results) -> list[str]:
    plan = results["plan"]
    return [
        "## Method",
        "",
        f"- One client for every server (`scripts/bench_support/tus_client.py`): httpx, one "
        f"kept-alive connection, POST then sequential PATCHes, bodies read from a random "
        f"{size_label(plan['upload_bytes'])} file. Time runs from the POST to the last 204, "
        "plus the time the harness then takes to fsync the files the server stored: "
        "tusgallery and the ceiling fsync before their last 204 (so this adds next to nothing), "
        "tuspyserver and @tus/server never do, and every server is timed until its bytes are "
        "durable.",
        f"- {plan['runs']} alternating rounds (ceiling, tusgallery, peers, ceiling, ...); each "
        "server is started on a free loopback port for its turn and stopped after it, one "
        "server at a time (2 cores). Ratios are taken within a round, then summarised.",
        "- Untimed between uploads: tus DELETE and `os.sync()`, so no server pays for another's "
        "writeback.",
        "- The ceiling is `scripts/bench_support/ceiling_app.py`: bare Starlette, "
        "`request.stream()` into a file, one fsync, under the same uvicorn (httptools + uvloop).",
        f"- RSS: VmRSS of the server and all its child processes from /proc, every 20 ms, during "
        f"a {size_label(plan['rss_bytes'])} upload in {size_label(plan['rss_chunk'])} chunks on "
        "a fresh server; the baseline is taken idle after a 64 KiB warm-up upload. "
        f"{plan['rss_runs']} runs. tusgallery's tree includes its image worker processes "
        "(`TUSGALLERY_IMAGE_WORKERS`), hence its higher baseline; growth is what counts.",
        f"- Parallel photos: {plan['photo_count']} uploads of {size_label(plan['photo_bytes'])} "
        "random bytes at once, one connection each, one PATCH each; wall time until the last "
        "204, plus the fsync of what was stored as above. tusgallery's image pipeline rejects "
        "random bytes off the request path.",
        f"- One small PATCH: {plan['small_patches']} PATCHes of "
        f"{size_label(plan['small_patch_bytes'])} in a row on one upload; the median of one.",
        "- Finalize and image pipeline: the result lines `scripts/bench_finalize` and "
        "`scripts/bench_images` print (each with its own baseline: a bare insert of the same "
        "rows; a full decode of the same photo), run by `scripts/bench` and not re-measured.",
        "",
    ]


def render(results: Results, plots: list[Path], report_dir: Path) -> str:
    meta = results["meta"]
    machine = meta["machine"]
    lines = [
        "# Benchmarks",
        "",
        f"Made by `{meta['command']}` on {meta['date']}: {machine['cpus']} CPUs "
        f"({machine['cpu']}), Linux {machine['kernel']}, Python {machine['python']}. "
        "Client and server share these cores on a virtual machine, so single numbers move by "
        "+-25 % or more between runs; compare medians of ratios taken in one round.",
        "",
        "Versions: " + ", ".join(f"{k} {v}" for k, v in meta.get("versions", {}).items()) + ".",
        "",
    ]
    if results["plan"]["smoke"]:
        lines += ["**Smoke run (`--smoke`): tiny sizes, one round; not a measurement.**", ""]
    lines += ["## Ratios and goals", "", *_ratio_rows(ratios(results)), ""]
    lines += [f"## Upload throughput ({size_label(results['plan']['upload_bytes'])})", "",
              *_throughput_rows(results), ""]
    lines += [f"## Server memory during a {size_label(results['plan']['rss_bytes'])} upload", "",
              *_rss_rows(results), ""]
    lines += [f"## {results['plan']['photo_count']} parallel photo uploads "
              f"({size_label(results['plan']['photo_bytes'])} each)", "",
              *_per_server_rows(results["photos"], "wall s"), ""]
    plan = results["plan"]
    lines += [f"## One small PATCH ({size_label(plan['small_patch_bytes'])}, median of "
              f"{plan['small_patches']} in a row on one upload)", "",
              "What a server spends per request apart from the bytes: uploading "
              f"{size_label(plan['upload_bytes'])} in {size_label(min(plan['chunk_sizes']))} "
              f"chunks pays it {plan['upload_bytes'] // min(plan['chunk_sizes'])} times.", "",
              *_per_server_rows(results.get("small_patch_ms", {}), "ms"), ""]
    lines += ["## Finalize and image pipeline", "", *_extras_rows(results), ""]
    lines += _profile_lines(results.get("profile"))
    if CHANGES.exists():
        lines += [CHANGES.read_text().strip(), ""]
    if plots:
        lines += ["## Plots", ""]
        lines += [f"![{p.stem}]({os.path.relpath(p, report_dir)})" for p in plots]
        lines += [""]
    notes = [f"- skipped {note}" for note in results["skipped"]]
    notes += [f"- {e['server']} {e['phase']} round {e['round']}: {e['error']}"
              for e in results["errors"]]
    if notes:
        lines += ["## Skipped and failed", "", *notes, ""]
    lines += _method(results)
    return "\n".join(lines)
