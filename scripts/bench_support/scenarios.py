"""What is measured against one running server: one upload, a run of tiny PATCHes, one RSS
watch, one parallel burst.

Upload times run until the bytes are durable: the harness fsyncs the files the server stored,
timed (`durable_seconds`), because two of the servers never fsync and would otherwise be timed
for less work. Each function then leaves the server's disk as it found it (tus DELETE, untimed)
and flushes the page cache (`os.sync`, untimed), so one measurement's writeback does not land in
the next one's time.
"""

from __future__ import annotations

import os
import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from bench_support.rss import PeakSampler, tree_rss
from bench_support.servers import BENCH_TOKEN, RunningServer
from bench_support.tus_client import Payload, TusClient

BASELINE_SAMPLES = 5
SETTLE_SECONDS = 0.3


def _client(server: RunningServer) -> TusClient:
    return TusClient(server.base_url, BENCH_TOKEN)


def durable_seconds(data_dir: Path) -> float:
    """Seconds to fsync every file the server stored: its share of making the bytes durable.

    tusgallery and the ceiling fsync before the last 204, so this costs them next to nothing;
    the peers never fsync, so without it their clock would stop before their bytes are safe.
    """
    started = time.perf_counter()
    for path in data_dir.rglob("*"):
        if path.is_file():
            fd = os.open(path, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
    return time.perf_counter() - started


def upload_seconds(server: RunningServer, payload: Payload, chunk_size: int) -> float:
    """Seconds from the POST until the whole payload is stored durably."""
    with _client(server) as client:
        url, seconds = client.upload(payload, chunk_size)
        seconds += durable_seconds(server.data_dir)
        client.terminate(url)
    os.sync()
    return seconds


def small_patch_ms(server: RunningServer, payload: Payload, count: int, size: int) -> float:
    """Median milliseconds of one tiny PATCH: the per-request cost that chunking multiplies."""
    with _client(server) as client:
        # one byte more than is sent: no PATCH completes the upload, so all of them are alike
        url = client.create(count * size + 1)
        times = []
        for n in range(count):
            started = time.perf_counter()
            client.patch(url, payload, n * size, size)
            times.append(time.perf_counter() - started)
        client.terminate(url)
    return statistics.median(times) * 1000


@dataclass(frozen=True)
class RssRun:
    baseline: int
    peak: int
    seconds: float

    @property
    def growth(self) -> int:
        return max(0, self.peak - self.baseline)


def upload_rss(
    server: RunningServer, payload: Payload, chunk_size: int, warmup: Payload
) -> RssRun:
    """Peak RSS of the server's process tree during one upload, and its idle baseline.

    A small warm-up upload runs first, so lazy imports and first-request caches count in the
    baseline rather than as growth: what is left is what the big upload itself costs.
    """
    with _client(server) as client:
        url, _ = client.upload(warmup, chunk_size)
        client.terminate(url)
        time.sleep(SETTLE_SECONDS)
        baseline = int(
            statistics.median(tree_rss(server.pid) for _ in range(BASELINE_SAMPLES))
        )
        with PeakSampler(server.pid) as sampler:
            url, seconds = client.upload(payload, chunk_size)
        client.terminate(url)
    os.sync()
    return RssRun(baseline, max(sampler.peak, baseline), seconds)


def parallel_seconds(
    server: RunningServer, payload: Payload, count: int, chunk_size: int
) -> float:
    """Wall time for `count` uploads at once, one connection each (the 30-photo gallery case)."""
    clients = [_client(server) for _ in range(count)]
    try:
        with ThreadPoolExecutor(max_workers=count) as pool:
            started = time.perf_counter()
            results = list(pool.map(lambda client: client.upload(payload, chunk_size), clients))
            wall = time.perf_counter() - started + durable_seconds(server.data_dir)
        for client, (url, _) in zip(clients, results, strict=True):
            client.terminate(url)
    finally:
        for client in clients:
            client.close()
    os.sync()
    return wall
