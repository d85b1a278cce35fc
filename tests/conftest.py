"""Shared fixtures: real databases (SQLite and PostgreSQL), real storage (local disk, S3 on a
SeaweedFS started once per session) and a real server per test module.

A module runs on the local backend only, on SQLite and PostgreSQL. A module that sets
`STORAGE_KINDS = ("local", "s3")` also runs on S3, paired with PostgreSQL: the production pairing,
and the one that keeps the count of server runs at three rather than four.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from server.settings import Settings
from server.storage import build_stores
from tests.support.databases import database
from tests.support.s3 import S3Server, s3_server_fixture  # noqa: F401 - session fixture
from tests.support.server import ServerProcess, server_env

DB_KINDS = ["sqlite", "postgres"]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Every test with a database runs on each DB kind; on S3 too where the module asks."""
    if "db_kind" not in metafunc.fixturenames or hasattr(metafunc.module, "db_kind"):
        return  # no database, or the module chose its own kind with a `db_kind` fixture
    kinds = getattr(metafunc.module, "STORAGE_KINDS", ("local",))
    if "s3" in kinds and "storage_kind" in metafunc.fixturenames:
        combos = [(db, "local") for db in DB_KINDS] + [("postgres", "s3")]
        metafunc.parametrize(
            ("db_kind", "storage_kind"),
            combos,
            scope="module",
            ids=[f"{db}-{storage}" for db, storage in combos],
        )
    else:
        metafunc.parametrize("db_kind", DB_KINDS, scope="module")


@pytest.fixture(scope="module")
def db_kind() -> str:
    raise RuntimeError("always parametrized by pytest_generate_tests")


@pytest.fixture(scope="module")
def storage_kind() -> str:
    return "local"


@pytest.fixture(scope="module")
def storage_env(storage_kind: str, request: pytest.FixtureRequest) -> dict[str, str]:
    """Server environment for the storage backend; S3 gets a bucket of its own per module."""
    if storage_kind == "local":
        return {"TUSGALLERY_STORAGE": "local"}
    s3: S3Server = request.getfixturevalue("s3_server")
    return s3.server_env(bucket=s3.new_bucket())


@pytest.fixture(scope="module")
def database_url(
    db_kind: str, storage_kind: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    # Keyed on the storage kind too, so postgres-local and postgres-s3 get a database each.
    with database(db_kind, tmp_path_factory.mktemp(f"db-{db_kind}-{storage_kind}")) as url:
        yield url


@pytest.fixture(scope="module")
def server(
    database_url: str, storage_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    """The app under uvicorn on a free port, on SQLite or PostgreSQL, local disk or S3
    (module-scoped)."""
    data = tmp_path_factory.mktemp("data")
    env = server_env(database_url, data, storage_env)
    proc = ServerProcess(env, log_path=data / "server.log")
    with proc:
        yield proc


@pytest.fixture
def client(server: ServerProcess) -> Iterator[httpx.Client]:
    # Redirects followed: S3 answers /media/ with a presigned URL (the token is not sent there).
    with httpx.Client(
        base_url=server.url, headers=server.auth, timeout=30, follow_redirects=True
    ) as c:
        yield c


def data_dir_of(server: ServerProcess) -> Path:
    return Path(server.env["TUSGALLERY_DATA_DIR"])


def stored_uploads(server: ServerProcess) -> set[str]:
    """Ids of the uploads the server's storage holds bytes for, whatever the backend."""
    uploads, _media = build_stores(Settings.from_env(server.env))
    # A negative age puts the cutoff in the future: every upload counts, even one just made.
    return set(asyncio.run(uploads.list_upload_ids(older_than_seconds=-3600)))
