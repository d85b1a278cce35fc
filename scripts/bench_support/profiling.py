"""Where tusgallery spends its CPU during an upload: py-spy attached to the running server.

py-spy (from the tool venv) samples the uvicorn process while the benchmark's client uploads;
idle samples (the event loop waiting on the socket) are left out by py-spy, and parked threads
are dropped here, so percentages are of the time the server was busy. The event loop's own C
code (uvloop reading the socket) shows as `Runner.run`. Self time names the function doing the
work, total time the caller that asked for it.
"""

from __future__ import annotations

import signal
import subprocess
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench_support import scenarios, servers, toolenv
from bench_support.tus_client import Payload

ATTACH_SECONDS = 1.0
TOP = 25
# Leaf frames of threads that are parked (idle worker threads, the process pool's manager):
# py-spy cannot always tell them from running ones, and they would swamp the busy samples.
IDLE_LEAVES = ("wait (threading.py)", "select (selectors.py)", "get (queue.py)")
# Start-up frames every sample of a thread sits under: they say nothing about the hot path.
ROOT_FILES = ("(<frozen runpy>)", "(click/core.py)", "(uvicorn/main.py)", "(uvicorn/server.py)",
              "(uvicorn/_compat.py)", "(uvicorn/__main__.py)", "(asyncio/runners.py)",
              "(threading.py)")


def _frames(stack: str) -> list[str]:
    # raw lines: "outer (file.py);inner (file.py) COUNT"; --nolineno leaves no line numbers
    return [frame.strip() for frame in stack.split(";") if frame.strip()]


def summarize(raw: str) -> dict[str, Any]:
    self_counts: Counter[str] = Counter()
    total_counts: Counter[str] = Counter()
    samples = 0
    for line in raw.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = _frames(stack)
        if frames[-1].endswith(IDLE_LEAVES):
            continue
        samples += count
        self_counts[frames[-1]] += count
        for frame in set(frames):
            if not frame.endswith(ROOT_FILES):
                total_counts[frame] += count
    if not samples:
        return {"samples": 0, "self": [], "total": []}

    def top(counter: Counter[str]) -> list[tuple[str, float]]:
        return [(frame, 100.0 * n / samples) for frame, n in counter.most_common(TOP)]

    return {"samples": samples, "self": top(self_counts), "total": top(total_counts)}


def profile_tusgallery(
    workdir: Path, payload: Payload, chunk_size: int, log: Callable[[str], None]
) -> dict[str, Any]:
    py_spy = toolenv.TOOL_VENV / "bin" / "py-spy"
    if not py_spy.exists():
        return {"error": "py-spy is not installed in .bench/venv"}
    raw_path = workdir / "profile.txt"
    with servers.serving(servers.TUSGALLERY, workdir) as server:
        recorder = subprocess.Popen(
            [str(py_spy), "record", "--pid", str(server.pid), "--format", "raw", "--nolineno",
             "--rate", "200", "--output", str(raw_path)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            time.sleep(ATTACH_SECONDS)
            seconds = scenarios.upload_seconds(server, payload, chunk_size)
        finally:
            recorder.send_signal(signal.SIGINT)
            recorder.wait(timeout=30)
    summary = summarize(raw_path.read_text() if raw_path.exists() else "")
    summary["chunk_size"] = chunk_size
    summary["upload_seconds"] = seconds
    log(f"profile: {summary['samples']} busy samples over a {seconds:.2f} s upload")
    return summary
