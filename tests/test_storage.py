"""The storage contract: every backend (local disk; S3 on a real SeaweedFS) passes the same tests.

S3 runs with the smallest part size S3 allows (5 MiB) so that a few MiB of data already cross
part boundaries; everything stays at tens of MiB in total.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from server.storage import (
    MediaStore,
    PartialReadUnsupported,
    StorageError,
    StorageState,
    UploadStore,
    build_stores,
)
from server.storage.part_stream import PartStream
from server.storage.s3 import S3UploadStore
from tests.support.s3 import S3Server

MiB = 1024 * 1024
PART = 5 * MiB

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(params=["local", "s3"])
def stores(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[tuple[UploadStore, MediaStore]]:
    if request.param == "local":
        from server.settings import Settings

        yield build_stores(Settings(data_dir=tmp_path))
        return
    server: S3Server = request.getfixturevalue("s3_server")
    yield build_stores(
        server.settings(TUSGALLERY_DATA_DIR=str(tmp_path), TUSGALLERY_S3_PART_SIZE=str(PART))
    )


@pytest.fixture
def uploads(stores: tuple[UploadStore, MediaStore]) -> UploadStore:
    return stores[0]


@pytest.fixture
def media(stores: tuple[UploadStore, MediaStore]) -> MediaStore:
    return stores[1]


_ids = iter(range(1_000_000))


def new_id() -> str:
    return f"up{random.getrandbits(48):012x}{next(_ids)}"


def noise(size: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(size)


async def append(
    store: UploadStore,
    upload_id: str,
    offset: int,
    state: StorageState,
    *chunks: bytes,
    told_length: bool = True,
) -> StorageState:
    """One PATCH: open a writer at `offset`, write the chunks, commit. `told_length`: the
    request had a Content-Length (the writer knows how much is coming), not chunked."""
    expected = sum(map(len, chunks)) if told_length else None
    writer = await store.open_writer(upload_id, offset, state, expected)
    for chunk in chunks:
        await writer.write(chunk)
    assert writer.written == sum(map(len, chunks))
    return await writer.commit()


async def collect(stream: AsyncIterator[bytes]) -> bytes:
    return b"".join([block async for block in stream])


async def store_whole(store: UploadStore, data: bytes, chunk: int = 1 * MiB) -> tuple[str, dict]:
    upload_id = new_id()
    state = await store.create(upload_id)
    chunks = [data[i : i + chunk] for i in range(0, len(data), chunk)]
    state = await append(store, upload_id, 0, state, *chunks)
    state = await store.finish(upload_id, len(data), state)
    return upload_id, state


async def test_create_write_commit_and_offset(uploads: UploadStore) -> None:
    upload_id = new_id()
    state = await uploads.create(upload_id)
    state = await append(uploads, upload_id, 0, state, b"hello")
    # A writer that writes nothing keeps the upload as it was.
    state = await append(uploads, upload_id, 5, state)
    state = await append(uploads, upload_id, 5, state, b", ", b"world")
    assert await collect(uploads.read(upload_id, state, 12)) == b"hello, world"
    assert await collect(uploads.read(upload_id, state, 5)) == b"hello"
    state = await uploads.finish(upload_id, 12, state)
    assert await collect(uploads.read(upload_id, state, 12)) == b"hello, world"


async def test_many_small_writes_across_part_boundaries(uploads: UploadStore) -> None:
    data = noise(2 * PART + 3 * MiB + 77, seed=1)
    rng = random.Random(2)
    upload_id = new_id()
    state = await uploads.create(upload_id)
    offset = 0
    told_length = True
    while offset < len(data):
        # PATCHes of 0.5-4 MiB, each written in socket-sized reads of up to 300 KiB, with and
        # without a Content-Length by turns.
        end = min(len(data), offset + rng.randint(MiB // 2, 4 * MiB))
        chunks = []
        pos = offset
        while pos < end:
            step = min(end - pos, rng.randint(1, 300 * 1024))
            chunks.append(data[pos : pos + step])
            pos += step
        state = await append(uploads, upload_id, offset, state, *chunks, told_length=told_length)
        offset = end
        told_length = not told_length
    state = await uploads.finish(upload_id, len(data), state)
    stored = await collect(uploads.read(upload_id, state, len(data)))
    assert hashlib.sha256(stored).hexdigest() == hashlib.sha256(data).hexdigest()
    async with uploads.local_path(upload_id, state, len(data)) as path:
        assert hashlib.sha256(path.read_bytes()).digest() == hashlib.sha256(data).digest()


async def test_rollback_leaves_upload_as_before(uploads: UploadStore) -> None:
    first, rejected, second = noise(3 * MiB, 3), noise(4 * MiB, 4), noise(4 * MiB + 5, 5)
    upload_id = new_id()
    state = await uploads.create(upload_id)
    state = await append(uploads, upload_id, 0, state, first)

    # Checksum mismatch: the chunk crossed a part boundary before it was refused.
    writer = await uploads.open_writer(upload_id, len(first), state, len(rejected))
    for i in range(0, len(rejected), 256 * 1024):
        await writer.write(rejected[i : i + 256 * 1024])
    await writer.rollback()

    state = await append(uploads, upload_id, len(first), state, second)
    total = len(first) + len(second)
    state = await uploads.finish(upload_id, total, state)
    assert await collect(uploads.read(upload_id, state, total)) == first + second


async def test_body_cut_short_keeps_exactly_what_arrived(uploads: UploadStore) -> None:
    """The request said 2.5 parts were coming; the link dropped inside the second part."""
    data = noise(2 * PART + PART // 2, 13)
    cut = PART + 700_001
    upload_id = new_id()
    state = await uploads.create(upload_id)
    state = await append(uploads, upload_id, 0, state, data[:100])
    writer = await uploads.open_writer(upload_id, 100, state, len(data) - 100)
    for i in range(100, cut, 256 * 1024):
        await writer.write(data[i : min(cut, i + 256 * 1024)])
    state = await writer.commit()
    assert writer.written == cut - 100

    state = await append(uploads, upload_id, cut, state, data[cut:])
    state = await uploads.finish(upload_id, len(data), state)
    assert await collect(uploads.read(upload_id, state, len(data))) == data


async def _let_dead_writer_land(before: set[asyncio.Task[object]]) -> None:
    # A dead process's requests already in flight land before another could take its lock:
    # wait for the tasks the writer started (those not there before it wrote).
    started = asyncio.all_tasks() - before
    await asyncio.gather(*started, return_exceptions=True)


async def test_writer_that_dies_without_commit(uploads: UploadStore) -> None:
    first, lost, second = noise(3 * MiB, 6), noise(6 * MiB, 7), noise(2 * MiB, 8)
    upload_id = new_id()
    state = await uploads.create(upload_id)
    state = await append(uploads, upload_id, 0, state, first)

    writer = await uploads.open_writer(upload_id, len(first), state, len(lost))
    before = asyncio.all_tasks()
    await writer.write(lost)  # then the process dies: neither commit nor rollback
    await _let_dead_writer_land(before)

    state = await append(uploads, upload_id, len(first), state, second)
    total = len(first) + len(second)
    state = await uploads.finish(upload_id, total, state)
    assert await collect(uploads.read(upload_id, state, total)) == first + second


async def test_commit_whose_state_was_never_saved(uploads: UploadStore) -> None:
    """The process died after commit returned but before the database kept the new state."""
    first, lost, second = noise(4 * MiB, 9), noise(3 * MiB, 10), noise(PART + 1, 11)
    upload_id = new_id()
    saved = await uploads.create(upload_id)
    saved = await append(uploads, upload_id, 0, saved, first)
    await append(uploads, upload_id, len(first), saved, lost)  # its state is lost

    saved = await append(uploads, upload_id, len(first), saved, second)
    total = len(first) + len(second)
    saved = await uploads.finish(upload_id, total, saved)
    assert await collect(uploads.read(upload_id, saved, total)) == first + second


async def test_finish_twice_is_harmless(uploads: UploadStore) -> None:
    data = noise(PART + 100, 12)
    upload_id = new_id()
    state = await uploads.create(upload_id)
    state = await append(uploads, upload_id, 0, state, data)
    done = await uploads.finish(upload_id, len(data), state)
    # A crash between finish and saving its state: the next try finishes the old state again.
    await uploads.finish(upload_id, len(data), state)
    assert await collect(uploads.read(upload_id, done, len(data))) == data


async def test_empty_upload(uploads: UploadStore) -> None:
    upload_id = new_id()
    state = await uploads.create(upload_id)
    state = await uploads.finish(upload_id, 0, state)
    assert await collect(uploads.read(upload_id, state, 0)) == b""
    async with uploads.local_path(upload_id, state, 0) as path:
        assert path.read_bytes() == b""


@pytest.mark.parametrize(
    "sizes",
    [(100_000, 1, 250_000), (6 * MiB, 100 * 1024, 7 * MiB + 3, 2 * MiB)],
    ids=["small", "large"],
)
async def test_concat(uploads: UploadStore, sizes: tuple[int, ...]) -> None:
    pieces = [noise(size, 20 + i) for i, size in enumerate(sizes)]
    parts = []
    for piece in pieces:
        upload_id, state = await store_whole(uploads, piece)
        parts.append((upload_id, state, len(piece)))
    final_id = new_id()
    state = await uploads.concat(final_id, parts)
    whole = b"".join(pieces)
    stored = await collect(uploads.read(final_id, state, len(whole)))
    assert hashlib.sha256(stored).digest() == hashlib.sha256(whole).digest()


async def test_delete_is_idempotent(uploads: UploadStore) -> None:
    complete_id, complete = await store_whole(uploads, noise(PART + 10, 30))
    partial_id = new_id()
    partial = await uploads.create(partial_id)
    partial = await append(uploads, partial_id, 0, partial, noise(PART + 20, 31))
    for upload_id, state in ((complete_id, complete), (partial_id, partial)):
        await uploads.delete(upload_id, state)
        await uploads.delete(upload_id, state)
    with pytest.raises(FileNotFoundError):
        await collect(uploads.read(complete_id, complete, PART + 10))


async def test_list_ids_and_remove_orphans(uploads: UploadStore) -> None:
    """What `tusgallery cleanup` relies on: every stored upload is listed (complete, partial,
    only created), recent ones are spared, and removing an orphan leaves nothing of it."""
    complete_id, _state = await store_whole(uploads, noise(PART + 10, 80))
    partial_id = new_id()
    partial = await uploads.create(partial_id)
    partial = await append(uploads, partial_id, 0, partial, noise(PART + 20, 81))
    created_id = new_id()
    await uploads.create(created_id)
    ours = {complete_id, partial_id, created_id}

    # A negative age puts the cutoff in the future: everything counts as old.
    assert ours <= set(await uploads.list_upload_ids(older_than_seconds=-60))
    assert not ours & set(await uploads.list_upload_ids(older_than_seconds=3600))

    async def known(ids: object) -> set[str]:
        return {complete_id} | (set(ids) - ours)  # type: ignore[call-overload]

    removed = await uploads.remove_orphans(known, older_than_seconds=-60)
    assert removed == 2
    left = set(await uploads.list_upload_ids(older_than_seconds=-60))
    assert complete_id in left and not {partial_id, created_id} & left
    assert await collect(uploads.read(complete_id, _state, PART + 10)) == noise(PART + 10, 80)


async def test_media_put_open_exists_delete(media: MediaStore, tmp_path: Path) -> None:
    source = tmp_path / "photo.jpg"
    source.write_bytes(noise(300_000, 40))
    stored = await media.put_file("homes/1/photo.jpg", source, "image/jpeg")
    assert (stored.key, stored.size, stored.content_type) == (
        "homes/1/photo.jpg",
        300_000,
        "image/jpeg",
    )
    small = await media.put_bytes("homes/1/thumb.webp", b"RIFF-thumb", "image/webp")
    assert small.size == 10
    assert await media.exists("homes/1/photo.jpg")
    assert await collect(media.open("homes/1/photo.jpg")) == source.read_bytes()
    assert await collect(media.open("homes/1/thumb.webp")) == b"RIFF-thumb"

    await media.delete("homes/1/photo.jpg")
    await media.delete("homes/1/photo.jpg")
    assert not await media.exists("homes/1/photo.jpg")
    with pytest.raises(FileNotFoundError):
        await collect(media.open("homes/1/photo.jpg"))


# Backend-specific behaviour, named as such.


async def test_local_reads_incomplete_upload(tmp_path: Path) -> None:
    from server.settings import Settings

    uploads, _media = build_stores(Settings(data_dir=tmp_path))
    data = noise(PART + 1000, 50)
    upload_id = new_id()
    state = await uploads.create(upload_id)
    state = await append(uploads, upload_id, 0, state, data)
    assert await collect(uploads.read(upload_id, state, len(data))) == data


async def test_s3_incomplete_upload_is_readable_only_before_its_first_part(
    s3_server: S3Server, tmp_path: Path
) -> None:
    uploads, _media = build_stores(
        s3_server.settings(TUSGALLERY_DATA_DIR=str(tmp_path), TUSGALLERY_S3_PART_SIZE=str(PART))
    )
    upload_id = new_id()
    state = await uploads.create(upload_id)
    state = await append(uploads, upload_id, 0, state, b"x" * 1000)
    assert await collect(uploads.read(upload_id, state, 1000)) == b"x" * 1000
    state = await append(uploads, upload_id, 1000, state, b"y" * PART)
    with pytest.raises(PartialReadUnsupported):
        uploads.read(upload_id, state, PART + 1000)


async def test_s3_presigned_url_serves_the_object(s3_server: S3Server, tmp_path: Path) -> None:
    _uploads, media = build_stores(s3_server.settings(TUSGALLERY_DATA_DIR=str(tmp_path)))
    data = noise(100_000, 60)
    await media.put_bytes("presign/a.jpg", data, "image/jpeg")
    url = await media.presigned_url("presign/a.jpg", expires_seconds=60)
    assert url is not None and url.startswith(s3_server.endpoint_url)
    async with httpx.AsyncClient() as client:
        response = await client.get(url)
        assert response.status_code == 200
        assert response.content == data
        assert response.headers["content-type"] == "image/jpeg"
        tampered = await client.get(url.replace("presign/a.jpg", "presign/b.jpg"))
        assert tampered.status_code == 403


async def test_s3_keeps_no_part_or_tail_after_finish(s3_server: S3Server, tmp_path: Path) -> None:
    bucket = s3_server.new_bucket()
    settings = s3_server.settings(
        TUSGALLERY_DATA_DIR=str(tmp_path),
        TUSGALLERY_S3_PART_SIZE=str(PART),
        TUSGALLERY_S3_BUCKET=bucket,
    )
    uploads, _media = build_stores(settings)
    assert isinstance(uploads, S3UploadStore)
    client = uploads.client
    upload_id = new_id()
    state = await uploads.create(upload_id)
    state = await append(uploads, upload_id, 0, state, noise(3 * MiB, 70))
    state = await append(uploads, upload_id, 3 * MiB, state, noise(3 * MiB, 71))
    assert len(state["parts"]) == 1 and state["tail"] == MiB  # the tail lives in S3
    state = await uploads.finish(upload_id, 6 * MiB, state)
    keys = [item["Key"] for item in client.list_objects_v2(Bucket=bucket).get("Contents", [])]
    assert keys == [f"uploads/{upload_id}"]
    assert not client.list_multipart_uploads(Bucket=bucket).get("Uploads")


async def test_s3_orphan_removal_aborts_multipart_uploads(
    s3_server: S3Server, tmp_path: Path
) -> None:
    bucket = s3_server.new_bucket()
    uploads, _media = build_stores(
        s3_server.settings(TUSGALLERY_DATA_DIR=str(tmp_path), TUSGALLERY_S3_BUCKET=bucket)
    )
    assert isinstance(uploads, S3UploadStore)
    stale_id = new_id()
    stale = await uploads.create(stale_id)
    stale = await append(uploads, stale_id, 0, stale, b"abandoned tail")

    async def nothing_known(ids: object) -> set[str]:
        return set()

    assert await uploads.remove_orphans(nothing_known, older_than_seconds=3600) == 0
    assert await uploads.remove_orphans(nothing_known, older_than_seconds=-60) == 1
    client = uploads.client
    assert not client.list_multipart_uploads(Bucket=bucket).get("Uploads")
    assert not client.list_objects_v2(Bucket=bucket).get("Contents")
    with pytest.raises(StorageError):
        await uploads.finish(stale_id, 14, stale)


class PartCalls:
    """Records, in call order, which way each part was sent (the real calls still run): a
    part whose stream failed shows in both lists."""

    def __init__(self, uploads: S3UploadStore, monkeypatch: pytest.MonkeyPatch) -> None:
        self.streamed: list[int] = []
        self.plain: list[int] = []
        stream, plain = uploads.upload_part_stream, uploads.upload_part

        async def record_stream(
            upload_id: str, state: StorageState, number: int, body: PartStream
        ) -> list[Any]:
            self.streamed.append(number)
            return await stream(upload_id, state, number, body)

        async def record_plain(
            upload_id: str, state: StorageState, number: int, block: bytes | bytearray
        ) -> list[Any]:
            self.plain.append(number)
            return await plain(upload_id, state, number, block)

        monkeypatch.setattr(uploads, "upload_part_stream", record_stream)
        monkeypatch.setattr(uploads, "upload_part", record_plain)


def s3_uploads(s3_server: S3Server, tmp_path: Path, **env: str) -> S3UploadStore:
    uploads, _media = build_stores(
        s3_server.settings(
            TUSGALLERY_DATA_DIR=str(tmp_path), TUSGALLERY_S3_PART_SIZE=str(PART), **env
        )
    )
    assert isinstance(uploads, S3UploadStore)
    return uploads


async def test_s3_streams_the_last_full_part_of_each_body(
    s3_server: S3Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only the part whose upload would otherwise wait for the body's end goes up while it
    arrives; earlier parts of a long body are gathered and go up while the rest arrives."""
    uploads = s3_uploads(s3_server, tmp_path)
    calls = PartCalls(uploads, monkeypatch)
    data = noise(4 * PART + 1000, 90)
    sizes = [2 * MiB, PART, 2 * PART]  # then the rest
    upload_id = new_id()
    state = await uploads.create(upload_id)
    offset = 0
    for size in sizes:
        # 2 MiB: no part fills, the bytes become the tail. PART: part 1 (the tail's bytes
        # first) is streamed. 2 * PART: part 2 is gathered, part 3 streamed.
        state = await append(uploads, upload_id, offset, state, data[offset : offset + size])
        offset += size
    # No Content-Length (chunked): the writer cannot know, so part 4 is gathered first.
    state = await append(uploads, upload_id, offset, state, data[offset:], told_length=False)
    assert (calls.streamed, calls.plain) == ([1, 3], [2, 4])
    state = await uploads.finish(upload_id, len(data), state)
    assert await collect(uploads.read(upload_id, state, len(data))) == data


async def test_s3_stalled_stream_falls_back_to_a_plain_part_upload(
    s3_server: S3Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A client that pauses longer than the stream waits: the streamed request is given up,
    and when the bytes do come, the part goes up from the writer's own copy."""
    uploads = s3_uploads(s3_server, tmp_path)
    uploads.stream_stall_seconds = 0.3
    calls = PartCalls(uploads, monkeypatch)
    data = noise(PART + 10, 91)
    upload_id = new_id()
    state = await uploads.create(upload_id)
    writer = await uploads.open_writer(upload_id, 0, state, len(data))
    await writer.write(data[: PART // 2])
    await asyncio.sleep(1.0)  # a real stall, past stream_stall_seconds
    await writer.write(data[PART // 2 :])
    state = await writer.commit()
    assert (calls.streamed, calls.plain) == ([1], [1])
    assert len(state["parts"]) == 1 and state["tail"] == 10
    state = await uploads.finish(upload_id, len(data), state)
    assert await collect(uploads.read(upload_id, state, len(data))) == data


async def test_s3_with_streaming_off_gathers_every_part(
    s3_server: S3Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    uploads = s3_uploads(s3_server, tmp_path, TUSGALLERY_S3_STREAM_PARTS="0")
    assert not uploads.streams_parts
    calls = PartCalls(uploads, monkeypatch)
    data = noise(2 * PART + 5, 92)
    upload_id = new_id()
    state = await uploads.create(upload_id)
    state = await append(uploads, upload_id, 0, state, data)
    assert (calls.streamed, calls.plain) == ([], [1, 2])
    state = await uploads.finish(upload_id, len(data), state)
    assert await collect(uploads.read(upload_id, state, len(data))) == data
