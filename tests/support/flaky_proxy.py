"""A TCP proxy on 127.0.0.1 that behaves like a bad mobile link, for tests of real tus clients.

Put it between a client and the server under test; the client connects to ``proxy.port``::

    with FlakyProxy(("127.0.0.1", server_port), seed=7) as proxy:
        proxy.knobs.cut_probability = 0.5          # half the connections get dropped...
        proxy.knobs.cut_after_bytes = (10 * KiB, 2 * MiB)  # ...after this many client bytes
        proxy.knobs.stall_probability = 0.2        # some freeze for stall_seconds, then go on
        upload_through(f"http://127.0.0.1:{proxy.port}/files/")
        assert proxy.cuts > 0

API (all of it):
- ``FlakyProxy(upstream, *, seed=None, knobs=None)``; ``start()``/``stop()`` or ``with``.
- ``port``: where clients connect (bound to a free port on 127.0.0.1 by ``start()``).
- ``knobs`` (:class:`Knobs`): read when a connection is accepted, so changes made at run time, from
  any thread, apply to the next connection. ``enabled=False`` makes it a plain pass-through.
- Counters: ``bytes_up`` (client to server), ``bytes_down`` (server to client), ``connections``
  (accepted), ``cuts`` (connections dropped by the proxy), ``stalls`` (stalls begun);
  ``reset_counters()`` zeroes them, e.g. to count the bytes a client sends again after a reload.
- ``cut_all()``: drop every open connection now, for a test that wants the link to die at a moment
  it chooses rather than at random.

A cut closes both sides with SO_LINGER 0, so each peer sees a TCP RST rather than an orderly FIN,
which is what a client sees when a phone changes networks mid-request. The client bytes before the
cut point are delivered to the server first; the rest of that connection's traffic is lost.

The event loop runs in a daemon thread of its own so synchronous pytest tests (tuspy, subprocesses)
and async code can both use the proxy; the counters are plain ints written only by that thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import random
import socket
import struct
import termios
import threading
import time
from dataclasses import dataclass

KiB = 1024
MiB = 1024 * KiB

_READ_SIZE = 64 * KiB
# How long a cut waits for already-forwarded bytes to leave the kernel send queue, so the server
# gets exactly the bytes before the cut point; a server that stopped reading must not hold us up.
_FLUSH_TIMEOUT = 0.5


@dataclass
class Knobs:
    """Fault settings; each accepted connection draws its fate from them once."""

    enabled: bool = True
    cut_probability: float = 0.0
    # Inclusive range of client->server bytes after which a doomed connection is cut.
    cut_after_bytes: tuple[int, int] = (10 * KiB, 2 * MiB)
    stall_probability: float = 0.0
    # Inclusive range of client->server bytes after which a stalling connection freezes.
    stall_after_bytes: tuple[int, int] = (0, 2 * MiB)
    stall_seconds: float = 1.0


@dataclass
class _Fate:
    cut_at: int | None
    stall_at: int | None
    stall_seconds: float


class _Link:
    """One proxied connection: two pumps sharing a byte count, a stall gate and a fate."""

    def __init__(self, proxy: FlakyProxy, fate: _Fate, client: asyncio.StreamWriter) -> None:
        self.proxy = proxy
        self.fate = fate
        self.client = client
        self.upstream: asyncio.StreamWriter | None = None
        self.sent_up = 0
        self.flowing = asyncio.Event()
        self.flowing.set()
        self.dead = False

    async def run(self, client_reader: asyncio.StreamReader) -> None:
        try:
            host, port = self.proxy.upstream
            try:
                upstream_reader, self.upstream = await asyncio.open_connection(host, port)
            except OSError:
                return
            await asyncio.gather(
                self._pump_up(client_reader, self.upstream),
                self._pump_down(upstream_reader, self.client),
            )
        finally:
            self.abort()

    async def _pump_up(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while not self.dead:
            data = await _read(reader)
            if not data:
                _half_close(writer)
                return
            while data and not self.dead:
                await self.flowing.wait()
                data = await self._forward_up(data, writer)

    async def _forward_up(self, data: bytes, writer: asyncio.StreamWriter) -> bytes:
        """Send what fits before the next trigger point; act on the trigger; return the rest."""
        fate = self.fate
        points = (fate.cut_at, fate.stall_at, self.sent_up + len(data))
        limit = min(p for p in points if p is not None)
        piece, rest = data[: limit - self.sent_up], data[limit - self.sent_up :]
        if piece:
            # Count before writing: a test thread may look as soon as the bytes arrive.
            self.sent_up += len(piece)
            self.proxy.bytes_up += len(piece)
            writer.write(piece)
            await _drain(writer)
        if fate.cut_at is not None and self.sent_up >= fate.cut_at:
            fate.cut_at = None
            if self.proxy.knobs.enabled:
                await _flush_kernel_queue(writer)
                self.cut()
                return b""
        if fate.stall_at is not None and self.sent_up >= fate.stall_at:
            fate.stall_at = None
            if self.proxy.knobs.enabled:
                self.proxy.stalls += 1
                self.flowing.clear()
                asyncio.get_running_loop().call_later(fate.stall_seconds, self.flowing.set)
        return rest

    async def _pump_down(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while not self.dead:
            data = await _read(reader)
            if not data:
                _half_close(writer)
                return
            await self.flowing.wait()
            if self.dead:
                return
            self.proxy.bytes_down += len(data)
            writer.write(data)
            await _drain(writer)

    def cut(self) -> None:
        if not self.dead:
            self.proxy.cuts += 1
            self.abort(reset=True)

    def abort(self, reset: bool = False) -> None:
        if self.dead:
            return
        self.dead = True
        self.flowing.set()  # wake a stalled pump so it sees the link is gone
        for writer in (self.client, self.upstream):
            if writer is None:
                continue
            if reset:
                _set_linger_zero(writer)
            writer.transport.abort()
        self.proxy._links.discard(self)


class FlakyProxy:
    def __init__(
        self,
        upstream: tuple[str, int],
        *,
        seed: int | None = None,
        knobs: Knobs | None = None,
    ) -> None:
        self.upstream = upstream
        self.knobs = knobs or Knobs()
        self.port = 0
        self.bytes_up = 0
        self.bytes_down = 0
        self.connections = 0
        self.cuts = 0
        self.stalls = 0
        self._rng = random.Random(seed)
        self._links: set[_Link] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.Server | None = None

    def __enter__(self) -> FlakyProxy:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("proxy already started")
        ready = threading.Event()
        failure: list[BaseException] = []
        self._loop = asyncio.new_event_loop()

        def serve() -> None:
            asyncio.set_event_loop(self._loop)
            try:
                self._loop.run_until_complete(self._listen())
            except BaseException as exc:
                failure.append(exc)
                ready.set()
                return
            ready.set()
            self._loop.run_forever()
            self._loop.run_until_complete(self._shutdown())
            self._loop.close()

        name = f"flaky-proxy->{self.upstream[0]}:{self.upstream[1]}"
        self._thread = threading.Thread(target=serve, name=name, daemon=True)
        self._thread.start()
        ready.wait()
        if failure:
            self._thread.join()
            self._thread = None
            raise failure[0]

    def stop(self) -> None:
        """Drop every connection, free the port and end the thread; safe to call twice."""
        if self._thread is None or self._loop is None:
            return
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        if self._thread.is_alive():
            raise RuntimeError("flaky proxy thread did not stop")
        self._thread = None

    def cut_all(self) -> int:
        """Reset every open connection now; returns how many were cut."""
        if self._loop is None:
            return 0
        future = asyncio.run_coroutine_threadsafe(self._cut_all(), self._loop)
        return future.result(timeout=10)

    def reset_counters(self) -> None:
        self.bytes_up = self.bytes_down = self.connections = self.cuts = self.stalls = 0

    async def _cut_all(self) -> int:
        links = list(self._links)
        for link in links:
            link.cut()
        return len(links)

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _shutdown(self) -> None:
        assert self._server is not None
        self._server.close()
        for link in list(self._links):
            link.abort(reset=True)  # the link dies; leave no half-closed sockets on our port
        current = asyncio.current_task()
        # Cancelling may let a just-accepted connection start its task: repeat until none is left.
        while pending := [t for t in asyncio.all_tasks() if t is not current]:
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        await self._server.wait_closed()
        await asyncio.get_running_loop().shutdown_default_executor()

    def _draw_fate(self) -> _Fate:
        knobs, rng = self.knobs, self._rng
        cut_at = stall_at = None
        # Always draw the same numbers, whatever the knobs, so a seed gives the same sequence.
        cut_roll, cut_point = rng.random(), rng.randint(*knobs.cut_after_bytes)
        stall_roll, stall_point = rng.random(), rng.randint(*knobs.stall_after_bytes)
        if knobs.enabled and cut_roll < knobs.cut_probability:
            cut_at = cut_point
        if knobs.enabled and stall_roll < knobs.stall_probability:
            stall_at = stall_point
        return _Fate(cut_at, stall_at, knobs.stall_seconds)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        link = _Link(self, self._draw_fate(), writer)
        self._links.add(link)
        # Ending quietly when stop() cancels us: asyncio (3.11) logs an error for a connection
        # task that ends cancelled.
        with contextlib.suppress(asyncio.CancelledError):
            await link.run(reader)


async def _read(reader: asyncio.StreamReader) -> bytes:
    try:
        return await reader.read(_READ_SIZE)
    except (ConnectionError, OSError):
        return b""


async def _drain(writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(ConnectionError, OSError):
        await writer.drain()


def _half_close(writer: asyncio.StreamWriter) -> None:
    # Pass an orderly FIN on, so request/response exchanges that end with a shutdown still work.
    with contextlib.suppress(ConnectionError, OSError, RuntimeError):
        if writer.can_write_eof():
            writer.write_eof()


async def _flush_kernel_queue(writer: asyncio.StreamWriter) -> None:
    """Wait (bounded) until bytes already written have left this socket's kernel send queue."""
    sock = writer.get_extra_info("socket")
    deadline = time.monotonic() + _FLUSH_TIMEOUT
    while sock is not None and time.monotonic() < deadline:
        if writer.transport.get_write_buffer_size() == 0 and _unsent_bytes(sock) == 0:
            return
        await asyncio.sleep(0.002)


def _unsent_bytes(sock: socket.socket) -> int:
    try:
        raw = fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, b"\0\0\0\0")
    except OSError:
        return 0
    return struct.unpack("i", raw)[0]


def _set_linger_zero(writer: asyncio.StreamWriter) -> None:
    sock = writer.get_extra_info("socket")
    if sock is None:
        return
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
