"""GET /media/ on S3, in both modes: a presigned redirect (the default) or the bytes streamed
through the app; and GET /files/ of an incomplete S3 upload past its first part is 409."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from server.storage import build_stores
from tests.support.s3 import S3Server
from tests.support.server import ServerProcess, server_env
from tests.support.tus import create, patch

MiB = 1024 * 1024


@pytest.fixture(scope="module")
def s3_env(s3_server: S3Server) -> dict[str, str]:
    return s3_server.server_env(bucket=s3_server.new_bucket())


def start(s3_env: dict[str, str], tmp_path: Path, **extra: str) -> ServerProcess:
    env = server_env(f"sqlite:///{tmp_path / 'db.sqlite'}", tmp_path, {**s3_env, **extra})
    return ServerProcess(env, log_path=tmp_path / "server.log")


@pytest.fixture
def stored_media(s3_env: dict[str, str], s3_server: S3Server, tmp_path: Path) -> Iterator[bytes]:
    _uploads, media = build_stores(s3_server.settings(**s3_env, TUSGALLERY_DATA_DIR=str(tmp_path)))
    data = os.urandom(50_000)
    asyncio.run(media.put_bytes("u1/a1/large.jpg", data, "image/jpeg"))
    yield data
    asyncio.run(media.delete("u1/a1/large.jpg"))


def test_redirect_mode_answers_with_a_presigned_url(
    s3_env: dict[str, str], stored_media: bytes, tmp_path: Path
) -> None:
    with start(s3_env, tmp_path) as server, httpx.Client(base_url=server.url) as client:
        response = client.get("/media/u1/a1/large.jpg")
        assert response.status_code == 307
        target = response.headers["Location"]
        assert target.startswith(s3_env["TUSGALLERY_S3_ENDPOINT_URL"])
        assert "X-Amz-Signature=" in target
        fetched = httpx.get(target)
        assert fetched.status_code == 200 and fetched.content == stored_media
        assert client.get("/media/u1/a1/missing.jpg").status_code == 404


def test_stream_mode_serves_the_bytes(
    s3_env: dict[str, str], stored_media: bytes, tmp_path: Path
) -> None:
    with (
        start(s3_env, tmp_path, TUSGALLERY_S3_MEDIA_MODE="stream") as server,
        httpx.Client(base_url=server.url) as client,
    ):
        response = client.get("/media/u1/a1/large.jpg")
        assert response.status_code == 200
        assert response.content == stored_media
        assert response.headers["content-type"] == "image/jpeg"
        assert "immutable" in response.headers["cache-control"]
        assert client.get("/media/u1/a1/missing.jpg").status_code == 404


def test_incomplete_upload_past_its_first_part_is_409(
    s3_env: dict[str, str], tmp_path: Path
) -> None:
    with (
        start(s3_env, tmp_path) as server,
        httpx.Client(base_url=server.url, headers=server.auth, timeout=60) as client,
    ):
        url = create(client, 12 * MiB)
        assert patch(client, url, 0, b"a" * 1000).status_code == 204
        assert client.get(url).content == b"a" * 1000  # still all in its tail object
        assert patch(client, url, 1000, b"b" * (6 * MiB)).status_code == 204
        response = client.get(url)
        assert response.status_code == 409
        assert response.json()["error"] == "upload_incomplete"
        assert response.headers["Upload-Offset"] == str(6 * MiB + 1000)
