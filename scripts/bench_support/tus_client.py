"""The one tus client every server is measured with: POST, then sequential PATCHes.

Plain httpx over one kept-alive connection, no retries, no checksums, no parallel chunks: what
differs between two measurements is the server. Bodies are read from a payload file on disk with
`os.pread` in 1 MiB pieces and sent with an explicit Content-Length, so a 256 MiB single-request
upload (the ceiling's one stream) needs no 256 MiB buffer in the client.
"""

from __future__ import annotations

import base64
import contextlib
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urljoin

import httpx

PIECE = 1024 * 1024
REQUEST_TIMEOUT_SECONDS = 300.0


class TusError(RuntimeError):
    """A server answered something a correct tus server does not."""


@dataclass(frozen=True)
class Payload:
    """Bytes to upload: the first `length` bytes of `path`."""

    path: Path
    length: int

    def pieces(self, offset: int, size: int) -> Iterator[bytes]:
        fd = os.open(self.path, os.O_RDONLY)
        try:
            end = offset + size
            while offset < end:
                data = os.pread(fd, min(PIECE, end - offset), offset)
                if not data:
                    raise TusError(f"payload {self.path} is shorter than {end} bytes")
                offset += len(data)
                yield data
        finally:
            os.close(fd)


def make_payload(path: Path, length: int) -> Payload:
    """Random (incompressible) bytes, written once and reused by later runs."""
    if not path.exists() or path.stat().st_size < length:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(".partial")
        with partial.open("wb") as file:
            remaining = length
            while remaining:
                block = os.urandom(min(8 * PIECE, remaining))
                file.write(block)
                remaining -= len(block)
        partial.replace(path)
    return Payload(path, length)


class TusClient:
    """One connection to one server. Create it before timing: httpx.Client setup is not free."""

    def __init__(self, base_url: str, token: str) -> None:
        self.base_url = base_url
        self.client = httpx.Client(
            headers={"Tus-Resumable": "1.0.0", "Authorization": f"Bearer {token}"},
            timeout=REQUEST_TIMEOUT_SECONDS,
        )

    def close(self) -> None:
        self.client.close()

    def __enter__(self) -> TusClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def create(self, length: int) -> str:
        filename = base64.b64encode(b"bench.bin").decode()
        response = self.client.post(
            f"{self.base_url}/files/",
            headers={"Upload-Length": str(length), "Upload-Metadata": f"filename {filename}"},
        )
        if response.status_code != 201 or "location" not in response.headers:
            raise TusError(f"POST answered {response.status_code}: {response.text[:300]}")
        return urljoin(f"{self.base_url}/files/", response.headers["location"])

    def patch(self, url: str, payload: Payload, offset: int, size: int) -> int:
        response = self.client.patch(
            url,
            content=payload.pieces(offset, size),
            headers={
                "Upload-Offset": str(offset),
                "Content-Type": "application/offset+octet-stream",
                "Content-Length": str(size),
            },
        )
        if response.status_code != 204:
            raise TusError(f"PATCH answered {response.status_code}: {response.text[:300]}")
        new_offset = int(response.headers["upload-offset"])
        if new_offset != offset + size:
            raise TusError(f"PATCH of {size} at {offset} ended at offset {new_offset}")
        return new_offset

    def upload(self, payload: Payload, chunk_size: int) -> tuple[str, float]:
        """Upload the whole payload; returns its URL and the seconds from POST to last 204."""
        started = time.perf_counter()
        url = self.create(payload.length)
        offset = 0
        while offset < payload.length:
            offset = self.patch(url, payload, offset, min(chunk_size, payload.length - offset))
        return url, time.perf_counter() - started

    def terminate(self, url: str) -> None:
        """Free the server's disk between runs; untimed, and a refusal is not an error here."""
        with contextlib.suppress(httpx.HTTPError):
            self.client.delete(url)
