"""Test databases: a SQLite file, or a fresh database in the machine's PostgreSQL."""

from __future__ import annotations

import secrets
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg

PG_ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/test"
PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/{name}"


def ensure_postgres_running() -> None:
    """The machine starts PostgreSQL before CI; if it is down anyway, start it."""
    try:
        psycopg.connect(PG_ADMIN_DSN, connect_timeout=3).close()
        return
    except psycopg.OperationalError:
        pass
    version = sorted(Path("/etc/postgresql").iterdir())[-1].name
    ctl = shutil.which("pg_ctlcluster") or "/usr/bin/pg_ctlcluster"
    subprocess.run([ctl, "--skip-systemctl-redirect", version, "main", "start"], check=True)
    psycopg.connect(PG_ADMIN_DSN, connect_timeout=10).close()


@contextmanager
def postgres_database() -> Iterator[str]:
    """A new, empty database for one test scope; dropped afterwards."""
    ensure_postgres_running()
    name = f"tusgallery_t_{secrets.token_hex(6)}"
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield PG_URL.format(name=name)
    finally:
        with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def sqlite_database(directory: Path) -> Iterator[str]:
    directory.mkdir(parents=True, exist_ok=True)
    yield f"sqlite:///{directory / 'tusgallery.db'}"


@contextmanager
def database(kind: str, directory: Path) -> Iterator[str]:
    if kind == "postgres":
        with postgres_database() as url:
            yield url
    else:
        with sqlite_database(directory) as url:
            yield url
