"""The storage interfaces: upload bytes (tus) and media objects (derivatives, originals).

Backends (local disk, S3) implement these and pass the same test suite. Nothing here knows HTTP:
the tus handler decides offsets and statuses, a backend only keeps bytes where it is told.

Each upload has a small JSON-able `state` dict owned by its backend (for S3: the multipart upload
id and its parts). The caller persists it next to the upload's offset in the database and hands it
back on every call, so any instance can continue an upload another instance started.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

StorageState = dict[str, Any]


class StorageError(Exception):
    """The backend could not do what was asked (I/O error, S3 error, disk full)."""


class PartialReadUnsupported(StorageError):
    """The backend cannot read this incomplete upload back (S3: parts of an open multipart
    upload are not readable). Raised by `read` before any byte is sent."""


class ChunkWriter(ABC):
    """Appends one PATCH body to an upload, starting at the upload's current offset.

    `write` may keep bytes in a bounded buffer. `commit` keeps everything written so far and
    returns the new state; `rollback` forgets everything this writer wrote, leaving the stored
    upload exactly as it was when the writer was opened (checksum mismatch, body too long).
    Exactly one of them is called, once.
    """

    #: bytes written through this writer so far
    written: int = 0

    @abstractmethod
    async def write(self, data: bytes) -> None: ...

    @abstractmethod
    async def commit(self) -> StorageState: ...

    @abstractmethod
    async def rollback(self) -> None: ...


class UploadStore(ABC):
    """Bytes of tus uploads, keyed by upload id."""

    @abstractmethod
    async def create(self, upload_id: str) -> StorageState:
        """Prepare an empty upload and return its initial state."""

    @abstractmethod
    async def open_writer(
        self, upload_id: str, offset: int, state: StorageState, expected: int | None = None
    ) -> ChunkWriter:
        """A writer that appends at `offset`, the last committed offset.

        Bytes a crashed writer left past `offset` are discarded first, so a resumed upload
        is exact whatever the previous process managed to write. `expected` is how many bytes
        the request says it will send (Content-Length), a hint: the body may end sooner.
        """

    @abstractmethod
    async def finish(self, upload_id: str, length: int, state: StorageState) -> StorageState:
        """Called once the last byte is committed: make the whole upload durable."""

    @abstractmethod
    def read(self, upload_id: str, state: StorageState, offset: int) -> AsyncIterator[bytes]:
        """Stream the first `offset` bytes of the upload (what is stored so far).

        Raises PartialReadUnsupported (at once, not while iterating) when the backend cannot
        read an incomplete upload back; a complete upload is always readable.
        """

    @abstractmethod
    def local_path(
        self, upload_id: str, state: StorageState, length: int
    ) -> AbstractAsyncContextManager[Path]:
        """A local file holding the complete upload, for the image pipeline to decode.

        The local backend yields its own file; a remote backend downloads to a temporary file
        that is removed when the context ends.
        """

    @abstractmethod
    async def concat(
        self, final_id: str, parts: list[tuple[str, StorageState, int]]
    ) -> StorageState:
        """Build upload `final_id` from completed parts `(upload_id, state, length)`, in order.

        The final upload is complete and durable when this returns.
        """

    @abstractmethod
    async def delete(self, upload_id: str, state: StorageState) -> None:
        """Remove the upload's bytes. Deleting what is already gone is not an error."""

    @abstractmethod
    async def list_upload_ids(self, older_than_seconds: float) -> list[str]:
        """Ids of stored uploads last touched more than `older_than_seconds` ago."""

    async def remove_orphans(
        self,
        known: Callable[[Iterable[str]], Awaitable[set[str]]],
        older_than_seconds: float = 3600,
    ) -> int:
        """Delete stored uploads that `known` (the database) has no row for.

        The age guard spares an upload created a moment ago whose row is not committed yet.
        """
        removed = 0
        ids = await self.list_upload_ids(older_than_seconds)
        for start in range(0, len(ids), 500):
            batch = ids[start : start + 500]
            rows = await known(batch)
            for upload_id in batch:
                if upload_id not in rows:
                    await self.delete(upload_id, {})
                    removed += 1
        return removed

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release clients and pools."""


@dataclass(frozen=True)
class MediaObject:
    key: str
    size: int
    content_type: str


class MediaStore(ABC):
    """Named objects: originals and derivatives of gallery images."""

    @abstractmethod
    async def put_file(self, key: str, path: Path, content_type: str) -> MediaObject: ...

    @abstractmethod
    async def put_bytes(self, key: str, data: bytes, content_type: str) -> MediaObject: ...

    @abstractmethod
    async def delete(self, key: str) -> None:
        """Remove an object. Deleting what is already gone is not an error."""

    @abstractmethod
    async def exists(self, key: str) -> bool: ...

    @abstractmethod
    def open(self, key: str) -> AsyncIterator[bytes]:
        """Stream an object's bytes (raises FileNotFoundError when absent)."""

    def file_path(self, key: str) -> Path | None:
        """The object's local file, when the backend keeps one (served with sendfile)."""
        return None

    async def presigned_url(self, key: str, expires_seconds: int = 3600) -> str | None:
        """A URL a browser can GET directly, when the backend offers one."""
        return None

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release clients and pools."""
