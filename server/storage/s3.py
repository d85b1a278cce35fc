"""S3 backend (boto3): one S3 multipart upload per tus upload, media as plain objects.

Key layout in the bucket:
    uploads/{upload_id}          the upload's object; target of its multipart upload, complete
                                 (readable) once `finish` or `concat` returned
    tails/{upload_id}/{start}    bytes past the last full part (fewer than `part_size`), where
                                 `start` is the upload offset of the tail's first byte
    media/{key}                  media objects (originals, derivatives)

The state dict persisted by the caller:
    mpu        the multipart UploadId (None once complete)
    parts      [[part_number, etag, size], ...] committed parts, every one `part_size` bytes
    tail       bytes in the tail object (offset = sum of part sizes + tail)
    stale_tail start of a tail object the last commit replaced, deleted by the next commit
    complete   True once uploads/{id} holds the whole upload

Why it is exact under crashes and rollbacks: the stored state only ever names parts and a tail
that a commit finished writing. A writer uploads new parts under part numbers past the committed
ones (a later writer overwrites those numbers) and writes its tail under a key named by where the
tail starts, so a tail written by a commit whose state was never persisted either has another
key or holds the committed tail as its prefix; the tail is always read with a byte range.

Reading an incomplete upload: S3 cannot read parts of an open multipart upload, so `read` serves
an incomplete upload only while it has no full part yet (it is all in its tail object); past
that it raises `PartialReadUnsupported`.

boto3 is synchronous: every call runs in a worker thread (anyio), never on the event loop.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import anyio.to_thread
import boto3
import botocore.config
import botocore.exceptions

from server.settings import Settings
from server.storage.base import (
    ChunkWriter,
    MediaObject,
    MediaStore,
    PartialReadUnsupported,
    StorageError,
    StorageState,
    UploadStore,
)
from server.storage.part_stream import PartStream, PartStreamCancelled

MiB = 1024 * 1024
MIN_PART = 5 * MiB  # S3's smallest part (all but the last)
MAX_COPY_PART = 5 * 1024 * MiB  # S3's largest UploadPartCopy range
READ_BLOCK = 1 * MiB
STREAM_THREADS = 64  # parts uploading while they arrive, over all uploads of an instance
T = TypeVar("T")


def make_client(settings: Settings, max_connections: int = 32, streaming: bool = False) -> Any:
    """A boto3 S3 client. `streaming=True` makes one for bodies that are still arriving while
    they are sent: their payload is not signed (the signature would need the whole body
    first) and nothing is retried (a body read once cannot be sent again)."""
    s3: dict[str, Any] = {"payload_signing_enabled": False} if streaming else {}
    if settings.s3_endpoint_url:
        # Path style works with any endpoint (IP, localhost); virtual hosts need DNS per bucket.
        s3["addressing_style"] = "path"
    config = botocore.config.Config(
        region_name=settings.s3_region or "us-east-1",
        signature_version="s3v4",
        s3=s3,
        max_pool_connections=max_connections,
        retries={"mode": "standard", "max_attempts": 1 if streaming else 4},
        connect_timeout=5,
        read_timeout=60,
        # Checksums only where S3 demands them: S3-compatible servers differ in what they
        # accept, and SigV4 already hashes the payload on plain HTTP.
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
    )
    return boto3.session.Session().client(
        "s3", endpoint_url=settings.s3_endpoint_url, config=config
    )


def _error_code(exc: BaseException) -> str:
    if isinstance(exc, botocore.exceptions.ClientError):
        return str(exc.response.get("Error", {}).get("Code", ""))
    return ""


async def _call(
    fn: Callable[..., T], /, *, limiter: anyio.CapacityLimiter | None = None, **kwargs: Any
) -> T:
    """Run one boto3 call in a worker thread; its failures become StorageError."""
    try:
        return await anyio.to_thread.run_sync(lambda: fn(**kwargs), limiter=limiter)
    except (
        botocore.exceptions.BotoCoreError,
        botocore.exceptions.ClientError,
        PartStreamCancelled,
    ) as exc:
        raise StorageError(f"S3 {getattr(fn, '__name__', 'call')} failed: {exc}") from exc


def _is_missing(exc: StorageError) -> bool:
    return _error_code(exc.__cause__ or exc) in ("NoSuchKey", "404", "NotFound", "NoSuchUpload")


async def _stream_object(
    client: Any, bucket: str, key: str, length: int | None = None
) -> AsyncIterator[bytes]:
    """The object's bytes (its first `length` bytes when given), one thread hop per block."""
    kwargs: dict[str, Any] = {"Bucket": bucket, "Key": key}
    if length is not None:
        if length == 0:
            return
        kwargs["Range"] = f"bytes=0-{length - 1}"
    try:
        response = await _call(client.get_object, **kwargs)
    except StorageError as exc:
        if _is_missing(exc):
            raise FileNotFoundError(key) from exc
        raise
    body = response["Body"]
    try:
        while True:
            block = await anyio.to_thread.run_sync(body.read, READ_BLOCK)
            if not block:
                return
            yield block
    finally:
        body.close()


class S3ChunkWriter(ChunkWriter):
    """Gathers bytes into parts of `part_size` and uploads up to `concurrency` of them at once.

    When the request said how long its body is (`expected`), the body's last full part is
    uploaded while it arrives (a `PartStream`), so the PATCH is answered soon after its last
    byte instead of one part upload later.

    Memory per writer: the part being gathered plus the parts in flight, at most
    (concurrency + 1) * part_size. Nothing touches local disk.
    """

    def __init__(
        self, store: S3UploadStore, upload_id: str, state: StorageState, expected: int | None
    ) -> None:
        self._store = store
        self._id = upload_id
        self._state = state
        self._expected = expected
        self._parts: list[list[Any]] = [list(part) for part in state["parts"]]
        # The bytes of the part being gathered, as they arrived (a list, not one growing
        # buffer: no copying on the receive path). The truth for a tail, or for a streamed
        # part whose upload failed.
        self._pieces: list[bytes] = []
        self._gathered = 0
        self._tail_loaded = state["tail"] == 0
        self._inflight: deque[asyncio.Task[list[Any] | None]] = deque()
        # The part being sent while it arrives, and where its bytes go once it is complete
        # (None: the body ended first).
        self._streaming: tuple[PartStream, asyncio.Future[list[bytes] | None]] | None = None
        self._failed: BaseException | None = None
        self.written = 0

    async def write(self, data: bytes) -> None:
        if self._failed is not None:
            raise StorageError("an earlier part upload failed") from self._failed
        if not data:
            return
        if not self._tail_loaded:
            self._gather(await self._store.read_tail(self._id, self._state))
            self._tail_loaded = True
        size = self._store.part_size
        pos = 0
        while pos < len(data):
            if self._gathered >= size:  # a tail kept under a larger part size
                await self._part_gathered()
                continue
            if self._streaming is None and self._is_last_full_part(len(data) - pos):
                await self._open_stream()
            piece = data[pos : pos + size - self._gathered]
            pos += len(piece)
            self.written += len(piece)
            self._gather(piece)
            if self._streaming is not None:
                self._streaming[0].feed(piece)
            if self._gathered == size:
                await self._part_gathered()

    def _is_last_full_part(self, left_in_data: int) -> bool:
        """Whether the part being gathered will fill and no full part follows it in this body:
        the one part whose upload would otherwise start only after the body ends. Earlier
        parts are gathered and go up while the rest of the body still arrives."""
        if self._expected is None or not self._store.streams_parts:
            return False
        still_coming = max(self._expected - self.written, left_in_data)
        size = self._store.part_size
        return size <= self._gathered + still_coming < 2 * size

    def _gather(self, piece: bytes) -> None:
        if piece:
            self._pieces.append(piece)
            self._gathered += len(piece)

    def _drop_gathered(self) -> list[bytes]:
        pieces, self._pieces, self._gathered = self._pieces, [], 0
        return pieces

    async def _open_stream(self) -> None:
        await self._make_room()
        number = self._next_number()
        stream = PartStream(self._store.part_size, self._store.stream_stall_seconds)
        for piece in self._pieces:
            stream.feed(piece)
        block: asyncio.Future[list[bytes] | None] = asyncio.get_running_loop().create_future()
        self._streaming = stream, block
        self._inflight.append(asyncio.create_task(self._upload_streamed(number, stream, block)))

    async def _upload_streamed(
        self, number: int, stream: PartStream, block: asyncio.Future[list[bytes] | None]
    ) -> list[Any] | None:
        """The part, or None when the body ended before it was complete (the writer keeps its
        bytes, and they become the tail)."""
        try:
            return await self._store.upload_part_stream(self._id, self._state, number, stream)
        except StorageError:
            pieces = await block
            if pieces is None:
                return None
            # Every byte came but the streamed request failed (S3 gave up on a slow body, a
            # dropped connection): the bytes are here, upload them the ordinary way.
            return await self._store.upload_part(self._id, self._state, number, b"".join(pieces))

    async def _part_gathered(self) -> None:
        if self._streaming is not None:
            self._streaming[1].set_result(self._drop_gathered())
            self._streaming = None
            return
        block = b"".join(self._drop_gathered())
        await self._make_room()
        number = self._next_number()
        self._inflight.append(
            asyncio.create_task(self._store.upload_part(self._id, self._state, number, block))
        )

    def _cut_stream(self) -> None:
        """The body ended inside a streamed part: drop its upload, keep its bytes."""
        if self._streaming is not None:
            stream, block = self._streaming
            stream.cancel()
            block.set_result(None)
            self._streaming = None

    def _next_number(self) -> int:
        return len(self._parts) + len(self._inflight) + 1

    async def _make_room(self) -> None:
        while len(self._inflight) >= self._store.write_concurrency:
            await self._settle_oldest()

    async def _settle_oldest(self) -> None:
        task = self._inflight.popleft()
        try:
            part = await task
        except BaseException as exc:
            self._failed = exc
            self._cut_stream()
            await self._drain()
            raise
        if part is not None:
            self._parts.append(part)

    async def _drain(self) -> None:
        """Wait for every part in flight (threads cannot be cancelled), keeping the first error."""
        while self._inflight:
            task = self._inflight.popleft()
            try:
                part = await task
            except BaseException as exc:  # remembered, raised by the caller
                self._failed = self._failed or exc
            else:
                if self._failed is None and part is not None:
                    self._parts.append(part)

    async def commit(self) -> StorageState:
        self._cut_stream()
        await self._drain()
        if self._failed is not None:
            raise StorageError("a part upload failed; nothing of this chunk was kept") from (
                self._failed
            )
        state = self._state
        if self.written == 0:
            return dict(state)
        old_start = _parts_size(state["parts"])
        start = _parts_size(self._parts)
        tail = b"".join(self._drop_gathered())
        if tail:
            await self._store.write_tail(self._id, start, tail)
        if state.get("stale_tail") is not None:
            # Persisted state named it stale, so no state that anyone can still load uses it.
            await self._store.delete_tail(self._id, state["stale_tail"])
        moved = start != old_start and state["tail"] > 0
        return {
            **state,
            "parts": self._parts,
            "tail": len(tail),
            "stale_tail": old_start if moved else None,
        }

    async def rollback(self) -> None:
        # Parts uploaded under new numbers stay in the multipart upload unreferenced and are
        # overwritten by the next writer; the committed tail object was never touched.
        self._failed = self._failed or StorageError("rolled back")
        self._cut_stream()
        await self._drain()
        self._drop_gathered()


def _parts_size(parts: list[list[Any]]) -> int:
    return sum(part[2] for part in parts)


def _offset(state: StorageState) -> int:
    return _parts_size(state["parts"]) + state["tail"]


class S3UploadStore(UploadStore):
    def __init__(
        self,
        client: Any,
        bucket: str,
        part_size: int = 8 * MiB,
        write_concurrency: int = 4,
        tmp_dir: Path | None = None,
        stream_client: Any | None = None,
        stream_stall_seconds: float = 60.0,
    ) -> None:
        """`stream_client` (see `make_client(streaming=True)`) uploads parts while their bytes
        arrive; without it every part is gathered first, then uploaded."""
        if part_size < MIN_PART:
            raise ValueError(f"part_size must be at least {MIN_PART} bytes")
        self.client = client
        self.bucket = bucket
        self.part_size = part_size
        self.write_concurrency = max(1, write_concurrency)
        self.tmp_dir = tmp_dir
        self.stream_client = stream_client
        self.stream_stall_seconds = stream_stall_seconds
        # A streamed part holds its thread while the client sends: a slow client must not
        # take the threads that every other call (database included) runs on.
        self._stream_threads = anyio.CapacityLimiter(STREAM_THREADS)

    @property
    def streams_parts(self) -> bool:
        return self.stream_client is not None

    def key(self, upload_id: str) -> str:
        return f"uploads/{upload_id}"

    def tail_key(self, upload_id: str, start: int) -> str:
        return f"tails/{upload_id}/{start}"

    async def create(self, upload_id: str) -> StorageState:
        response = await _call(
            self.client.create_multipart_upload, Bucket=self.bucket, Key=self.key(upload_id)
        )
        return {
            "mpu": response["UploadId"],
            "parts": [],
            "tail": 0,
            "stale_tail": None,
            "complete": False,
        }

    async def open_writer(
        self, upload_id: str, offset: int, state: StorageState, expected: int | None = None
    ) -> ChunkWriter:
        if state.get("complete"):
            raise StorageError("upload is already complete")
        if _offset(state) != offset:
            raise StorageError(f"stored state ends at {_offset(state)}, not at offset {offset}")
        return S3ChunkWriter(self, upload_id, state, expected)

    async def upload_part(
        self, upload_id: str, state: StorageState, number: int, block: bytes | bytearray
    ) -> list[Any]:
        return await self._upload_block(self.key(upload_id), state["mpu"], number, block)

    async def upload_part_stream(
        self, upload_id: str, state: StorageState, number: int, stream: PartStream
    ) -> list[Any]:
        response = await _call(
            self.stream_client.upload_part,
            limiter=self._stream_threads,
            Bucket=self.bucket,
            Key=self.key(upload_id),
            UploadId=state["mpu"],
            PartNumber=number,
            Body=stream,
            ContentLength=len(stream),
        )
        return [number, response["ETag"], len(stream)]

    async def read_tail(self, upload_id: str, state: StorageState) -> bytes:
        size = state["tail"]
        key = self.tail_key(upload_id, _parts_size(state["parts"]))
        blocks = [block async for block in _stream_object(self.client, self.bucket, key, size)]
        tail = b"".join(blocks)
        if len(tail) != size:
            raise StorageError(f"tail object {key} holds {len(tail)} bytes, state says {size}")
        return tail

    async def write_tail(self, upload_id: str, start: int, data: bytes) -> None:
        await _call(
            self.client.put_object,
            Bucket=self.bucket,
            Key=self.tail_key(upload_id, start),
            Body=data,
        )

    async def delete_tail(self, upload_id: str, start: int) -> None:
        await _call(
            self.client.delete_object, Bucket=self.bucket, Key=self.tail_key(upload_id, start)
        )

    async def finish(self, upload_id: str, length: int, state: StorageState) -> StorageState:
        if state.get("complete"):
            return state
        if _offset(state) != length:
            raise StorageError(f"stored state holds {_offset(state)} bytes, not {length}")
        key = self.key(upload_id)
        if await self._size(key) == length:
            # Finished by an instance that died before its caller saved the state: the
            # multipart upload and its tail are gone, the object is the upload.
            return _complete_state(length)
        parts = [list(part) for part in state["parts"]]
        if state["tail"]:
            # The last part may be small: copy the tail object in on the S3 side.
            start = _parts_size(parts)
            parts.append(
                await self._copy_part(
                    key,
                    state["mpu"],
                    len(parts) + 1,
                    self.tail_key(upload_id, start),
                    0,
                    state["tail"],
                )
            )
        await self._complete(key, state["mpu"], parts, length)
        await self._delete_prefix(f"tails/{upload_id}/")
        return _complete_state(length)

    async def _copy_part(
        self, key: str, mpu: str, number: int, source: str, first: int, size: int
    ) -> list[Any]:
        response = await _call(
            self.client.upload_part_copy,
            Bucket=self.bucket,
            Key=key,
            UploadId=mpu,
            PartNumber=number,
            CopySource={"Bucket": self.bucket, "Key": source},
            CopySourceRange=f"bytes={first}-{first + size - 1}",
        )
        return [number, response["CopyPartResult"]["ETag"], size]

    async def _complete(self, key: str, mpu: str, parts: list[list[Any]], length: int) -> None:
        if not parts:
            # S3 has no empty multipart upload: an empty upload is an empty object.
            await self._abort(key, mpu)
            await _call(self.client.put_object, Bucket=self.bucket, Key=key, Body=b"")
            return
        try:
            await _call(
                self.client.complete_multipart_upload,
                Bucket=self.bucket,
                Key=key,
                UploadId=mpu,
                MultipartUpload={
                    "Parts": [{"PartNumber": n, "ETag": etag} for n, etag, _size in parts]
                },
            )
        except StorageError as exc:
            # Completed meanwhile by a racing finish of the same state: success too.
            if not _is_missing(exc) or await self._size(key) != length:
                raise

    async def _size(self, key: str) -> int | None:
        try:
            response = await _call(self.client.head_object, Bucket=self.bucket, Key=key)
        except StorageError as exc:
            if _is_missing(exc):
                return None
            raise
        return int(response["ContentLength"])

    async def _abort(self, key: str, mpu: str | None) -> None:
        if not mpu:
            return
        try:
            await _call(
                self.client.abort_multipart_upload, Bucket=self.bucket, Key=key, UploadId=mpu
            )
        except StorageError as exc:
            if not _is_missing(exc):
                raise

    async def _delete_prefix(self, prefix: str) -> None:
        keys = [{"Key": key} for key, _when in await self._objects(prefix)]
        for first in range(0, len(keys), 1000):
            await _call(
                self.client.delete_objects,
                Bucket=self.bucket,
                Delete={"Objects": keys[first : first + 1000], "Quiet": True},
            )

    def read(self, upload_id: str, state: StorageState, offset: int) -> AsyncIterator[bytes]:
        if state.get("complete"):
            return _stream_object(self.client, self.bucket, self.key(upload_id), offset)
        if state["parts"] and offset > 0:
            raise PartialReadUnsupported("S3 cannot read an incomplete upload past its first part")
        return _stream_object(self.client, self.bucket, self.tail_key(upload_id, 0), offset)

    @asynccontextmanager
    async def local_path(
        self, upload_id: str, state: StorageState, length: int
    ) -> AsyncIterator[Path]:
        if not state.get("complete"):
            raise StorageError("only a complete upload has a file")
        fd, name = tempfile.mkstemp(prefix=f"{upload_id}-", dir=self.tmp_dir)
        os.close(fd)
        path = Path(name)
        try:
            await _call(
                self.client.download_file,
                Bucket=self.bucket,
                Key=self.key(upload_id),
                Filename=name,
            )
            yield path
        finally:
            path.unlink(missing_ok=True)

    async def concat(
        self, final_id: str, parts: list[tuple[str, StorageState, int]]
    ) -> StorageState:
        for part_id, state, _length in parts:
            if not state.get("complete"):
                raise StorageError(f"part {part_id} is not complete")
        key = self.key(final_id)
        mpu = (await _call(self.client.create_multipart_upload, Bucket=self.bucket, Key=key))[
            "UploadId"
        ]
        try:
            done = await self._concat_parts(key, mpu, parts)
            total = sum(length for _id, _state, length in parts)
            await self._complete(key, mpu, done, total)
        except BaseException:
            await self._abort(key, mpu)
            raise
        return _complete_state(total)

    async def _concat_parts(
        self, key: str, mpu: str, sources: list[tuple[str, StorageState, int]]
    ) -> list[list[Any]]:
        """Copy sources in on the S3 side where a piece can be a part of its own (>= 5 MiB);
        gather smaller pieces in memory (at most one part's worth) and upload them."""
        done: list[list[Any]] = []
        pending = bytearray()

        async def flush() -> None:
            done.append(await self._upload_block(key, mpu, len(done) + 1, bytes(pending)))
            pending.clear()

        for source_id, _state, length in sources:
            source = self.key(source_id)
            pos = 0
            while pos < length:
                remaining = length - pos
                if not pending and remaining >= MIN_PART:
                    size = min(remaining, MAX_COPY_PART)
                    done.append(await self._copy_part(key, mpu, len(done) + 1, source, pos, size))
                    pos += size
                    continue
                size = min(remaining, self.part_size - len(pending))
                pending += await self._read_range(source, pos, size)
                pos += size
                if len(pending) >= self.part_size:
                    await flush()
        if pending:
            await flush()
        return done

    async def _upload_block(
        self, key: str, mpu: str, number: int, block: bytes | bytearray
    ) -> list[Any]:
        response = await _call(
            self.client.upload_part,
            Bucket=self.bucket,
            Key=key,
            UploadId=mpu,
            PartNumber=number,
            Body=block,
        )
        return [number, response["ETag"], len(block)]

    async def _read_range(self, key: str, first: int, size: int) -> bytes:
        response = await _call(
            self.client.get_object,
            Bucket=self.bucket,
            Key=key,
            Range=f"bytes={first}-{first + size - 1}",
        )
        data: bytes = await anyio.to_thread.run_sync(response["Body"].read)
        if len(data) != size:
            raise StorageError(f"{key} is shorter than its recorded length")
        return data

    async def delete(self, upload_id: str, state: StorageState) -> None:
        key = self.key(upload_id)
        # Every multipart upload on the key, not only the one in `state`: an orphan has no
        # state, and a creation that died before saving its row left one nobody names.
        for mpu in {state.get("mpu"), *await self._multipart_ids(key)}:
            await self._abort(key, mpu)
        await _call(self.client.delete_object, Bucket=self.bucket, Key=key)
        await self._delete_prefix(f"tails/{upload_id}/")

    async def _multipart_ids(self, key: str) -> list[str]:
        return [mpu for found, mpu, _when in await self._multipart_uploads(key) if found == key]

    async def _multipart_uploads(self, prefix: str) -> list[tuple[str, str, float]]:
        """(key, UploadId, initiated) of the open multipart uploads under `prefix`."""
        found: list[tuple[str, str, float]] = []
        params: dict[str, str] = {}
        while True:
            page = await _call(
                self.client.list_multipart_uploads, Bucket=self.bucket, Prefix=prefix, **params
            )
            found += [
                (item["Key"], item["UploadId"], item["Initiated"].timestamp())
                for item in page.get("Uploads", [])
            ]
            if not page.get("IsTruncated"):
                return found
            params = {
                "KeyMarker": page["NextKeyMarker"],
                "UploadIdMarker": page["NextUploadIdMarker"],
            }

    async def _objects(self, prefix: str) -> list[tuple[str, float]]:
        """(key, last modified) of the objects under `prefix`."""
        found: list[tuple[str, float]] = []
        token: dict[str, str] = {}
        while True:
            page = await _call(
                self.client.list_objects_v2, Bucket=self.bucket, Prefix=prefix, **token
            )
            found += [
                (item["Key"], item["LastModified"].timestamp()) for item in page.get("Contents", [])
            ]
            if not page.get("IsTruncated"):
                return found
            token = {"ContinuationToken": page["NextContinuationToken"]}

    async def list_upload_ids(self, older_than_seconds: float) -> list[str]:
        """Uploads with anything in the bucket (multipart upload, object, tail), by the newest
        of their things: one touched recently is in use even when its multipart upload is old."""
        newest: dict[str, float] = {}

        def seen(upload_id: str, when: float) -> None:
            newest[upload_id] = max(when, newest.get(upload_id, when))

        for key, _mpu, when in await self._multipart_uploads("uploads/"):
            seen(key.removeprefix("uploads/"), when)
        for key, when in await self._objects("uploads/"):
            seen(key.removeprefix("uploads/"), when)
        for key, when in await self._objects("tails/"):
            seen(key.split("/")[1], when)
        cutoff = time.time() - older_than_seconds
        return sorted(upload_id for upload_id, when in newest.items() if when < cutoff)


def _complete_state(length: int) -> StorageState:
    return {
        "mpu": None,
        "parts": [],
        "tail": 0,
        "stale_tail": None,
        "complete": True,
        "size": length,
    }


class S3MediaStore(MediaStore):
    def __init__(self, client: Any, bucket: str, prefix: str = "media/") -> None:
        self.client = client
        self.bucket = bucket
        self.prefix = prefix

    def _key(self, key: str) -> str:
        if not key or key.startswith("/") or ".." in key.split("/"):
            raise StorageError(f"invalid media key {key!r}")
        return self.prefix + key

    async def put_file(self, key: str, path: Path, content_type: str) -> MediaObject:
        # upload_file switches to a parallel multipart upload for large files by itself.
        await _call(
            self.client.upload_file,
            Filename=str(path),
            Bucket=self.bucket,
            Key=self._key(key),
            ExtraArgs={"ContentType": content_type},
        )
        return MediaObject(key=key, size=path.stat().st_size, content_type=content_type)

    async def put_bytes(self, key: str, data: bytes, content_type: str) -> MediaObject:
        await _call(
            self.client.put_object,
            Bucket=self.bucket,
            Key=self._key(key),
            Body=data,
            ContentType=content_type,
        )
        return MediaObject(key=key, size=len(data), content_type=content_type)

    async def delete(self, key: str) -> None:
        await _call(self.client.delete_object, Bucket=self.bucket, Key=self._key(key))

    async def exists(self, key: str) -> bool:
        try:
            await _call(self.client.head_object, Bucket=self.bucket, Key=self._key(key))
        except StorageError as exc:
            if _is_missing(exc):
                return False
            raise
        return True

    def open(self, key: str) -> AsyncIterator[bytes]:
        return _stream_object(self.client, self.bucket, self._key(key))

    async def presigned_url(self, key: str, expires_seconds: int = 3600) -> str | None:
        # Signing is local computation, but botocore may load credentials on first use.
        return await anyio.to_thread.run_sync(
            lambda: self.client.generate_presigned_url(
                "get_object",
                Params={"Bucket": self.bucket, "Key": self._key(key)},
                ExpiresIn=expires_seconds,
            )
        )


def build_s3_stores(settings: Settings) -> tuple[S3UploadStore, S3MediaStore]:
    """Both stores on one client (its connection pool is shared and thread-safe)."""
    client = make_client(settings)
    tmp_dir = settings.data_dir / "tmp"
    tmp_dir.mkdir(parents=True, exist_ok=True)
    uploads = S3UploadStore(
        client,
        settings.s3_bucket,
        part_size=settings.s3_part_size,
        write_concurrency=settings.s3_write_concurrency,
        tmp_dir=tmp_dir,
        stream_client=(
            make_client(settings, max_connections=STREAM_THREADS, streaming=True)
            if settings.s3_stream_parts
            else None
        ),
        stream_stall_seconds=settings.read_timeout_seconds * 2,
    )
    return uploads, S3MediaStore(client, settings.s3_bucket)
