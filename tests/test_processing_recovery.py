"""The image pipeline runs exactly once per upload: after a crash and across instances.

A crashed worker leaves its upload `processing`; the next server to start redoes it once the
claim is older than TUSGALLERY_PROCESSING_STALE_SECONDS, and leaves younger claims alone. Two
uvicorn processes on one PostgreSQL and one data dir race for the same queue and never both
process an upload. Real servers, real databases; the crash is written into the upload's row
as a killed worker leaves it (a kill at the right instant cannot be aimed reliably).
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import update
from sqlmodel import Session, col, select

from server.db import utcnow
from server.models import Upload, UploadStatus
from tests.support.databases import postgres_database
from tests.support.homes import (
    log_events,
    sql_engine,
    tus_upload,
    upload_status,
    wait_processed,
)
from tests.support.photos import make_photo
from tests.support.server import ServerProcess, server_env


def _set_rows(database_url: str, upload_ids: list[str], **values: Any) -> None:
    engine = sql_engine(database_url)
    try:
        with Session(engine) as session:
            session.execute(update(Upload).where(col(Upload.id).in_(upload_ids)).values(**values))
            session.commit()
    finally:
        engine.dispose()


def _rows(database_url: str, upload_ids: list[str]) -> dict[str, Upload]:
    engine = sql_engine(database_url)
    try:
        with Session(engine) as session:
            query = select(Upload).where(col(Upload.id).in_(upload_ids))
            return {row.id: row for row in session.exec(query)}
    finally:
        engine.dispose()


def _photo(tmp: Path, seed: int) -> bytes:
    # Big enough that processing takes a while and racing instances overlap.
    return make_photo(tmp / f"p{seed}.jpg", 1600, 1200, seed=seed).read_bytes()


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    path = tmp_path / "data"
    path.mkdir()
    return path


def _server(database_url: str, data: Path, name: str, **extra: str) -> ServerProcess:
    return ServerProcess(server_env(database_url, data, extra), log_path=data / f"{name}.log")


def _client(server: ServerProcess) -> httpx.Client:
    return httpx.Client(base_url=server.url, headers=server.auth, timeout=30)


def test_stale_claim_is_redone_after_restart(
    database_url: str, data_dir: Path, tmp_path: Path
) -> None:
    with _server(database_url, data_dir, "first") as first, _client(first) as c:
        stale, young = (tus_upload(c, _photo(tmp_path, n)) for n in range(2))
        assert {s["status"] for s in wait_processed(c, [stale, young]).values()} == {"ready"}

    # What a worker killed mid-job leaves behind: the claim, no result.
    crashed = {"status": UploadStatus.PROCESSING, "processing_attempts": 1, "result": {}}
    _set_rows(database_url, [stale], processing_started_at=utcnow() - dt.timedelta(hours=1))
    _set_rows(database_url, [young], processing_started_at=utcnow())
    _set_rows(database_url, [stale, young], **crashed)

    with _server(database_url, data_dir, "second") as second, _client(second) as c:
        assert wait_processed(c, [stale])[stale]["status"] == "ready"
        # The first sweep saw both rows and left the young claim to its (presumed) owner.
        assert upload_status(c, young)["status"] == "processing"
        image = upload_status(c, stale)["image"]
        assert "/2/" in image["url"]  # the redo's derivatives, under its own attempt
        assert c.get(image["url"]).status_code == 200
    rows = _rows(database_url, [stale, young])
    assert rows[stale].processing_attempts == 2 and rows[stale].result["attempt"] == 2
    assert rows[young].processing_attempts == 1
    redone = [e for e in log_events(second.log_text(), "image_processed") if e["upload_id"] in rows]
    assert [(e["upload_id"], e["attempt"], e["result"]) for e in redone] == [(stale, 2, "ready")]

    # A server that counts claims as stale sooner takes the young one over as well.
    with (
        _server(database_url, data_dir, "third", TUSGALLERY_PROCESSING_STALE_SECONDS="1") as third,
        _client(third) as c,
    ):
        assert wait_processed(c, [young])[young]["status"] == "ready"
    assert _rows(database_url, [young])[young].processing_attempts == 2


@pytest.fixture
def shared_postgres() -> Iterator[str]:
    with postgres_database() as url:
        yield url


def _start_together(servers: list[ServerProcess]) -> None:
    errors: list[BaseException] = []

    def start(server: ServerProcess) -> None:
        try:
            server.start()
        except BaseException as exc:  # re-raised below, after every thread is joined
            errors.append(exc)

    threads = [threading.Thread(target=start, args=(s,)) for s in servers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    if errors:
        for server in servers:
            server.stop()
        raise errors[0]


def test_two_instances_never_process_one_upload_twice(
    shared_postgres: str, data_dir: Path, tmp_path: Path
) -> None:
    count = 24
    with _server(shared_postgres, data_dir, "loader") as loader, _client(loader) as c:
        uploads = [tus_upload(c, _photo(tmp_path, 10 + n)) for n in range(count)]
        wait_processed(c, uploads)

    # Both instances sweep often, so both find the queue once it fills.
    fast = {"TUSGALLERY_PROCESSING_SWEEP_SECONDS": "0.1"}
    servers = [_server(shared_postgres, data_dir, f"instance-{n}", **fast) for n in range(2)]
    _start_together(servers)
    try:
        # Every upload back in the queue at once, as if each had just completed.
        _set_rows(
            shared_postgres,
            uploads,
            status=UploadStatus.COMPLETE,
            processing_attempts=0,
            processing_started_at=None,
            result={},
        )
        with _client(servers[0]) as c:
            statuses = wait_processed(c, uploads, timeout=120)
    finally:
        for server in servers:
            server.stop()
    assert {s["status"] for s in statuses.values()} == {"ready"}
    assert {row.processing_attempts for row in _rows(shared_postgres, uploads).values()} == {1}

    per_instance = [
        [e for e in log_events(s.log_text(), "image_processed") if e["upload_id"] in statuses]
        for s in servers
    ]
    lines = [e for lines in per_instance for e in lines]
    assert Counter(e["upload_id"] for e in lines) == Counter(uploads)
    assert {e["result"] for e in lines} == {"ready"}
    # The race was real: each instance won some of the uploads.
    assert all(per_instance), [len(p) for p in per_instance]


def _descendants(pid: int) -> set[int]:
    found: set[int] = set()
    todo = [pid]
    while todo:
        parent = todo.pop()
        for children in Path(f"/proc/{parent}/task").glob("*/children"):
            with_ids = {int(child) for child in children.read_text().split()}
            todo.extend(with_ids - found)
            found |= with_ids
    return found


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def test_image_workers_die_with_a_killed_server(database_url: str, data_dir: Path) -> None:
    """kill -9 of the server leaves no pipeline process behind (they would pile up forever)."""
    server = _server(database_url, data_dir, "killed").start()
    assert server.proc is not None
    helpers = _descendants(server.proc.pid)
    # The forkserver, its image workers and multiprocessing's resource tracker.
    assert len(helpers) >= 3, helpers
    server.kill()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and any(_alive(pid) for pid in helpers):
        time.sleep(0.1)
    assert not [pid for pid in helpers if _alive(pid)]
