"""How much the benchmark sends: the full run, and the seconds-long `--smoke` run."""

from __future__ import annotations

from dataclasses import dataclass

KiB = 1024
MiB = 1024 * KiB


@dataclass(frozen=True)
class Plan:
    smoke: bool
    # alternating rounds (A B C A B C ...) of the throughput and parallel-photo measurements
    runs: int
    upload_bytes: int
    chunk_sizes: tuple[int, ...]
    rss_bytes: int
    rss_chunk: int
    rss_runs: int
    photo_count: int
    photo_bytes: int
    photo_chunk: int
    finalize_counts: tuple[int, ...]
    # many tiny PATCHes on one upload: what a server spends per request, apart from the bytes
    small_patches: int
    small_patch_bytes: int


FULL = Plan(
    smoke=False,
    runs=5,
    upload_bytes=256 * MiB,
    chunk_sizes=(8 * MiB, 1 * MiB),
    rss_bytes=1024 * MiB,
    rss_chunk=8 * MiB,
    rss_runs=3,
    photo_count=30,
    photo_bytes=4_000_000,
    photo_chunk=8 * MiB,
    finalize_counts=(30, 100, 1000),
    small_patches=300,
    small_patch_bytes=1 * KiB,
)

SMOKE = Plan(
    smoke=True,
    runs=1,
    upload_bytes=4 * MiB,
    chunk_sizes=(1 * MiB, 256 * KiB),
    rss_bytes=16 * MiB,
    rss_chunk=1 * MiB,
    rss_runs=1,
    photo_count=8,
    photo_bytes=256 * KiB,
    photo_chunk=8 * MiB,
    finalize_counts=(3,),
    small_patches=20,
    small_patch_bytes=1 * KiB,
)


def size_label(size: int) -> str:
    if size % MiB == 0:
        return f"{size // MiB} MiB"
    if size % KiB == 0:
        return f"{size // KiB} KiB"
    if size % 1_000_000 == 0:
        return f"{size // 1_000_000} MB"
    return f"{size} B"


ONE_REQUEST = "one request"


def chunk_label(chunk_size: int) -> str:
    return f"{size_label(chunk_size)} chunks"
