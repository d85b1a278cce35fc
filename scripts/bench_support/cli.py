"""`scripts/bench`: runs every measurement side by side in one run, then writes the report.

Order of work: install the tool env (peers, plotting) unless told not to; then alternating
rounds, each starting the servers one after the other (ceiling, tusgallery, tuspyserver,
@tus/server) and measuring them on the same payload; then fresh servers for the RSS watch; then
the measurements other parts of the project provide (finalize, image pipeline) when present.
Results go to a JSON file first, the Markdown report and the plots are made from it.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import functools
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench_support import extras, profiling, report, scenarios, servers, toolenv
from bench_support.plan import FULL, ONE_REQUEST, SMOKE, MiB, Plan, chunk_label
from bench_support.servers import ServerSpec
from bench_support.tus_client import Payload, make_payload

Results = dict[str, Any]


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="scripts/bench", description=__doc__)
    parser.add_argument(
        "--smoke", dest="smoke", action="store_true",
        help="tiny sizes, 1 run, no installs (what the test suite runs)",
    )
    parser.add_argument("--runs", type=int, help="alternating rounds (default 5, smoke 1)")
    parser.add_argument("--out", type=Path, default=toolenv.ROOT / "BENCHMARKS.md")
    parser.add_argument("--plots-dir", type=Path, default=toolenv.ROOT / "docs" / "bench")
    parser.add_argument(
        "--json", type=Path, help="raw results (default: results.json beside the plots)"
    )
    parser.add_argument(
        "--render", type=Path, metavar="RESULTS_JSON",
        help="measure nothing: write the report and plots again from a results file",
    )
    parser.add_argument(
        "--servers",
        help="comma-separated subset of: ceiling,tusgallery,tuspyserver,@tus/server",
    )
    parser.add_argument(
        "--no-install", action="store_true", help="only use peers already installed in .bench/"
    )
    parser.add_argument(
        "--profile", action="store_true", help="also py-spy tusgallery during an upload"
    )
    return parser.parse_args(argv)


def choose_servers(args: argparse.Namespace, plan: Plan) -> tuple[list[ServerSpec], list[str]]:
    """The servers this run can measure, and a note for each one it cannot."""
    wanted = set(args.servers.split(",")) if args.servers else None
    if wanted is None and plan.smoke:
        # the same work on every machine, peers installed or not: the suite must stay quick
        wanted = {servers.CEILING.name, servers.TUSGALLERY.name}
    install = not (args.no_install or plan.smoke)
    chosen, skipped = [], []

    def consider(spec: ServerSpec, available: Callable[[], bool], why_not: str) -> None:
        if wanted is not None and spec.name not in wanted:
            return
        if available():
            chosen.append(spec)
        else:
            skipped.append(f"{spec.name}: {why_not}")

    def python_peer() -> bool:
        if install:
            toolenv.ensure_tool_venv()
        return toolenv.tool_venv_ready()

    def node_peer() -> bool:
        return toolenv.ensure_node_peers() if install else toolenv.node_peers_ready()

    consider(servers.CEILING, lambda: True, "")
    consider(
        servers.TUSGALLERY,
        servers.tusgallery_available,
        "not measured yet (server.app does not import in this checkout)",
    )
    not_installed = "not installed in .bench/ (run scripts/bench without --smoke once)"
    consider(servers.TUSPYSERVER, python_peer, not_installed)
    consider(servers.TUS_NODE, node_peer, f"{not_installed}; needs node and npm")
    return chosen, skipped


def throughput_cases(spec: ServerSpec, plan: Plan) -> list[tuple[str, int]]:
    cases = [(chunk_label(size), size) for size in plan.chunk_sizes]
    if spec is servers.CEILING:
        cases.insert(0, (ONE_REQUEST, plan.upload_bytes))
    return cases


def new_results(plan: Plan, specs: list[ServerSpec], skipped: list[str]) -> Results:
    return {
        "meta": {
            "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "command": " ".join(["scripts/bench", *sys.argv[1:]]),
            "machine": machine_description(),
        },
        "plan": dataclasses.asdict(plan),
        "servers": [{"name": s.name, "description": s.description} for s in specs],
        "skipped": skipped,
        "throughput": {
            s.name: {label: [None] * plan.runs for label, _ in throughput_cases(s, plan)}
            for s in specs
        },
        "photos": {s.name: [None] * plan.runs for s in specs},
        "small_patch_ms": {s.name: [None] * plan.runs for s in specs},
        "rss": {s.name: [None] * plan.rss_runs for s in specs},
        "errors": [],
    }


def machine_description() -> dict[str, str]:
    cpu = "?"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    return {
        "cpus": str(os.cpu_count()),
        "cpu": cpu,
        "kernel": platform.release(),
        "python": platform.python_version(),
    }


def versions(specs: list[ServerSpec]) -> dict[str, str]:
    project = toolenv.project_python()
    found = {
        "uvicorn": toolenv.installed_version(project, "uvicorn"),
        "starlette": toolenv.installed_version(project, "starlette"),
        "httpx (client)": toolenv.installed_version(project, "httpx"),
    }
    names = {s.name for s in specs}
    if "tuspyserver" in names:
        tool = toolenv.tool_python()
        found["tuspyserver"] = toolenv.installed_version(tool, "tuspyserver")
        found["fastapi"] = toolenv.installed_version(tool, "fastapi")
        found["uvicorn (tool venv)"] = toolenv.installed_version(tool, "uvicorn")
    if "@tus/server" in names:
        found["node"] = toolenv.node_version()
        for package in toolenv.NODE_PEERS:
            manifest = toolenv.NODE_DIR / "node_modules" / package / "package.json"
            found[package] = json.loads(manifest.read_text())["version"]
    return found


def attempt(
    results: Results, spec: ServerSpec, phase: str, round_no: int, work: Callable[[], None]
) -> None:
    """Run one server's part of a round; a failure is recorded and the run goes on."""
    try:
        work()
    except Exception as exc:
        log(f"{spec.name} {phase} round {round_no + 1} failed: {exc}")
        traceback.print_exc(file=sys.stderr)
        results["errors"].append(
            {"server": spec.name, "phase": phase, "round": round_no + 1, "error": str(exc)[:500]}
        )


@dataclasses.dataclass(frozen=True)
class Round:
    """What every measurement of one round shares."""

    plan: Plan
    workdir: Path
    payloads: dict[str, Payload]
    results: Results
    number: int


def measure_server(now: Round, spec: ServerSpec) -> None:
    """One server's turn in a round: both chunk sizes, the photo burst, the small PATCHes."""
    cases = throughput_cases(spec, now.plan)
    if now.number % 2:
        cases.reverse()  # neither chunk size always runs on a fresh process
    with servers.serving(spec, now.workdir) as server:
        for label, size in cases:
            seconds = scenarios.upload_seconds(server, now.payloads["upload"], size)
            speed = now.plan.upload_bytes / MiB / seconds
            now.results["throughput"][spec.name][label][now.number] = speed
            log(f"round {now.number + 1} {spec.name} {label}: {speed:.0f} MiB/s")
        wall = scenarios.parallel_seconds(
            server, now.payloads["photo"], now.plan.photo_count, now.plan.photo_chunk
        )
        now.results["photos"][spec.name][now.number] = wall
        log(f"round {now.number + 1} {spec.name} {now.plan.photo_count} photos: {wall:.2f} s")
        ms = scenarios.small_patch_ms(
            server, now.payloads["upload"], now.plan.small_patches, now.plan.small_patch_bytes
        )
        now.results["small_patch_ms"][spec.name][now.number] = ms
        log(f"round {now.number + 1} {spec.name} one small PATCH: {ms:.2f} ms")


def measure_rss(now: Round, spec: ServerSpec) -> None:
    with servers.serving(spec, now.workdir) as server:
        run = scenarios.upload_rss(
            server, now.payloads["rss"], now.plan.rss_chunk, now.payloads["warmup"]
        )
    now.results["rss"][spec.name][now.number] = dataclasses.asdict(run)
    log(
        f"rss round {now.number + 1} {spec.name}: baseline {run.baseline / MiB:.1f} MiB, "
        f"peak {run.peak / MiB:.1f} MiB, growth {run.growth / MiB:.1f} MiB"
    )


def run_rounds(
    plan: Plan, specs: list[ServerSpec], workdir: Path, payloads: dict[str, Payload],
    results: Results,
) -> None:
    """Alternating rounds of the throughput measurements, then fresh servers for RSS."""
    for phase, rounds, measure in (
        ("throughput", plan.runs, measure_server),
        ("rss", plan.rss_runs, measure_rss),
    ):
        for number in range(rounds):
            now = Round(plan, workdir, payloads, results, number)
            for spec in specs:
                attempt(results, spec, phase, number, functools.partial(measure, now, spec))


def make_payloads(plan: Plan, payload_dir: Path) -> dict[str, Payload]:
    biggest = max(plan.upload_bytes, plan.rss_bytes)
    source = make_payload(payload_dir / f"random-{biggest}.bin", biggest)
    # every scenario reads a prefix of the same random file
    return {
        "upload": Payload(source.path, plan.upload_bytes),
        "rss": Payload(source.path, plan.rss_bytes),
        "warmup": Payload(source.path, min(64 * 1024, biggest)),
        "photo": Payload(source.path, plan.photo_bytes),
    }


def make_plots(results_path: Path, plots_dir: Path) -> list[Path]:
    if not toolenv.tool_venv_ready():
        log("plots skipped: the tool venv (matplotlib) is not installed")
        return []
    plots_dir.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [str(toolenv.tool_python()), str(toolenv.SUPPORT_DIR / "plots.py"), str(results_path),
         str(plots_dir)],
        check=True,
        timeout=300,
    )
    return sorted(plots_dir.glob("*.png"))


def write_report(results: Results, json_path: Path, args: argparse.Namespace) -> None:
    plots = [] if results["plan"]["smoke"] else make_plots(json_path, args.plots_dir)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(report.render(results, plots, args.out.parent))
    log(f"wrote {args.out} ({len(results['errors'])} errors), raw results in {json_path}")


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    if args.render:
        results = json.loads(args.render.read_text())
        write_report(results, args.render, args)
        return 0
    plan = SMOKE if args.smoke else FULL
    if args.runs:
        plan = dataclasses.replace(plan, runs=args.runs, rss_runs=min(args.runs, plan.rss_runs))
    toolenv.BENCH_DIR.mkdir(exist_ok=True)
    specs, skipped = choose_servers(args, plan)
    for note in skipped:
        log(f"skipped {note}")
    results = new_results(plan, specs, skipped)
    results["meta"]["versions"] = versions(specs)
    workdir = Path(tempfile.mkdtemp(prefix="run-", dir=toolenv.BENCH_DIR))
    payload_dir = workdir if plan.smoke else toolenv.BENCH_DIR / "payload"
    try:
        payloads = make_payloads(plan, payload_dir)
        run_rounds(plan, specs, workdir, payloads, results)
        results["extras"] = extras.measure(plan, log)
        if args.profile and servers.TUSGALLERY in specs:
            results["profile"] = profiling.profile_tusgallery(
                workdir, payloads["upload"], min(plan.chunk_sizes), log
            )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    default_json = (
        toolenv.BENCH_DIR / "results-smoke.json" if plan.smoke else args.plots_dir / "results.json"
    )
    json_path = args.json or default_json
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(results, indent=1) + "\n")
    write_report(results, json_path, args)
    return 1 if results["errors"] else 0
