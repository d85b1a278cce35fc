"""Shared fixtures: real databases (SQLite and PostgreSQL) and a real server per test module."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.databases import database
from tests.support.server import ServerProcess, server_env

DB_KINDS = ["sqlite", "postgres"]


@pytest.fixture(scope="module", params=DB_KINDS)
def db_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="module")
def database_url(db_kind: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with database(db_kind, tmp_path_factory.mktemp(f"db-{db_kind}")) as url:
        yield url


@pytest.fixture(scope="module")
def server(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """The app under uvicorn on a free port, on SQLite or PostgreSQL (module-scoped)."""
    data = tmp_path_factory.mktemp("data")
    proc = ServerProcess(server_env(database_url, data), log_path=data / "server.log")
    with proc:
        yield proc


@pytest.fixture
def client(server: ServerProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, headers=server.auth, timeout=30) as c:
        yield c


def data_dir_of(server: ServerProcess) -> Path:
    return Path(server.env["TUSGALLERY_DATA_DIR"])
