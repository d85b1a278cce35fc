"""The servers under test: how each is started, and a context manager that runs one of them.

Every server gets a free loopback port, its own empty data directory and a log file; it runs in
its own process group (so worker processes it forks go with it) and is stopped by that pid when
the measurement ends, whatever happened. Only one server runs at a time: the machine has two cores
and the client needs one of them.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from bench_support import toolenv

BENCH_TOKEN = "bench-token"
START_TIMEOUT_SECONDS = 60.0
STOP_TIMEOUT_SECONDS = 10.0

# argv and extra environment for a port and a data directory
Command = Callable[[int, Path], tuple[list[str], dict[str, str]]]


@dataclass(frozen=True)
class ServerSpec:
    name: str
    description: str
    command: Command


@dataclass(frozen=True)
class RunningServer:
    spec: ServerSpec
    pid: int
    base_url: str
    data_dir: Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _uvicorn(python: Path, app: str, port: int, app_dir: Path | None = None) -> list[str]:
    """The same uvicorn flags for every Python server: httptools + uvloop, no access log."""
    argv = [str(python), "-m", "uvicorn", app, "--host", "127.0.0.1", "--port", str(port)]
    argv += ["--loop", "uvloop", "--http", "httptools", "--no-access-log"]
    argv += ["--log-level", "warning"]
    if app_dir is not None:
        argv += ["--app-dir", str(app_dir)]
    return argv


def _ceiling(port: int, data: Path) -> tuple[list[str], dict[str, str]]:
    argv = _uvicorn(toolenv.project_python(), "ceiling_app:app", port, toolenv.SUPPORT_DIR)
    return argv, {"BENCH_CEILING_DIR": str(data)}


def _tusgallery(port: int, data: Path) -> tuple[list[str], dict[str, str]]:
    env = {
        "PORT": str(port),
        "DATABASE_URL": f"sqlite:///{data / 'tusgallery.db'}",
        "TUSGALLERY_DATA_DIR": str(data),
        "TUSGALLERY_STORAGE": "local",
        "TUSGALLERY_ADMIN_TOKEN": BENCH_TOKEN,
        # The RSS run sends 1 GiB, past the per-image default.
        "TUSGALLERY_MAX_UPLOAD_BYTES": str(4 * 1024**3),
        "TUSGALLERY_LOG_LEVEL": "warning",
    }
    return _uvicorn(toolenv.project_python(), "server.app:app", port), env


def _tuspyserver(port: int, data: Path) -> tuple[list[str], dict[str, str]]:
    argv = _uvicorn(toolenv.tool_python(), "tuspyserver_app:app", port, toolenv.SUPPORT_DIR)
    return argv, {"BENCH_PEER_DIR": str(data)}


def _tus_node(port: int, data: Path) -> tuple[list[str], dict[str, str]]:
    script = toolenv.SUPPORT_DIR / "tus_node_server.mjs"
    node = shutil.which("node") or "node"
    return [node, str(script), str(port), str(data)], {"BENCH_NODE_DIR": str(toolenv.NODE_DIR)}


CEILING = ServerSpec("ceiling", "bare Starlette, request.stream() to a file, one fsync", _ceiling)
TUSGALLERY = ServerSpec("tusgallery", "server.app:app, local disk + SQLite", _tusgallery)
TUSPYSERVER = ServerSpec("tuspyserver", "tuspyserver in FastAPI (README setup)", _tuspyserver)
TUS_NODE = ServerSpec("@tus/server", "@tus/server + @tus/file-store on node", _tus_node)


def tusgallery_available() -> bool:
    """tusgallery is measured once `server.app:app` imports in the project environment."""
    result = subprocess.run(
        [str(toolenv.project_python()), "-c", "import server.app"],
        cwd=toolenv.ROOT,
        capture_output=True,
        timeout=120,
    )
    return result.returncode == 0


def _wait_ready(proc: subprocess.Popen[bytes], base_url: str, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}:\n{_tail(log)}")
        try:
            httpx.options(f"{base_url}/files/", headers={"Tus-Resumable": "1.0.0"}, timeout=1)
            return
        except httpx.TransportError:
            time.sleep(0.05)
    raise RuntimeError(f"server not answering after {START_TIMEOUT_SECONDS} s:\n{_tail(log)}")


def _tail(log: Path, lines: int = 30) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """Stop the server's process group (its pid, as started), then reap it."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=STOP_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=STOP_TIMEOUT_SECONDS)
    # Workers left behind by a server that exited first still belong to its group.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)


@contextmanager
def serving(spec: ServerSpec, workdir: Path) -> Iterator[RunningServer]:
    """Run `spec` on a free port with an empty data dir under `workdir`; removed afterwards."""
    port = free_port()
    data = workdir / f"{spec.name.strip('@').replace('/', '-')}-{port}"
    data.mkdir(parents=True)
    log = workdir / f"{data.name}.log"
    argv, extra_env = spec.command(port, data)
    with log.open("wb") as log_file:
        proc = subprocess.Popen(
            argv,
            cwd=toolenv.ROOT,
            env={**os.environ, **extra_env},
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        base_url = f"http://127.0.0.1:{port}"
        _wait_ready(proc, base_url, log)
        yield RunningServer(spec, proc.pid, base_url, data)
    finally:
        _stop(proc)
        shutil.rmtree(data, ignore_errors=True)
