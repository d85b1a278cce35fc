"""Local disk backend: one file per upload under DATA_DIR/uploads, media under DATA_DIR/media.

Chunk writes go straight to the page cache from the event loop: a write of one socket read
(tens of KiB) costs microseconds, far less than a thread hop would. The one expensive call,
fsync when the last byte lands, runs in a worker thread.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio.to_thread

from server.storage.base import (
    ChunkWriter,
    MediaObject,
    MediaStore,
    StorageError,
    StorageState,
    UploadStore,
)

READ_BLOCK = 1024 * 1024
_UPLOAD_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_MEDIA_KEY = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9._-]*(/[A-Za-z0-9_-][A-Za-z0-9._-]*)*$")


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _copy_exact(src: int, dst: int, length: int) -> None:
    """Copy `length` bytes between files in the kernel where it can (copy_file_range)."""
    remaining = length
    while remaining > 0:
        try:
            n = os.copy_file_range(src, dst, remaining)
        except OSError:
            block = os.read(src, min(READ_BLOCK, remaining))
            n = len(block)
            os.write(dst, block)
        if n == 0:
            raise StorageError("part is shorter than its recorded length")
        remaining -= n


async def _read_file(path: Path, limit: int | None = None) -> AsyncIterator[bytes]:
    with open(path, "rb") as f:  # the reads below run in a thread
        remaining = limit
        while remaining is None or remaining > 0:
            size = READ_BLOCK if remaining is None else min(READ_BLOCK, remaining)
            block = await anyio.to_thread.run_sync(f.read, size)
            if not block:
                return
            if remaining is not None:
                remaining -= len(block)
            yield block


class LocalChunkWriter(ChunkWriter):
    def __init__(self, fd: int, start: int) -> None:
        self._fd = fd
        self._start = start
        self.written = 0

    async def write(self, data: bytes) -> None:
        view = memoryview(data)
        try:
            while view:
                n = os.write(self._fd, view)
                view = view[n:]
                self.written += n
        except OSError as exc:
            raise StorageError(f"write failed: {exc.strerror}") from exc

    async def commit(self) -> StorageState:
        os.close(self._fd)
        return {}

    async def rollback(self) -> None:
        try:
            os.ftruncate(self._fd, self._start)
        finally:
            os.close(self._fd)


class LocalUploadStore(UploadStore):
    def __init__(self, root: Path) -> None:
        self.root = Path(root) / "uploads"
        self.root.mkdir(parents=True, exist_ok=True)

    def path(self, upload_id: str) -> Path:
        # Ids come from the tus layer already validated; refuse anything path-like regardless.
        if not _UPLOAD_ID.match(upload_id):
            raise StorageError(f"invalid upload id {upload_id!r}")
        return self.root / upload_id

    async def create(self, upload_id: str) -> StorageState:
        try:
            self.path(upload_id).touch(exist_ok=False)
        except OSError as exc:
            raise StorageError(f"cannot create upload file: {exc.strerror}") from exc
        return {}

    async def open_writer(
        self, upload_id: str, offset: int, state: StorageState, expected: int | None = None
    ) -> ChunkWriter:
        try:
            fd = os.open(self.path(upload_id), os.O_WRONLY)
        except FileNotFoundError as exc:
            raise StorageError("upload file is missing") from exc
        try:
            # Bytes past the committed offset were written by a request that died before it
            # could record them: drop them so the file always equals the recorded offset.
            if os.fstat(fd).st_size != offset:
                os.ftruncate(fd, offset)
            os.lseek(fd, offset, os.SEEK_SET)
        except OSError as exc:
            os.close(fd)
            raise StorageError(f"cannot open upload file: {exc.strerror}") from exc
        return LocalChunkWriter(fd, offset)

    async def finish(self, upload_id: str, length: int, state: StorageState) -> StorageState:
        path = self.path(upload_id)
        await anyio.to_thread.run_sync(_fsync_file, path)
        return state

    def read(self, upload_id: str, state: StorageState, offset: int) -> AsyncIterator[bytes]:
        return _read_file(self.path(upload_id), offset)

    @asynccontextmanager
    async def local_path(
        self, upload_id: str, state: StorageState, length: int
    ) -> AsyncIterator[Path]:
        yield self.path(upload_id)

    async def concat(
        self, final_id: str, parts: list[tuple[str, StorageState, int]]
    ) -> StorageState:
        target = self.path(final_id)
        sources = [(self.path(part_id), length) for part_id, _state, length in parts]

        def build() -> None:
            with open(target, "wb") as out:
                for source, length in sources:
                    with open(source, "rb") as src:
                        _copy_exact(src.fileno(), out.fileno(), length)
                out.flush()
                os.fsync(out.fileno())
            _fsync_dir(target.parent)

        await anyio.to_thread.run_sync(build)
        return {}

    async def delete(self, upload_id: str, state: StorageState) -> None:
        # In a thread: the file system frees a big file's blocks inside unlink (about 60 ms for
        # 256 MiB here, seen by py-spy in scripts/bench), which would stall every request.
        unlink = functools.partial(self.path(upload_id).unlink, missing_ok=True)
        await anyio.to_thread.run_sync(unlink)

    async def list_upload_ids(self, older_than_seconds: float) -> list[str]:
        def scan() -> list[str]:
            cutoff = time.time() - older_than_seconds
            return [
                entry.name
                for entry in os.scandir(self.root)
                if entry.is_file() and entry.stat().st_mtime < cutoff
            ]

        return await anyio.to_thread.run_sync(scan)


class LocalMediaStore(MediaStore):
    def __init__(self, root: Path) -> None:
        self.root = Path(root) / "media"
        self.root.mkdir(parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        if not _MEDIA_KEY.match(key) or ".." in key.split("/"):
            raise StorageError(f"invalid media key {key!r}")
        return self.root / key

    def file_path(self, key: str) -> Path | None:
        try:
            path = self._path(key)
        except StorageError:
            return None
        return path if path.is_file() else None

    async def put_file(self, key: str, path: Path, content_type: str) -> MediaObject:
        target = self._path(key)

        def copy() -> int:
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(f".{target.name}.tmp")
            shutil.copyfile(path, tmp)
            os.replace(tmp, target)  # readers never see half a file
            return target.stat().st_size

        size = await anyio.to_thread.run_sync(copy)
        return MediaObject(key=key, size=size, content_type=content_type)

    async def put_bytes(self, key: str, data: bytes, content_type: str) -> MediaObject:
        target = self._path(key)

        def write() -> None:
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(f".{target.name}.tmp")
            tmp.write_bytes(data)
            os.replace(tmp, target)

        await anyio.to_thread.run_sync(write)
        return MediaObject(key=key, size=len(data), content_type=content_type)

    async def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    async def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def open(self, key: str) -> AsyncIterator[bytes]:
        path = self._path(key)
        if not path.is_file():
            raise FileNotFoundError(key)
        return _read_file(path)
