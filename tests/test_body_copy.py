"""copy_body's stop path, on the event loop itself: a stop request that lands while the body
copy is already being stopped must be harmless to the request that makes it."""

from __future__ import annotations

import asyncio

import pytest

from server.locks import UploadLock
from server.storage import ChunkWriter, StorageState
from server.tus.body import BodyEnd, copy_body

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class Discard(ChunkWriter):
    async def write(self, data: bytes) -> None:
        self.written += len(data)

    async def commit(self) -> StorageState:
        return {}

    async def rollback(self) -> None:
        pass


async def test_a_second_stop_request_while_the_first_is_taking_effect() -> None:
    """Two requests ask the holder to stop within one loop turn of each other (what four
    racing PATCHes do): the second used to raise RuntimeError("Cannot change state of expiring
    Timeout") inside its own request, a 500."""
    loop = asyncio.get_running_loop()
    lock = UploadLock("u1")
    never = asyncio.Event()

    async def receive() -> dict[str, object]:
        await never.wait()
        return {"type": "http.disconnect"}

    copy = asyncio.create_task(
        copy_body(receive, Discard(), limit=100, hasher=None, idle_timeout=30, lock=lock)
    )
    await asyncio.sleep(0.01)  # the copy now waits for the next read
    lock.request_stop("first")  # moves the copy's deadline to now
    errors: list[BaseException] = []

    def second() -> None:
        try:
            lock.request_stop("second")
        except BaseException as exc:
            errors.append(exc)

    # Due just after the deadline: runs in the same loop turn as the deadline's callback, after
    # it has marked the timeout as expiring and before the copy task resumes.
    loop.call_at(loop.time() + 1e-6, second)
    result = await asyncio.wait_for(copy, 5)
    assert errors == []
    assert result.end is BodyEnd.STOPPED and lock.stop_reason == "first"

