"""Per-upload locks shared by every instance on one PostgreSQL: session advisory locks.

A hold keeps one connection with `pg_advisory_lock(key)` for the length of the request; if the
instance dies, PostgreSQL drops its connections and with them the locks. A newcomer asks the
holder to stop wherever it runs: directly when the holder is in this process, else with
`NOTIFY tusgallery_lock_release, '<upload id>'`, which every instance LISTENs for. Then it polls
`pg_try_advisory_lock` until the holder lets go or the timeout passes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import psycopg
from sqlalchemy.engine import make_url

from server.locks import TAKEN_OVER, Locker, LockTimeout, UploadLock

log = logging.getLogger("tusgallery.locks")

CHANNEL = "tusgallery_lock_release"
_POLL_SECONDS = (0.005, 0.01, 0.02, 0.05)  # growing gaps between tries, then 50 ms


def lock_key(upload_id: str) -> int:
    """A stable signed 64-bit key for the upload (ids are hex; 60 bits make clashes moot)."""
    return int(upload_id[:15], 16)


def libpq_dsn(database_url: str) -> str:
    url = make_url(database_url).set(drivername="postgresql")
    return url.render_as_string(hide_password=False)


class PostgresLocker(Locker):
    def __init__(self, database_url: str, pool_size: int = 16) -> None:
        super().__init__()
        self._dsn = libpq_dsn(database_url)
        self._idle: list[psycopg.AsyncConnection] = []
        self._pool_size = pool_size
        self._listener: asyncio.Task[None] | None = None
        self._listening = asyncio.Event()

    async def _connection(self) -> psycopg.AsyncConnection:
        while self._idle:
            conn = self._idle.pop()
            if not conn.closed:
                return conn
        return await psycopg.AsyncConnection.connect(self._dsn, autocommit=True)

    async def _give_back(self, conn: psycopg.AsyncConnection) -> None:
        if conn.closed or len(self._idle) >= self._pool_size:
            await conn.close()
        else:
            self._idle.append(conn)

    def _ensure_listener(self) -> None:
        if self._listener is None or self._listener.done():
            self._listening.clear()
            self._listener = asyncio.create_task(self._listen(), name="lock-release-listener")

    async def _listen(self) -> None:
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(
                    self._dsn, autocommit=True
                ) as conn:
                    await conn.execute(f"LISTEN {CHANNEL}")
                    self._listening.set()
                    async for notify in conn.notifies():
                        holder = self._held.get(notify.payload)
                        if holder is not None:
                            holder.request_stop(TAKEN_OVER)
            except asyncio.CancelledError:
                raise
            except Exception:
                self._listening.clear()
                log.warning("lock listener lost its connection; reconnecting", exc_info=True)
                await asyncio.sleep(0.5)

    @asynccontextmanager
    async def hold(self, upload_id: str, timeout: float) -> AsyncIterator[UploadLock]:
        self._ensure_listener()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        key = lock_key(upload_id)
        # A holder in this process is asked directly and awaited without touching the DB.
        while (local := self._held.get(upload_id)) is not None:
            local.request_stop(TAKEN_OVER)
            try:
                async with asyncio.timeout_at(deadline):
                    await local.released.wait()
            except TimeoutError:
                raise LockTimeout(upload_id) from None
        lock = UploadLock(upload_id)
        self._held[upload_id] = lock  # claims the id in this process while we wait
        conn = await self._connection()
        acquired = False
        try:
            notified = False
            attempt = 0
            while True:
                cur = await conn.execute("SELECT pg_try_advisory_lock(%s)", (key,))
                row = await cur.fetchone()
                if row is not None and row[0]:
                    acquired = True
                    break
                if not notified:
                    await conn.execute("SELECT pg_notify(%s, %s)", (CHANNEL, upload_id))
                    notified = True
                pause = _POLL_SECONDS[min(attempt, len(_POLL_SECONDS) - 1)]
                attempt += 1
                if loop.time() + pause > deadline:
                    raise LockTimeout(upload_id)
                await asyncio.sleep(pause)
            yield lock
        finally:
            if self._held.get(upload_id) is lock:
                del self._held[upload_id]
            try:
                if acquired:
                    await conn.execute("SELECT pg_advisory_unlock(%s)", (key,))
                await self._give_back(conn)
            except psycopg.Error:
                # A broken connection drops its locks with it.
                with contextlib.suppress(psycopg.Error):
                    await conn.close()
            lock.released.set()

    async def close(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener
        for conn in self._idle:
            await conn.close()
        self._idle.clear()
