"""Database engine and sessions (SQLModel on SQLite or PostgreSQL).

The app is async but the DB layer is plain synchronous SQLAlchemy: every call runs in a worker
thread through `Database.run`, so the event loop never waits on the database. That keeps one code
path for SQLite (embedded default) and PostgreSQL (production) and lets tests hit both for real.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import anyio.to_thread
from sqlalchemy import event
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.types import DateTime, TypeDecorator
from sqlmodel import Session, create_engine

T = TypeVar("T")


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class UTCDateTime(TypeDecorator[dt.datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite drops the zone otherwise)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(dt.UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy own transaction boundaries (pysqlite's implicit BEGIN is broken for
        # SAVEPOINT and for taking the write lock up front).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        # WAL: readers never block the writer; NORMAL: no fsync per commit (WAL stays durable
        # against process crashes, which is what a chunk's offset needs).
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=10000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        # IMMEDIATE takes the write lock at BEGIN, so two writers queue on busy_timeout instead
        # of deadlocking when both upgrade from a read lock.
        conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.info.get("write") else "BEGIN")


def make_engine(database_url: str) -> Engine:
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        if url.database and url.database != ":memory:":
            Path(url.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url, connect_args={"check_same_thread": False, "timeout": 10}, pool_size=8
        )
        _configure_sqlite(engine)
        return engine
    return create_engine(url, pool_size=10, max_overflow=20, pool_pre_ping=True)


class Database:
    """Owns the engine; hands out sessions and runs blocking DB work off the event loop."""

    def __init__(self, database_url: str) -> None:
        self.url = database_url
        self.engine = make_engine(database_url)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @contextmanager
    def session(self, *, write: bool = False) -> Iterator[Session]:
        """A session in one transaction: committed on success, rolled back on error.

        `write=True` takes SQLite's write lock at BEGIN (no effect on PostgreSQL).
        """
        with self.engine.connect() as conn:
            # Read by the "begin" listener; info belongs to the pooled DBAPI connection, so it
            # is set on every checkout.
            conn.info["write"] = write
            with Session(bind=conn, expire_on_commit=False) as session:
                try:
                    yield session
                    session.commit()
                except BaseException:
                    session.rollback()
                    raise

    async def run(self, fn: Callable[[Session], T], *, write: bool = False) -> T:
        """Run `fn(session)` in a worker thread inside one transaction."""

        def call() -> T:
            with self.session(write=write) as session:
                return fn(session)

        return await anyio.to_thread.run_sync(call)

    def dispose(self) -> None:
        self.engine.dispose()
