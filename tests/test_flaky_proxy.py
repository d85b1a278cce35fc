"""The flaky proxy itself, against tiny real TCP servers: exact pass-through, cuts at the drawn byte
counts (as RSTs), stalls that delay without closing, reproducible draws, clean stop."""

from __future__ import annotations

import contextlib
import errno
import os
import queue
import socket
import socketserver
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from tests.support.flaky_proxy import FlakyProxy, KiB, Knobs, MiB

TIMEOUT = 10.0


class _EchoHandler(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        with contextlib.suppress(ConnectionResetError, BrokenPipeError):
            while data := self.request.recv(64 * KiB):
                self.request.sendall(data)


class _SinkHandler(socketserver.BaseRequestHandler):
    """Counts what arrives and how the connection ended: 'eof' (FIN) or 'reset' (RST)."""

    def handle(self) -> None:
        received, ending = 0, "eof"
        try:
            while data := self.request.recv(64 * KiB):
                received += len(data)
        except ConnectionResetError:
            ending = "reset"
        self.server.results.put((received, ending))  # type: ignore[attr-defined]


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


@contextmanager
def serving(handler: type[socketserver.BaseRequestHandler]) -> Iterator[_Server]:
    server = _Server(("127.0.0.1", 0), handler)
    server.results = queue.Queue()  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(TIMEOUT)


def upstream(server: _Server) -> tuple[str, int]:
    return ("127.0.0.1", server.server_address[1])


def connect(proxy: FlakyProxy) -> socket.socket:
    return socket.create_connection(("127.0.0.1", proxy.port), timeout=TIMEOUT)


def send_until_dropped(proxy: FlakyProxy, payload: bytes) -> str:
    """Send payload through the proxy; return how the client saw the connection end."""
    with connect(proxy) as sock:
        try:
            sock.sendall(payload)
            sock.shutdown(socket.SHUT_WR)
            return "eof" if sock.recv(1) == b"" else "data"
        except (ConnectionResetError, BrokenPipeError):
            return "reset"
        except OSError as exc:  # shutdown() after the RST already arrived
            if exc.errno == errno.ENOTCONN:
                return "reset"
            raise


def echo_round_trip(proxy: FlakyProxy, payload: bytes) -> bytes:
    """Send payload while reading the echo back in parallel (so neither side's buffers fill up)."""
    with connect(proxy) as sock:
        sender = threading.Thread(target=sock.sendall, args=(payload,))
        sender.start()
        chunks, received = [], 0
        while received < len(payload):
            chunk = sock.recv(64 * KiB)
            if not chunk:
                break
            chunks.append(chunk)
            received += len(chunk)
        sender.join(TIMEOUT)
        return b"".join(chunks)


def test_pass_through_is_byte_exact_and_counted() -> None:
    payload = os.urandom(5 * MiB + 123)
    with serving(_EchoHandler) as server, FlakyProxy(upstream(server)) as proxy:
        assert echo_round_trip(proxy, payload) == payload
        assert echo_round_trip(proxy, b"second") == b"second"
        assert (proxy.bytes_up, proxy.bytes_down) == (len(payload) + 6, len(payload) + 6)
        assert (proxy.connections, proxy.cuts, proxy.stalls) == (2, 0, 0)


def test_disabled_proxy_passes_through_despite_faults() -> None:
    knobs = Knobs(
        enabled=False,
        cut_probability=1.0,
        cut_after_bytes=(10, 10),
        stall_probability=1.0,
        stall_after_bytes=(10, 10),
        stall_seconds=30,
    )
    payload = os.urandom(MiB)
    with serving(_EchoHandler) as server, FlakyProxy(upstream(server), knobs=knobs) as proxy:
        assert echo_round_trip(proxy, payload) == payload
        assert (proxy.cuts, proxy.stalls) == (0, 0)


def test_cut_delivers_exactly_the_bytes_before_the_cut_point_then_resets_both_sides() -> None:
    cut_at = 100_003
    with serving(_SinkHandler) as server, FlakyProxy(upstream(server)) as proxy:
        assert send_until_dropped(proxy, os.urandom(64 * KiB)) == "eof"
        assert server.results.get(timeout=TIMEOUT) == (64 * KiB, "eof")

        # Knobs changed at run time apply to the next connection.
        proxy.knobs.cut_probability = 1.0
        proxy.knobs.cut_after_bytes = (cut_at, cut_at)
        assert send_until_dropped(proxy, os.urandom(2 * MiB)) == "reset"
        assert server.results.get(timeout=TIMEOUT) == (cut_at, "reset")
        assert proxy.cuts == 1
        assert proxy.bytes_up == 64 * KiB + cut_at


def test_cut_points_are_uniform_in_range_and_reproducible_by_seed() -> None:
    low, high = 10 * KiB, 300 * KiB
    knobs = Knobs(cut_probability=1.0, cut_after_bytes=(low, high))

    def cut_points(seed: int) -> list[int]:
        with (
            serving(_SinkHandler) as server,
            FlakyProxy(upstream(server), seed=seed, knobs=Knobs(**vars(knobs))) as proxy,
        ):
            points = []
            for _ in range(8):
                assert send_until_dropped(proxy, os.urandom(high + KiB)) == "reset"
                received, ending = server.results.get(timeout=TIMEOUT)
                assert ending == "reset"
                points.append(received)
            assert proxy.cuts == 8
            return points

    first = cut_points(seed=42)
    assert all(low <= p <= high for p in first)
    assert len(set(first)) == len(first)  # drawn, not fixed
    assert cut_points(seed=42) == first
    assert cut_points(seed=43) != first


def test_some_connections_are_cut_with_partial_probability() -> None:
    knobs = Knobs(cut_probability=0.5, cut_after_bytes=(KiB, KiB))
    with (
        serving(_SinkHandler) as server,
        FlakyProxy(upstream(server), seed=1, knobs=knobs) as proxy,
    ):
        endings = [send_until_dropped(proxy, os.urandom(8 * KiB)) for _ in range(20)]
        assert 0 < endings.count("reset") < 20
        assert endings.count("reset") == proxy.cuts
        assert endings.count("eof") == 20 - proxy.cuts


def test_stall_delays_traffic_without_closing() -> None:
    stall = 0.6
    knobs = Knobs(stall_probability=1.0, stall_after_bytes=(1000, 1000), stall_seconds=stall)
    payload = os.urandom(4000)
    with serving(_EchoHandler) as server, FlakyProxy(upstream(server), knobs=knobs) as proxy:
        started = time.monotonic()
        assert echo_round_trip(proxy, payload) == payload
        assert time.monotonic() - started >= stall
        assert (proxy.stalls, proxy.cuts) == (1, 0)


def test_cut_all_resets_open_connections() -> None:
    with (
        serving(_EchoHandler) as server,
        FlakyProxy(upstream(server)) as proxy,
        connect(proxy) as sock,
    ):
        sock.sendall(b"ping")
        assert sock.recv(4) == b"ping"
        assert proxy.cut_all() == 1
        with pytest.raises(ConnectionResetError):
            sock.recv(1)
        assert proxy.cuts == 1


def test_reset_counters() -> None:
    with serving(_EchoHandler) as server, FlakyProxy(upstream(server)) as proxy:
        echo_round_trip(proxy, b"x" * 100)
        proxy.reset_counters()
        echo_round_trip(proxy, b"y" * 7)
        assert (proxy.bytes_up, proxy.bytes_down, proxy.connections) == (7, 7, 1)


def test_stop_frees_the_port_and_leaves_no_threads() -> None:
    with serving(_EchoHandler) as server:
        threads_before = set(threading.enumerate())
        proxy = FlakyProxy(
            upstream(server),
            knobs=Knobs(stall_probability=1.0, stall_after_bytes=(0, 0), stall_seconds=60),
        )
        proxy.start()
        port = proxy.port
        held = connect(proxy)  # a connection stalled for a minute must not hold stop() up
        held.sendall(b"stuck")
        started = time.monotonic()
        proxy.stop()
        assert time.monotonic() - started < 5
        proxy.stop()  # idempotent
        held.close()
        # The echo server's own handler threads are not the proxy's business.
        left = set(threading.enumerate()) - threads_before
        assert [t for t in left if "process_request" not in t.name] == []
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
        with socket.socket() as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as servers do
            sock.bind(("127.0.0.1", port))
