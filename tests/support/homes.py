"""Helpers shared by the homes, processing, finalize and seed tests (no tests in here).

Uploads go through the real tus endpoint with httpx; readiness is read back from
GET /api/uploads/{id}. Small JPEGs are made with Pillow in memory.
"""

from __future__ import annotations

import io
import json
import time
from collections.abc import Iterable
from typing import Any

import httpx
from PIL import Image
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine

from server.auth import hash_token

TUS = {"Tus-Resumable": "1.0.0"}
PATCH_TYPE = {"Content-Type": "application/offset+octet-stream"}


def small_jpeg(seed: int = 0, size: tuple[int, int] = (64, 48)) -> bytes:
    colour = ((seed * 37) % 256, (seed * 91) % 256, (seed * 53 + 100) % 256)
    buf = io.BytesIO()
    Image.new("RGB", size, colour).save(buf, "JPEG", quality=90)
    return buf.getvalue()


def create_upload(client: httpx.Client, length: int, **headers: str) -> str:
    res = client.post("/files/", headers={**TUS, "Upload-Length": str(length), **headers})
    assert res.status_code == 201, res.text
    return res.headers["location"].rstrip("/").rsplit("/", 1)[-1]


def patch(client: httpx.Client, upload_id: str, offset: int, data: bytes) -> httpx.Response:
    headers = {**TUS, **PATCH_TYPE, "Upload-Offset": str(offset)}
    return client.patch(f"/files/{upload_id}", content=data, headers=headers)


def tus_upload(client: httpx.Client, data: bytes, chunk: int = 4 * 1024 * 1024) -> str:
    """Upload `data` in PATCHes of at most `chunk` bytes; returns the upload id."""
    upload_id = create_upload(client, len(data))
    for offset in range(0, len(data), chunk):
        res = patch(client, upload_id, offset, data[offset : offset + chunk])
        assert res.status_code == 204, res.text
    return upload_id


def upload_status(client: httpx.Client, upload_id: str) -> dict[str, Any]:
    res = client.get(f"/api/uploads/{upload_id}")
    assert res.status_code == 200, res.text
    body: dict[str, Any] = res.json()
    return body


def wait_processed(
    client: httpx.Client, upload_ids: Iterable[str], timeout: float = 60.0
) -> dict[str, dict[str, Any]]:
    """Poll until every upload is `ready` or `failed`; returns their last status bodies."""
    pending = list(upload_ids)
    done: dict[str, dict[str, Any]] = {}
    deadline = time.monotonic() + timeout
    while pending:
        assert time.monotonic() < deadline, f"still processing after {timeout}s: {pending}"
        for upload_id in list(pending):
            status = upload_status(client, upload_id)
            if status["status"] in ("ready", "failed"):
                done[upload_id] = status
                pending.remove(upload_id)
        if pending:
            time.sleep(0.05)
    return done


def ready_uploads(client: httpx.Client, count: int, seed: int = 0) -> list[str]:
    ids = [tus_upload(client, small_jpeg(seed + n)) for n in range(count)]
    statuses = wait_processed(client, ids)
    assert all(s["status"] == "ready" for s in statuses.values()), statuses
    return ids


def create_home(client: httpx.Client, name: str = "Villa", **fields: str) -> dict[str, Any]:
    res = client.post("/api/homes", json={"name": name, **fields})
    assert res.status_code == 201, res.text
    home: dict[str, Any] = res.json()
    return home


def finalize(
    client: httpx.Client, home_id: str, body: dict[str, Any], **headers: str
) -> httpx.Response:
    return client.post(f"/api/homes/{home_id}/finalize", json=body, headers=headers)


def uploads_body(gallery: str, upload_ids: Iterable[str], **extra: Any) -> dict[str, Any]:
    return {"galleries": {gallery: [{"upload_id": u} for u in upload_ids]}, **extra}


def sql_engine(database_url: str) -> Engine:
    return create_engine(database_url)


def add_principal(database_url: str, name: str, token: str) -> None:
    """Another API principal (a second admin), stored the way `tusgallery token create` does."""
    engine = sql_engine(database_url)
    try:
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO api_tokens (name, token_hash, created_at) "
                    "VALUES (:n, :h, CURRENT_TIMESTAMP)"
                ),
                {"n": name, "h": hash_token(token)},
            )
    finally:
        engine.dispose()


def query(database_url: str, sql: str, **params: Any) -> list[Any]:
    engine = sql_engine(database_url)
    try:
        with engine.begin() as conn:
            return list(conn.execute(text(sql), params))
    finally:
        engine.dispose()


def log_events(log_text: str, event: str) -> list[dict[str, Any]]:
    """The structured lines (`log_event`) named `event` in a server's captured output."""
    found: list[dict[str, Any]] = []
    for line in log_text.splitlines():
        start = line.find('{"event":')
        if start >= 0:
            record: dict[str, Any] = json.loads(line[start:])
            if record["event"] == event:
                found.append(record)
    return found
