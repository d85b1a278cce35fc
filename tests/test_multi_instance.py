"""Two app instances behind one PostgreSQL and one storage behave as one service.

Each case runs twice: the instances sharing one S3 bucket, and sharing one local data dir. Any
request of an upload may reach either instance; per-upload locks are PostgreSQL advisory locks
and a stop request crosses instances by LISTEN/NOTIFY. Every upload ends byte-exact.
"""

from __future__ import annotations

import hashlib
import random
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.conftest import stored_uploads
from tests.support.databases import postgres_database
from tests.support.homes import create_home, finalize, ready_uploads, uploads_body
from tests.support.s3 import S3Server
from tests.support.server import ServerProcess, server_env
from tests.support.tus import (
    TUS,
    RawPatch,
    create,
    head,
    offset_of,
    patch,
    run_together,
    slow_patch,
)

MiB = 1024 * 1024


@dataclass
class Cluster:
    env: dict[str, str]
    a: ServerProcess
    b: ServerProcess
    data_dir: Path

    def client(self, server: ServerProcess) -> httpx.Client:
        return httpx.Client(
            base_url=server.url, headers=server.auth, timeout=60, follow_redirects=True
        )


@pytest.fixture(scope="module", params=["s3", "local"])
def cluster(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Cluster]:
    data = tmp_path_factory.mktemp("shared")
    if request.param == "s3":
        s3: S3Server = request.getfixturevalue("s3_server")
        storage = s3.server_env(bucket=s3.new_bucket())
    else:
        storage = {"TUSGALLERY_STORAGE": "local"}
    with postgres_database() as url:
        env = server_env(url, data, storage)
        with (
            ServerProcess(env, log_path=data / "a.log") as a,
            ServerProcess(env, log_path=data / "b.log") as b,
        ):
            yield Cluster(env=env, a=a, b=b, data_dir=data)


def path_of(url: str) -> str:
    """The upload's path, to send it to whichever instance (Location names its creator)."""
    return "/files/" + url.rstrip("/").rsplit("/", 1)[-1]


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def finish_on(client: httpx.Client, path: str, data: bytes) -> None:
    offset = offset_of(client, path)
    if offset < len(data):
        response = patch(client, path, offset, data[offset:])
        assert response.status_code == 204, response.text
    assert sha(client.get(path).content) == sha(data)


def test_each_patch_on_the_other_instance(cluster: Cluster) -> None:
    rng = random.Random(1)
    sources = [rng.randbytes(size) for size in (11 * MiB + 123, 6 * MiB - 1, 700_001, 1)]
    with cluster.client(cluster.a) as a, cluster.client(cluster.b) as b:
        paths = [path_of(create(a if n % 2 else b, len(data))) for n, data in enumerate(sources)]
        offsets = [0] * len(sources)
        turn = 0
        # Round-robin over uploads and instances, like a load balancer spreading PATCHes.
        while any(offset < len(data) for offset, data in zip(offsets, sources, strict=True)):
            for n, data in enumerate(sources):
                if offsets[n] == len(data):
                    continue
                client = (a, b)[turn % 2]
                turn += 1
                end = min(len(data), offsets[n] + rng.randint(300_000, 2 * MiB))
                response = patch(client, paths[n], offsets[n], data[offsets[n] : end])
                assert response.status_code == 204, response.text
                offsets[n] = int(response.headers["Upload-Offset"])
                assert offsets[n] == end
        for n, data in enumerate(sources):
            for client in (a, b):
                assert offset_of(client, paths[n]) == len(data)
                assert sha(client.get(paths[n]).content) == sha(data)


def test_head_on_one_instance_stops_a_stalled_writer_on_the_other(cluster: Cluster) -> None:
    data = random.Random(2).randbytes(8 * MiB)
    sent = 5 * MiB + 300_000  # past one S3 part
    with cluster.client(cluster.a) as a, cluster.client(cluster.b) as b:
        path = path_of(create(a, len(data)))
        stalled = RawPatch(cluster.a.url + path, cluster.a.token, 0, len(data))
        stalled.send(data[:sent])
        time.sleep(0.5)  # instance A reads what was sent, then the sender goes quiet
        # B's HEAD asks A (through PostgreSQL) to save and let go, then answers.
        offset = offset_of(b, path)
        assert stalled.read_status() == 423
        stalled.close()
        assert 0 < offset <= sent
        assert offset_of(a, path) == offset
        finish_on(b, path, data)
        assert sha(a.get(path).content) == sha(data)


def test_racing_patches_on_two_instances_never_double_append(cluster: Cluster) -> None:
    data = random.Random(3).randbytes(7 * MiB)
    with cluster.client(cluster.a) as a, cluster.client(cluster.b) as b:
        path = path_of(create(a, len(data)))
        statuses = run_together(
            *[
                lambda server=server: slow_patch(
                    server.url + path, server.auth, data, piece=256 * 1024, pause=0.01
                )
                for server in (cluster.a, cluster.b)
            ]
        )
        assert len(statuses) == 2
        assert set(statuses) <= {204, 409, 423}, statuses
        offset = offset_of(b, path)
        assert 0 < offset <= len(data)
        assert offset_of(a, path) == offset
        finish_on(a, path, data)
        assert sha(b.get(path).content) == sha(data)


def test_kill_9_mid_patch_then_resume_on_the_other(cluster: Cluster) -> None:
    data = random.Random(4).randbytes(9 * MiB + 17)
    doomed = ServerProcess(cluster.env, log_path=cluster.data_dir / "doomed.log").start()
    try:
        with cluster.client(doomed) as c:
            path = path_of(create(c, len(data)))
            assert patch(c, path, 0, data[: 3 * MiB]).status_code == 204
            raw = RawPatch(doomed.url + path, doomed.token, 3 * MiB, len(data) - 3 * MiB)
            raw.send(data[3 * MiB : 8 * MiB])
            time.sleep(0.5)
            doomed.kill()
            raw.close()
    finally:
        doomed.stop()
    with cluster.client(cluster.b) as b:
        # The killed request never recorded its bytes (and PostgreSQL dropped its lock).
        assert offset_of(b, path) == 3 * MiB
        finish_on(b, path, data)


def test_finalize_race_across_instances(cluster: Cluster) -> None:
    with cluster.client(cluster.a) as a, cluster.client(cluster.b) as b:
        home = create_home(a)
        uploads = ready_uploads(b, 2, seed=90)
        body = {"expected_version": 1, **uploads_body("hall", uploads)}
        gate = threading.Barrier(2)

        def run(server: ServerProcess) -> httpx.Response:
            with cluster.client(server) as c:
                gate.wait(10)  # both requests leave together
                return finalize(c, home["id"], body)

        responses = run_together(lambda: run(cluster.a), lambda: run(cluster.b))
        results = dict(zip("ab", responses, strict=True))
        statuses = sorted(r.status_code for r in results.values())
        assert statuses == [200, 409], {k: r.text for k, r in results.items()}
        loser = next(r for r in results.values() if r.status_code == 409)
        assert loser.json()["error"] == "version_conflict"
        for client in (a, b):
            done = client.get(f"/api/homes/{home['id']}").json()
            assert done["version"] == 2
            images = done["galleries"]["hall"]
            assert [i["upload_id"] for i in images] == uploads
            for image in images:
                assert client.get(image["url"]).status_code == 200


def test_head_after_terminate_on_the_other_is_404(cluster: Cluster) -> None:
    with cluster.client(cluster.a) as a, cluster.client(cluster.b) as b:
        path = path_of(create(a, 10))
        assert patch(a, path, 0, b"12345").status_code == 204
        assert b.delete(path, headers=TUS).status_code == 204
        assert head(a, path).status_code == 404
        assert path.rsplit("/", 1)[1] not in stored_uploads(cluster.a)
