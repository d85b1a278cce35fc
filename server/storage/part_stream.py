"""One S3 part's bytes as a file object that boto3 reads while the PATCH body is still arriving.

Why: a tus client sends its next PATCH only once the last one is answered, and a PATCH may be
answered only once its bytes are stored. Buffering a whole part and then uploading it makes
every PATCH cost receive time plus upload time; streaming the part while it arrives makes it
cost about the larger of the two.

The event loop `feed`s pieces as they arrive (an append under a lock, never a wait); a worker
thread inside boto3 `read`s them and blocks until more come. The part's length is fixed up
front (boto3 sends it as Content-Length), so a body cut short can only fail the part, never
store a short one: `cancel` makes the next `read` raise, which drops the S3 request.
"""

from __future__ import annotations

import threading
import time
from collections import deque

# Bytes handed to the socket per read: large enough that a part is a few dozen writes.
SEND_BLOCK = 1024 * 1024
# A reader waiting for a full block sends what it has after this long (a slow client).
TRICKLE_SECONDS = 1.0


class PartStreamCancelled(Exception):
    """The part's bytes will not all come (the body ended early, or nothing came in time)."""


class PartStream:
    """A fixed-length byte stream, fed from the event loop and read from a worker thread."""

    def __init__(self, length: int, stall_seconds: float) -> None:
        self._length = length
        self._stall_seconds = stall_seconds
        self._pieces: deque[memoryview] = deque()
        self._fed = 0
        self._queued = 0  # fed, not yet read
        self._unread = length
        self._cancelled = False
        self._ready = threading.Condition()

    def __len__(self) -> int:
        # botocore takes the request's Content-Length from here.
        return self._length

    @property
    def full(self) -> bool:
        """Every byte of the part has been fed."""
        return self._fed == self._length

    def feed(self, data: bytes | bytearray) -> None:
        if self._fed + len(data) > self._length:
            raise ValueError(f"a part stream of {self._length} bytes was fed more")
        with self._ready:
            self._pieces.append(memoryview(data))
            self._queued += len(data)
            self._fed += len(data)
            # Wake the reader once a send's worth has gathered, not for every socket read:
            # each wake is a thread switch (and a GIL hand-off) on the event loop's time.
            if self._queued >= SEND_BLOCK or self.full:
                self._ready.notify()

    def cancel(self) -> None:
        with self._ready:
            self._cancelled = True
            self._ready.notify()

    def read(self, size: int = -1) -> bytes:
        """Up to SEND_BLOCK bytes (more than `size`: fewer, larger socket writes)."""
        with self._ready:
            if self._unread == 0:
                return b""
            idle_since = time.monotonic()
            while not self._ready_to_send():
                if self._ready.wait(min(TRICKLE_SECONDS, self._stall_seconds)):
                    continue
                if self._queued:
                    break  # a slow client: send what came rather than leave S3's socket idle
                if time.monotonic() - idle_since >= self._stall_seconds:
                    # Nothing came for that long: S3 would time the request out itself. The
                    # writer still has the bytes and uploads the part plainly if they come.
                    raise PartStreamCancelled(f"no bytes for {self._stall_seconds:g} s")
            if self._cancelled:
                raise PartStreamCancelled("the body ended before the part was complete")
            views: list[memoryview] = []
            taken = 0
            while self._pieces and taken < SEND_BLOCK:
                head = self._pieces.popleft()
                if len(head) > SEND_BLOCK - taken:
                    self._pieces.appendleft(head[SEND_BLOCK - taken :])
                    head = head[: SEND_BLOCK - taken]
                views.append(head)
                taken += len(head)
            self._queued -= taken
            self._unread -= taken
        return b"".join(views)

    def _ready_to_send(self) -> bool:
        return self._cancelled or self._queued >= SEND_BLOCK or (self.full and self._queued > 0)
