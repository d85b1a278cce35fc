"""Resident memory of a server and every process it started, sampled from /proc.

VmRSS of the server pid plus all its descendants (worker pools count: they are the server's
memory too). The tree is re-read every few samples, so workers started mid-upload are seen.
"""

from __future__ import annotations

import threading
from pathlib import Path

SAMPLE_SECONDS = 0.02
TREE_REFRESH_SAMPLES = 10


def descendants(pid: int) -> list[int]:
    """`pid` and every live process below it, from /proc/PID/task/*/children."""
    found, queue = [], [pid]
    while queue:
        current = queue.pop()
        found.append(current)
        for task in Path(f"/proc/{current}/task").glob("*"):
            try:
                queue += [int(child) for child in (task / "children").read_text().split()]
            except OSError:
                continue
    return found


def rss_bytes(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue  # exited between listing and reading
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1]) * 1024
                break
    return total


def tree_rss(pid: int) -> int:
    return rss_bytes(descendants(pid))


class PeakSampler:
    """Samples the tree's RSS in a thread while the `with` block runs; keeps the peak."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak = 0
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def _run(self) -> None:
        pids = descendants(self.pid)
        while True:
            self.peak = max(self.peak, rss_bytes(pids))
            self.samples += 1
            if self._stop.wait(SAMPLE_SECONDS):
                break
            if self.samples % TREE_REFRESH_SAMPLES == 0:
                pids = descendants(self.pid)
        # one last look, so a peak at the very end is not missed
        self.peak = max(self.peak, tree_rss(self.pid))

    def __enter__(self) -> PeakSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
