"""Copy one request body into a storage writer, stoppable at any moment.

The copy ends when the body ends, when the client goes away, when the client stops sending for
longer than the idle timeout, when another request asks for the upload's lock, or when the body
would run past the upload's length. Every way out reports how many bytes were written, so the
caller can keep them (commit) or drop them (rollback).

Waiting for the next socket read is the only place a request can hang, so that is the only wait
the idle deadline and stop requests cut short: both move one `asyncio.Timeout` deadline, which
costs a timer per read instead of a task per read.
"""

from __future__ import annotations

import asyncio
import enum
from dataclasses import dataclass

from starlette.types import Receive

from server.locks import UploadLock
from server.storage import ChunkWriter
from server.tus.headers import Hasher


class BodyEnd(enum.Enum):
    COMPLETE = "complete"  # the client sent the whole body
    DISCONNECTED = "disconnected"  # the connection closed mid-body
    IDLE = "idle"  # nothing arrived for the idle timeout
    STOPPED = "stopped"  # another request (or shutdown) asked for the lock
    TOO_LONG = "too_long"  # the body went past the upload's remaining length


@dataclass(frozen=True)
class BodyResult:
    end: BodyEnd
    written: int


async def copy_body(
    receive: Receive,
    writer: ChunkWriter,
    *,
    limit: int,
    hasher: Hasher | None,
    idle_timeout: float,
    lock: UploadLock,
) -> BodyResult:
    """Write the request body to `writer`, at most `limit` bytes (more ends with TOO_LONG)."""
    loop = asyncio.get_running_loop()
    written = 0
    waiting = False
    end = BodyEnd.COMPLETE
    timeout = asyncio.timeout(None)

    def wake() -> None:
        # Once the deadline has fired the copy is already being stopped; moving it then raises
        # RuntimeError, in the request that asked for the stop.
        if waiting and not timeout.expired():
            timeout.reschedule(loop.time())

    unregister = lock.on_stop(wake)
    try:
        async with timeout:
            while True:
                if lock.stop_requested:
                    end = BodyEnd.STOPPED
                    break
                waiting = True
                timeout.reschedule(loop.time() + idle_timeout)
                message = await receive()
                waiting = False
                timeout.reschedule(None)
                if message["type"] == "http.disconnect":
                    end = BodyEnd.DISCONNECTED
                    break
                data: bytes = message.get("body", b"")
                if data:
                    if written + len(data) > limit:
                        end = BodyEnd.TOO_LONG
                        break
                    if hasher is not None:
                        hasher.update(data)
                    await writer.write(data)
                    written += len(data)
                if not message.get("more_body", False):
                    break
    except TimeoutError:
        if not timeout.expired():
            raise  # raised by the writer, not by our deadline
        end = BodyEnd.STOPPED if lock.stop_requested else BodyEnd.IDLE
    finally:
        waiting = False
        unregister()
    return BodyResult(end, written)
