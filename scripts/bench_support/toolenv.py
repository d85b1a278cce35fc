"""Where the benchmark keeps its own tools, and how it installs them.

The peers (tuspyserver, @tus/server) and the plotting/profiling tools are benchmark tools, not
project dependencies: they live in `.bench/` (git-ignored) and are installed on first use with
the ordinary clients (pip, npm). Versions are pinned so two runs compare the same peers; uvicorn is
pinned to the project's own version so every Python server runs under the same uvicorn.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BENCH_DIR = ROOT / ".bench"
TOOL_VENV = BENCH_DIR / "venv"
NODE_DIR = BENCH_DIR / "node"
SUPPORT_DIR = Path(__file__).resolve().parent

PYTHON_TOOLS = ("tuspyserver==4.4.3", "fastapi==0.165.0", "matplotlib==3.11.2", "py-spy==0.4.3")
NODE_PEERS = {"@tus/server": "2.4.5", "@tus/file-store": "2.1.1"}
INSTALL_TIMEOUT_SECONDS = 600


def project_python() -> Path:
    """The interpreter tusgallery and the ceiling run with (the harness runs with it too)."""
    return Path(sys.executable)


def tool_python() -> Path:
    return TOOL_VENV / "bin" / "python"


def _python_requirements() -> list[str]:
    uvicorn = importlib.metadata.version("uvicorn")
    return [*PYTHON_TOOLS, f"uvicorn[standard]=={uvicorn}"]


def _stamp(path: Path, spec: object) -> tuple[Path, bool]:
    """A marker file named after what was installed, so an unchanged install is skipped."""
    digest = hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]
    marker = path / f".installed-{digest}"
    return marker, marker.exists()


def tool_venv_ready() -> bool:
    return _stamp(TOOL_VENV, _python_requirements())[1]


def node_peers_ready() -> bool:
    return shutil.which("node") is not None and _stamp(NODE_DIR, NODE_PEERS)[1]


def ensure_tool_venv() -> None:
    marker, done = _stamp(TOOL_VENV, _python_requirements())
    if done:
        return
    if not tool_python().exists():
        subprocess.run(
            [sys.executable, "-m", "venv", str(TOOL_VENV)],
            check=True,
            timeout=INSTALL_TIMEOUT_SECONDS,
        )
    subprocess.run(
        [str(tool_python()), "-m", "pip", "install", "-q", *_python_requirements()],
        check=True,
        timeout=INSTALL_TIMEOUT_SECONDS,
    )
    for old in TOOL_VENV.glob(".installed-*"):
        old.unlink()
    marker.touch()


def ensure_node_peers() -> bool:
    """Install the node peer; False when this machine has no node/npm to run it with."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        return False
    marker, done = _stamp(NODE_DIR, NODE_PEERS)
    if done:
        return True
    NODE_DIR.mkdir(parents=True, exist_ok=True)
    package = {"name": "tusgallery-bench-peers", "private": True, "dependencies": NODE_PEERS}
    (NODE_DIR / "package.json").write_text(json.dumps(package, indent=2) + "\n")
    subprocess.run(
        ["npm", "install", "--no-audit", "--no-fund", "--loglevel=error"],
        cwd=NODE_DIR,
        check=True,
        timeout=INSTALL_TIMEOUT_SECONDS,
    )
    for old in NODE_DIR.glob(".installed-*"):
        old.unlink()
    marker.touch()
    return True


def installed_version(python: Path, distribution: str) -> str:
    code = f"import importlib.metadata as m; print(m.version({distribution!r}))"
    result = subprocess.run(
        [str(python), "-c", code], capture_output=True, text=True, timeout=60
    )
    return result.stdout.strip() or "?"


def node_version() -> str:
    node = shutil.which("node")
    if node is None:
        return "?"
    return subprocess.run(
        [node, "--version"], capture_output=True, text=True, timeout=30
    ).stdout.strip()
