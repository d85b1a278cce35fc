"""PartStream: the hand-over between the event loop that receives a PATCH body and the boto3
thread that sends it on as an S3 part. Real threads, no S3 (tests/test_storage.py has those)."""

from __future__ import annotations

import threading
import time

import pytest

from server.storage.part_stream import SEND_BLOCK, PartStream, PartStreamCancelled

KiB = 1024


def read_all(stream: PartStream, into: list[bytes], errors: list[BaseException]) -> None:
    try:
        while block := stream.read(64 * KiB):
            into.append(block)
    except PartStreamCancelled as exc:
        errors.append(exc)


def reader(stream: PartStream) -> tuple[threading.Thread, list[bytes], list[BaseException]]:
    blocks: list[bytes] = []
    errors: list[BaseException] = []
    thread = threading.Thread(target=read_all, args=(stream, blocks, errors))
    thread.start()
    return thread, blocks, errors


def test_bytes_fed_in_pieces_come_out_whole_in_send_blocks() -> None:
    data = bytes(range(256)) * (3 * SEND_BLOCK // 256 + 100)
    stream = PartStream(len(data), stall_seconds=10)
    assert len(stream) == len(data)
    thread, blocks, errors = reader(stream)
    for start in range(0, len(data), 50_000):
        stream.feed(data[start : start + 50_000])
    thread.join(10)
    assert not thread.is_alive() and not errors
    assert b"".join(blocks) == data
    assert stream.full
    # Blocks of SEND_BLOCK (not the 64 KiB boto3 asks for), then the rest.
    assert [len(b) for b in blocks[:3]] == [SEND_BLOCK] * 3


def test_feeding_past_the_length_is_refused() -> None:
    stream = PartStream(10, stall_seconds=10)
    stream.feed(b"12345")
    with pytest.raises(ValueError):
        stream.feed(b"123456")


def test_cancel_fails_the_reader_so_no_short_part_is_sent() -> None:
    stream = PartStream(10 * SEND_BLOCK, stall_seconds=10)
    thread, blocks, errors = reader(stream)
    stream.feed(b"x" * (SEND_BLOCK + 10))
    time.sleep(0.2)
    stream.cancel()
    thread.join(10)
    assert not thread.is_alive()
    assert sum(map(len, blocks)) < 10 * SEND_BLOCK
    assert len(errors) == 1 and "ended before" in str(errors[0])


def test_a_slow_client_is_sent_on_before_a_block_fills() -> None:
    stream = PartStream(SEND_BLOCK, stall_seconds=10)
    thread, blocks, _errors = reader(stream)
    stream.feed(b"a" * 1000)
    deadline = time.monotonic() + 5
    while not blocks and time.monotonic() < deadline:
        time.sleep(0.05)
    assert blocks == [b"a" * 1000]  # after about a second, not after a whole block
    stream.cancel()
    thread.join(10)


def test_nothing_fed_for_the_stall_time_gives_up() -> None:
    stream = PartStream(SEND_BLOCK, stall_seconds=0.3)
    thread, _blocks, errors = reader(stream)
    thread.join(10)
    assert not thread.is_alive()
    assert len(errors) == 1 and "no bytes for 0.3 s" in str(errors[0])
