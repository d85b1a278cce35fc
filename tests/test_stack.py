"""scripts/stack end to end: PostgreSQL + SeaweedFS + two instances behind its round-robin proxy
serve one upload whose PATCHes land on both instances; SIGTERM stops every process it started."""

from __future__ import annotations

import hashlib
import os
import random
import re
import signal
import subprocess
from pathlib import Path

import httpx

from tests.support.databases import postgres_database
from tests.support.server import REPO
from tests.support.tus import create, offset_of, patch

MiB = 1024 * 1024


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_stack_serves_through_its_proxy_and_stops_everything(tmp_path: Path) -> None:
    with postgres_database() as url:
        proc = subprocess.Popen(
            [str(REPO / "scripts" / "stack"), "--instances", "2", "--port", "0",
             "--dir", str(tmp_path)],
            env={**os.environ, "DATABASE_URL": url, "TUSGALLERY_ADMIN_TOKEN": "stack-token"},
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        try:
            lines: list[str] = []
            assert proc.stdout is not None
            for line in proc.stdout:
                lines.append(line)
                if line.startswith("stack ready: "):
                    break
            output = "".join(lines)
            ready = re.search(r"^stack ready: (\S+)", output, re.MULTILINE)
            assert ready, output
            s3_pid = int(re.search(r" pid (\d+)", output).group(1))  # type: ignore[union-attr]
            ports = re.search(r"instances on ports ([\d, ]+);", output).group(1)  # type: ignore[union-attr]
            base = ready.group(1)
            auth = {"Authorization": "Bearer stack-token"}
            data = random.Random(5).randbytes(7 * MiB + 11)
            with httpx.Client(base_url=base, headers=auth, timeout=60) as c:
                path = "/files/" + create(c, len(data)).rsplit("/", 1)[1]
            for offset in range(0, len(data), 2 * MiB):
                # A connection each: the proxy sends each to the next instance.
                with httpx.Client(base_url=base, headers=auth, timeout=60) as c:
                    response = patch(c, path, offset, data[offset : offset + 2 * MiB])
                    assert response.status_code == 204, response.text
            with httpx.Client(base_url=base, headers=auth, timeout=60) as c:
                assert offset_of(c, path) == len(data)
                stored = c.get(path).content
            assert hashlib.sha256(stored).digest() == hashlib.sha256(data).digest()
            logs = [(tmp_path / f"instance{n}.log") for n in range(2)]
            assert all(log.exists() for log in logs)
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(60)
        assert proc.returncode == 0
        assert not alive(s3_pid)
        for port in ports.split(","):
            try:
                httpx.get(f"http://127.0.0.1:{port.strip()}/api/health", timeout=2)
            except httpx.TransportError:
                continue
            raise AssertionError(f"instance on port {port} still answers")
