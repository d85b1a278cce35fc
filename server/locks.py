"""Per-upload locks.

Only one request writes an upload at a time. A newcomer does not queue behind a stale holder (a
phone that went into a tunnel keeps its PATCH open for a long time): it asks the holder to stop;
the holder saves what it has and lets go; the newcomer goes on. If the lock cannot be had within
the timeout the newcomer fails with `LockTimeout` (HTTP 423).

`LocalLocker` serves one process. `PostgresLocker` (server/locks_pg.py) holds PostgreSQL
advisory locks so any instance may take any chunk.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

#: Stop reason given to every holder when the process is shutting down.
SHUTTING_DOWN = "the server is shutting down"
TAKEN_OVER = "another request took over this upload"


class LockTimeout(Exception):
    """The lock was not released in time."""


class UploadLock:
    """A held lock. The holder watches `stop_requested` and registers callbacks to be woken."""

    def __init__(self, upload_id: str) -> None:
        self.upload_id = upload_id
        self.stop_reason: str | None = None
        self.released = asyncio.Event()
        self._listeners: list[Callable[[], None]] = []

    @property
    def stop_requested(self) -> bool:
        return self.stop_reason is not None

    def request_stop(self, reason: str) -> None:
        """Ask the holder to save what it has and release. Runs on the event loop."""
        if self.stop_reason is None:
            self.stop_reason = reason
        for callback in list(self._listeners):
            callback()

    def on_stop(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Call `callback` when a stop is requested; returns a function that unregisters it."""
        self._listeners.append(callback)
        if self.stop_requested:
            callback()
        return lambda: self._listeners.remove(callback)


class Locker(ABC):
    #: True when every request for an upload is served by this one process (so nothing but
    #: this process changes an incomplete upload's row); the tus handler relies on it to reuse
    #: the row it just wrote instead of reading it back.
    serves_one_process: bool = False

    def __init__(self) -> None:
        # Locks held by requests of this process (for stop requests and graceful shutdown).
        self._held: dict[str, UploadLock] = {}

    @abstractmethod
    def hold(self, upload_id: str, timeout: float) -> AbstractAsyncContextManager[UploadLock]:
        """Hold the upload's lock for the `async with` block, or raise `LockTimeout`."""

    def stop_all(self, reason: str = SHUTTING_DOWN) -> None:
        """Ask every holder in this process to stop (graceful shutdown)."""
        for lock in list(self._held.values()):
            lock.request_stop(reason)

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections and background tasks."""


class LocalLocker(Locker):
    """In-process locks: enough for a single instance."""

    serves_one_process = True

    @asynccontextmanager
    async def hold(self, upload_id: str, timeout: float) -> AsyncIterator[UploadLock]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while (holder := self._held.get(upload_id)) is not None:
            holder.request_stop(TAKEN_OVER)
            try:
                async with asyncio.timeout_at(deadline):
                    await holder.released.wait()
            except TimeoutError:
                raise LockTimeout(upload_id) from None
        lock = UploadLock(upload_id)
        self._held[upload_id] = lock
        try:
            yield lock
        finally:
            if self._held.get(upload_id) is lock:
                del self._held[upload_id]
            lock.released.set()
