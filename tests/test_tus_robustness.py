"""Bodies that end badly: cut mid-way, raced, stalled, or the server killed under them.

Each case ends with the stored bytes compared to the source: the offset must count exactly the
bytes kept and a resumed upload must be byte-exact.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import stored_uploads
from tests.support.server import REPO, ServerProcess, server_env
from tests.support.tus import (
    RawPatch,
    create,
    head,
    offset_of,
    patch,
    run_together,
    slow_patch,
    wait_for_offset,
)

STORAGE_KINDS = ("local", "s3")
MiB = 1024 * 1024


def finish(client: httpx.Client, url: str, data: bytes) -> None:
    offset = offset_of(client, url)
    response = patch(client, url, offset, data[offset:])
    assert response.status_code == 204, response.text
    assert client.get(url).content == data


def test_cut_mid_body_keeps_exactly_what_arrived(
    server: ServerProcess, client: httpx.Client
) -> None:
    # Past one 5 MiB S3 part: on S3 the cut lands inside a part being uploaded as it arrives.
    data = os.urandom(11 * MiB + 400_000)
    cut = 5 * MiB + 123_457
    url = create(client, len(data))
    raw = RawPatch(url, server.token, 0, len(data))
    raw.send(data[:cut])
    time.sleep(0.5)  # let the server read it off the socket before the link drops
    raw.cut()
    assert wait_for_offset(client, url, cut) == cut
    finish(client, url, data)


def test_four_concurrent_patches_at_one_offset_never_double_append(
    server: ServerProcess, client: httpx.Client
) -> None:
    data = os.urandom(2 * 1024 * 1024)
    url = create(client, len(data))
    statuses = run_together(*[lambda: slow_patch(url, server.auth, data)] * 4)
    assert len(statuses) == 4
    assert set(statuses) <= {204, 409, 423}, statuses
    offset = offset_of(client, url)
    assert 0 < offset <= len(data)
    # Whatever interleaving happened, what is stored is a prefix of the source.
    assert client.get(url).content == data[:offset]
    finish(client, url, data)


def test_stalled_writer_is_replaced_by_a_resuming_client(
    server: ServerProcess, client: httpx.Client
) -> None:
    data = os.urandom(300_000)
    url = create(client, len(data))
    stalled = RawPatch(url, server.token, 0, len(data))
    stalled.send(data[:100_000])
    time.sleep(0.3)
    # The phone went into a tunnel: the connection stays open and sends nothing.
    # Another upload and the health check answer at once while it holds the lock.
    other = create(client, 3)
    started = time.monotonic()
    assert patch(client, other, 0, b"abc").status_code == 204
    assert httpx.get(f"{server.url}/api/health", timeout=5).status_code == 200
    assert time.monotonic() - started < 1.0
    # The resuming client takes over: HEAD makes the stale writer save and let go.
    assert offset_of(client, url) == 100_000
    assert stalled.read_status() == 423
    stalled.close()
    finish(client, url, data)


def test_other_uploads_are_not_slowed_by_a_held_lock(
    server: ServerProcess, client: httpx.Client
) -> None:
    url = create(client, 1_000_000)
    holder = RawPatch(url, server.token, 0, 1_000_000)
    holder.send(b"x" * 1000)
    try:
        latencies = []
        for _ in range(5):
            started = time.monotonic()
            target = create(client, 10)
            assert patch(client, target, 0, b"0123456789").status_code == 204
            assert httpx.get(f"{server.url}/api/health", timeout=5).status_code == 200
            latencies.append(time.monotonic() - started)
        assert max(latencies) < 1.0, latencies
    finally:
        holder.cut()


@pytest.fixture
def fresh_server(
    database_url: str, storage_env: dict[str, str], tmp_path: Path
) -> Iterator[ServerProcess]:
    """A server of the test's own, with a short read timeout, that the test may kill."""
    env = server_env(
        database_url, tmp_path, {**storage_env, "TUSGALLERY_READ_TIMEOUT_SECONDS": "1.5"}
    )
    proc = ServerProcess(env, log_path=tmp_path / "server.log")
    proc.start()
    yield proc
    proc.stop()


def restart(proc: ServerProcess) -> ServerProcess:
    again = ServerProcess(proc.env, port=proc.port, log_path=proc.log_path)
    return again.start()


def test_read_timeout_frees_the_lock_and_keeps_the_bytes(fresh_server: ServerProcess) -> None:
    with httpx.Client(base_url=fresh_server.url, headers=fresh_server.auth) as client:
        url = create(client, 50_000)
        stalled = RawPatch(url, fresh_server.token, 0, 50_000)
        stalled.send(b"y" * 20_000)
        # Nobody else asks: the server's own read timeout ends the request.
        assert stalled.read_status(timeout=10) == 408
        stalled.close()
        assert offset_of(client, url) == 20_000
        assert client.get(url).content == b"y" * 20_000


def test_kill_9_mid_patch_then_resume_is_exact(fresh_server: ServerProcess) -> None:
    data = os.urandom(1_500_000)
    with httpx.Client(base_url=fresh_server.url, headers=fresh_server.auth) as client:
        url = create(client, len(data))
        assert patch(client, url, 0, data[:500_000]).status_code == 204
        raw = RawPatch(url, fresh_server.token, 500_000, len(data) - 500_000)
        raw.send(data[500_000:900_000])
        time.sleep(0.3)
        fresh_server.kill()
        raw.close()
    server = restart(fresh_server)
    try:
        with httpx.Client(base_url=server.url, headers=server.auth) as client:
            # The killed request never recorded its bytes; the offset is the last one recorded.
            offset = offset_of(client, url)
            assert offset == 500_000
            finish(client, url, data)
            assert hashlib.sha256(client.get(url).content).digest() == hashlib.sha256(data).digest()
    finally:
        server.stop()


def test_sigterm_saves_in_flight_patches(fresh_server: ServerProcess) -> None:
    data = os.urandom(800_000)
    with httpx.Client(base_url=fresh_server.url, headers=fresh_server.auth) as client:
        url = create(client, len(data))
        raw = RawPatch(url, fresh_server.token, 0, len(data))
        raw.send(data[:300_000])
        time.sleep(0.3)
        assert fresh_server.proc is not None
        fresh_server.proc.send_signal(signal.SIGTERM)
        # The interrupted PATCH is answered (it saved its bytes) and the server exits.
        assert raw.read_status(timeout=10) == 503
        raw.close()
        # uvicorn ends a graceful shutdown by re-raising the signal it caught.
        assert fresh_server.proc.wait(15) in (0, -signal.SIGTERM)
        fresh_server.proc = None
    server = restart(fresh_server)
    try:
        with httpx.Client(base_url=server.url, headers=server.auth) as client:
            assert offset_of(client, url) == 300_000
            finish(client, url, data)
    finally:
        server.stop()


def test_expired_upload_is_410_and_cleanup_removes_it(
    database_url: str, storage_env: dict[str, str], tmp_path: Path
) -> None:
    env = server_env(
        database_url, tmp_path, {**storage_env, "TUSGALLERY_UPLOAD_EXPIRES_SECONDS": "1"}
    )
    with (
        ServerProcess(env, log_path=tmp_path / "server.log") as server,
        httpx.Client(base_url=server.url, headers=server.auth) as client,
    ):
        url = create(client, 10)
        assert patch(client, url, 0, b"12345").status_code == 204
        done = create(client, 2)
        assert patch(client, done, 0, b"ok").status_code == 204
        time.sleep(1.3)
        assert head(client, url).status_code == 410
        response = patch(client, url, 5, b"67890")
        assert response.status_code == 410
        assert response.json()["error"] == "expired"
        upload_id = url.rsplit("/", 1)[1]
        assert upload_id in stored_uploads(server)
        result = subprocess.run(
            [sys.executable, "-m", "server.cli", "cleanup"],
            cwd=REPO,
            env={**os.environ, **env},
            capture_output=True,
            text=True,
            check=True,
        )
        report = json.loads(result.stdout.strip().splitlines()[-1])
        assert report["expired_removed"] == 1
        assert upload_id not in stored_uploads(server)
        assert head(client, url).status_code == 404
        # A complete upload never expires.
        assert client.get(done).content == b"ok"
