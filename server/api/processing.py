"""The image pipeline runner: uploads go `complete` → `processing` → `ready` | `failed`.

tus calls `upload_completed` once an upload's last byte is stored; that only queues the id, so
the PATCH is answered at once. Consumer tasks claim queued uploads with a guarded UPDATE (only a
`complete` row, or a `processing` row whose claim went stale, can be claimed, so each upload is
processed once however many instances and retries race), decode them in a process pool (Pillow
holds the GIL; processes use every core and a crashing decoder takes only its worker down), store
the derivatives in the media store and record the result, again guarded by the claim.

A periodic sweep finds what no hook announced: uploads completed while no instance ran, and
claims whose worker died. After `MAX_ATTEMPTS` claims an upload is failed for good.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import mimetypes
import multiprocessing
import os
import tempfile
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import or_, update
from sqlmodel import Session, col, select

from server.api.common import log_event
from server.db import utcnow
from server.models import Upload, UploadStatus

if TYPE_CHECKING:
    from server.images import ProcessedImage
    from server.services import Services

MAX_ATTEMPTS = 3
SWEEP_BATCH = 500


@dataclass(frozen=True)
class Claim:
    upload_id: str
    attempt: int
    length: int
    storage_state: dict[str, Any]


@dataclass(frozen=True)
class Rejection:
    code: str
    reason: str


# The bytes `images.sniff` looks at (its own _SNIFF_BYTES; that module imports Pillow, which
# stays out of the server process).
HEAD_BYTES = 4096


def check_head(head: bytes) -> Rejection | None:
    """Runs in a pool process: refuses a file that is no accepted image by its first bytes, so
    a video or a zip is failed without being copied out of storage first."""
    from server.images import ImageRejected, sniff

    try:
        sniff(head)
    except ImageRejected as exc:
        return Rejection(exc.code, str(exc))
    return None


def run_pipeline(src: str, out_dir: str, max_pixels: int) -> ProcessedImage | Rejection:
    """Runs in a pool process: the only place that imports the Pillow pipeline."""
    from server.images import ImageRejected, process_image

    try:
        return process_image(Path(src), Path(out_dir), max_pixels=max_pixels)
    except ImageRejected as exc:
        return Rejection(exc.code, str(exc))


def _end_with_server(server_alive: Connection) -> None:
    """Pool initializer: the worker exits as soon as the server process is gone.

    Workers are children of the forkserver, and every one of them holds the pool's own pipes, so
    after a kill -9 of the server nothing else would ever tell them to stop. Only the server holds
    the write end of `server_alive`: the kernel closes it when the server dies, however it dies.
    """

    def watch() -> None:
        with contextlib.suppress(EOFError, OSError):
            while True:
                server_alive.recv_bytes()
        os._exit(0)

    threading.Thread(target=watch, name="server-watch", daemon=True).start()


def _warm_up() -> None:
    import server.images  # noqa: F401 - the first real job should not pay for the import


def _not_partial() -> Any:
    return or_(col(Upload.concat).is_(None), col(Upload.concat) != "partial")


def _claimable(stale_before: dt.datetime) -> Any:
    return (
        _not_partial(),
        col(Upload.processing_attempts) < MAX_ATTEMPTS,
        or_(
            col(Upload.status) == UploadStatus.COMPLETE,
            (col(Upload.status) == UploadStatus.PROCESSING)
            & (col(Upload.processing_started_at) < stale_before),
        ),
    )


def _owned_by(claim: Claim) -> Any:
    return (
        col(Upload.id) == claim.upload_id,
        col(Upload.status) == UploadStatus.PROCESSING,
        col(Upload.processing_attempts) == claim.attempt,
    )


def _extension(path: Path, content_type: str) -> str:
    return path.suffix or mimetypes.guess_extension(content_type) or ".bin"


class ImageProcessor:
    def __init__(self, services: Services) -> None:
        self._svc = services
        self._queue: asyncio.Queue[str] = asyncio.Queue()
        # Ids queued or being processed here: the sweep and the hook never double-queue one.
        self._pending: set[str] = set()
        self._in_flight: dict[str, Claim] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._pool: ProcessPoolExecutor | None = None
        # Pipe whose write end only this process holds: workers watch it to die with the server.
        self._server_alive: Connection | None = None
        self._server_alive_reader: Connection | None = None
        self._workers = services.settings.image_workers
        stale = services.settings.processing_stale_seconds
        self._stale = dt.timedelta(seconds=stale)
        self.sweep_interval = services.settings.processing_sweep_seconds or min(
            30.0, max(0.5, stale / 4)
        )

    # --- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        self._pool = self._new_pool()
        loop = asyncio.get_running_loop()
        await asyncio.gather(
            *(loop.run_in_executor(self._pool, _warm_up) for _ in range(self._workers))
        )
        # Twice as many consumers as processes: while one waits on the database or storage,
        # another keeps the process busy.
        for _ in range(self._workers * 2):
            self._tasks.append(asyncio.create_task(self._consume()))
        self._tasks.append(asyncio.create_task(self._sweep_forever()))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        # Work cut short goes back to the queue in the database for whichever instance runs next.
        for claim in list(self._in_flight.values()):
            with contextlib.suppress(Exception):
                await self._release(claim)
        self._in_flight.clear()
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None
        for end in (self._server_alive, self._server_alive_reader):
            if end is not None:
                end.close()
        self._server_alive = self._server_alive_reader = None

    async def upload_completed(self, upload_id: str) -> None:
        """tus hook: the upload's bytes are all stored. Queues it and returns at once."""
        self._enqueue(upload_id)

    # --- queue -----------------------------------------------------------------------------

    def _new_pool(self) -> ProcessPoolExecutor:
        # forkserver: the server process has threads (DB pool, anyio workers); forking it
        # could copy a held lock into a child.
        context = multiprocessing.get_context("forkserver")
        if self._server_alive is None:
            reader, self._server_alive = context.Pipe(duplex=False)
            self._server_alive_reader = reader
        return ProcessPoolExecutor(
            max_workers=self._workers,
            mp_context=context,
            initializer=_end_with_server,
            initargs=(self._server_alive_reader,),
        )

    def _replace_broken_pool(self) -> None:
        pool = self._pool
        if pool is not None and getattr(pool, "_broken", False):
            self._pool = self._new_pool()
            pool.shutdown(wait=False, cancel_futures=True)

    def _enqueue(self, upload_id: str) -> None:
        if upload_id not in self._pending:
            self._pending.add(upload_id)
            self._queue.put_nowait(upload_id)

    async def _consume(self) -> None:
        while True:
            upload_id = await self._queue.get()
            try:
                await self.process(upload_id)
            except Exception as exc:
                log_event("image_process_error", upload_id=upload_id, error=repr(exc))
            finally:
                self._pending.discard(upload_id)

    async def _sweep_forever(self) -> None:
        while True:
            try:
                await self.sweep()
            except Exception as exc:
                log_event("image_sweep_error", error=repr(exc))
            await asyncio.sleep(self.sweep_interval)

    async def sweep(self) -> None:
        """Queue uploads no hook announced and stale claims; fail those out of attempts."""
        stale_before = utcnow() - self._stale

        def find(session: Session) -> list[str]:
            session.execute(
                update(Upload)
                .where(
                    col(Upload.status) == UploadStatus.PROCESSING,
                    col(Upload.processing_started_at) < stale_before,
                    col(Upload.processing_attempts) >= MAX_ATTEMPTS,
                )
                .values(
                    status=UploadStatus.FAILED,
                    error_code="processing_crashed",
                    error=f"processing did not finish in {MAX_ATTEMPTS} attempts",
                    updated_at=utcnow(),
                )
            )
            query = select(Upload.id).where(*_claimable(stale_before)).limit(SWEEP_BATCH)
            return list(session.exec(query))

        for upload_id in await self._svc.db.run(find, write=True):
            self._enqueue(upload_id)

    # --- one upload ------------------------------------------------------------------------

    async def _claim(self, upload_id: str) -> Claim | None:
        now = utcnow()

        def claim(session: Session) -> Claim | None:
            claimed = session.execute(
                update(Upload)
                .where(col(Upload.id) == upload_id, *_claimable(now - self._stale))
                .values(
                    status=UploadStatus.PROCESSING,
                    processing_started_at=now,
                    processing_attempts=col(Upload.processing_attempts) + 1,
                    updated_at=now,
                )
            )
            if claimed.rowcount != 1:  # type: ignore[attr-defined]
                return None
            upload = session.get(Upload, upload_id)
            assert upload is not None and upload.length is not None
            return Claim(
                upload_id, upload.processing_attempts, upload.length, dict(upload.storage_state)
            )

        return await self._svc.db.run(claim, write=True)

    async def _finish(self, claim: Claim, **values: Any) -> bool:
        def finish(session: Session) -> bool:
            done = session.execute(
                update(Upload).where(*_owned_by(claim)).values(updated_at=utcnow(), **values)
            )
            return bool(done.rowcount == 1)  # type: ignore[attr-defined]

        return await self._svc.db.run(finish, write=True)

    async def _release(self, claim: Claim) -> None:
        await self._finish(claim, status=UploadStatus.COMPLETE)

    async def process(self, upload_id: str) -> None:
        claim = await self._claim(upload_id)
        if claim is None:
            return  # not ours: another worker has it, or it is not waiting for processing
        started = time.perf_counter()
        self._in_flight[upload_id] = claim
        outcome: dict[str, Any] = {"result": "released"}
        try:
            outcome = await self._run(claim)
        except asyncio.CancelledError:
            # Shutdown: give the claim back for whichever instance runs next.
            await asyncio.shield(self._release(claim))
            raise
        except BrokenProcessPool:
            # A decoder crash took the pool down: the claim counted as an attempt; retry
            # on a fresh pool until MAX_ATTEMPTS.
            await self._release(claim)
            self._replace_broken_pool()
            outcome = {"result": "released", "error": "worker crashed"}
        except Exception as exc:
            await self._release(claim)
            outcome = {"result": "released", "error": repr(exc)}
        finally:
            self._in_flight.pop(upload_id, None)
            log_event(
                "image_processed",
                upload_id=upload_id,
                attempt=claim.attempt,
                ms=round((time.perf_counter() - started) * 1000, 1),
                **outcome,
            )

    async def _run(self, claim: Claim) -> dict[str, Any]:
        svc = self._svc
        assert self._pool is not None
        loop = asyncio.get_running_loop()
        tmp_root = svc.settings.data_dir / "tmp"
        tmp_root.mkdir(parents=True, exist_ok=True)
        head = b"".join(
            [
                block
                async for block in svc.uploads.read(
                    claim.upload_id, claim.storage_state, min(claim.length, HEAD_BYTES)
                )
            ]
        )
        refused = await loop.run_in_executor(self._pool, check_head, head)
        if refused is not None:
            return {**await self._reject(claim, refused), "refused_by": "first_bytes"}
        async with svc.uploads.local_path(
            claim.upload_id, claim.storage_state, claim.length
        ) as src:
            with tempfile.TemporaryDirectory(dir=tmp_root) as out_dir:
                found = await loop.run_in_executor(
                    self._pool, run_pipeline, str(src), out_dir, svc.settings.max_image_pixels
                )
                if isinstance(found, Rejection):
                    return await self._reject(claim, found)
                result = await self._store(claim, found)
        if not await self._finish(claim, status=UploadStatus.READY, result=result):
            # Our claim was taken over (we were too slow) or the upload was terminated:
            # the winner's derivatives are under its own attempt's keys, ours are orphans.
            for derivative in result["derivatives"].values():
                await svc.media.delete(derivative["key"])
            return {"result": "lost_claim"}
        return {"result": "ready", "width": found.width, "height": found.height}

    async def _reject(self, claim: Claim, rejection: Rejection) -> dict[str, Any]:
        await self._finish(
            claim,
            status=UploadStatus.FAILED,
            error_code=rejection.code,
            error=rejection.reason,
            result={},
        )
        return {"result": "failed", "error_code": rejection.code}

    async def _store(self, claim: Claim, found: ProcessedImage) -> dict[str, Any]:
        derivatives: dict[str, Any] = {}
        for d in found.derivatives:
            suffix = _extension(Path(d.path), d.content_type)
            key = f"{claim.upload_id}/{claim.attempt}/{d.name}{suffix}"
            await self._svc.media.put_file(key, Path(d.path), d.content_type)
            derivatives[d.name] = {
                "key": key,
                "width": d.width,
                "height": d.height,
                "content_type": d.content_type,
                "size": d.size,
            }
        return {
            "content_type": found.content_type,
            "width": found.width,
            "height": found.height,
            "size": found.size,
            "sha256": found.sha256,
            "attempt": claim.attempt,
            "derivatives": derivatives,
        }
