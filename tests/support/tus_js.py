"""Run the stock tus-js-client (tests/clients/tus_js_upload.mjs under Node) and read its report."""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.support.server import REPO

CLIENTS = REPO / "tests" / "clients"
SCRIPT = CLIENTS / "tus_js_upload.mjs"


def require_tus_js_client() -> str:
    """Path of `node`, failing (not skipping) when the project's setup was not run: a skipped
    real-client test would let a broken install pass."""
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is not installed; the real-client tests need Node.js >= 18")
    if not (CLIENTS / "node_modules" / "tus-js-client" / "package.json").is_file():
        pytest.fail("tus-js-client is not installed: run scripts/setup-test-clients")
    return node


@dataclass
class JsRun:
    returncode: int
    report: dict[str, Any]
    stderr: str

    @property
    def uploads(self) -> list[dict[str, Any]]:
        return list(self.report["uploads"])


def run_tus_js(
    endpoint: str,
    token: str,
    files: list[Path],
    *,
    chunk_size: int,
    retry_delays: list[int],
    parallel: int = 4,
    filetype: str | None = None,
    abort_after_bytes: int | None = None,
    resume: Path | None = None,
    timeout: float = 120,
) -> JsRun:
    """One run of the harness; `subprocess.run` kills node if it outlives `timeout`."""
    args = [
        require_tus_js_client(),
        str(SCRIPT),
        "--endpoint",
        endpoint,
        "--token",
        token,
        "--chunk-size",
        str(chunk_size),
        "--parallel",
        str(parallel),
        "--retry-delays",
        ",".join(str(d) for d in retry_delays),
    ]
    if filetype is not None:
        args += ["--filetype", filetype]
    if abort_after_bytes is not None:
        args += ["--abort-after-bytes", str(abort_after_bytes)]
    if resume is not None:
        args += ["--resume", str(resume)]
    done = subprocess.run(
        [*args, *(str(f) for f in files)],
        cwd=CLIENTS,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if not done.stdout.strip():
        pytest.fail(f"tus_js_upload.mjs printed no report (exit {done.returncode}): {done.stderr}")
    return JsRun(done.returncode, json.loads(done.stdout), done.stderr)
