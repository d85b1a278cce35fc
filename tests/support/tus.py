"""Small helpers for speaking tus from tests with httpx (and with raw sockets for cut bodies)."""

from __future__ import annotations

import base64
import hashlib
import socket
import time
from urllib.parse import urlsplit

import httpx

TUS = {"Tus-Resumable": "1.0.0"}
OCTET = {"Content-Type": "application/offset+octet-stream"}


def encode_metadata(pairs: dict[str, str]) -> str:
    return ",".join(
        f"{key} {base64.b64encode(value.encode()).decode()}" if value else key
        for key, value in pairs.items()
    )


def decode_metadata(header: str) -> dict[str, str]:
    pairs = (item.strip().split(" ", 1) for item in header.split(",") if item.strip())
    return {p[0]: base64.b64decode(p[1]).decode() if len(p) == 2 else "" for p in pairs}


def create(
    client: httpx.Client,
    length: int | None,
    metadata: dict[str, str] | None = None,
    **headers: str,
) -> str:
    """POST /files/ and return the upload URL (asserts 201)."""
    h = dict(TUS)
    if length is None:
        h["Upload-Defer-Length"] = "1"
    else:
        h["Upload-Length"] = str(length)
    if metadata:
        h["Upload-Metadata"] = encode_metadata(metadata)
    h.update({k.replace("_", "-"): v for k, v in headers.items()})
    response = client.post("/files/", headers=h)
    assert response.status_code == 201, response.text
    return response.headers["Location"]


def patch(
    client: httpx.Client, url: str, offset: int, body: bytes, **headers: str
) -> httpx.Response:
    h = {**TUS, **OCTET, "Upload-Offset": str(offset)}
    h.update({k.replace("_", "-"): v for k, v in headers.items()})
    return client.patch(url, content=body, headers=h)


def head(client: httpx.Client, url: str) -> httpx.Response:
    return client.head(url, headers=TUS)


def offset_of(client: httpx.Client, url: str) -> int:
    response = head(client, url)
    assert response.status_code == 200, response.status_code
    return int(response.headers["Upload-Offset"])


def upload(client: httpx.Client, data: bytes, chunk: int = 1 << 20, **meta: str) -> str:
    url = create(client, len(data), meta or None)
    offset = 0
    while offset < len(data):
        response = patch(client, url, offset, data[offset : offset + chunk])
        assert response.status_code == 204, response.text
        offset = int(response.headers["Upload-Offset"])
    return url


def stored_sha256(client: httpx.Client, url: str) -> str:
    """sha256 of what the server stores for an upload, read back with GET /files/{id}.

    Only the path of `url` is used, so an upload created through a proxy is read from `client`'s
    server directly.
    """
    digest = hashlib.sha256()
    with client.stream("GET", urlsplit(url).path) as response:
        assert response.status_code == 200, response.status_code
        for piece in response.iter_bytes():
            digest.update(piece)
    return digest.hexdigest()


class RawPatch:
    """A PATCH over a raw socket, to cut or stall a body mid-way like a flaky link does."""

    def __init__(self, url: str, token: str, offset: int, content_length: int) -> None:
        parts = urlsplit(url)
        self.sock = socket.create_connection((parts.hostname, parts.port), timeout=30)
        request = (
            f"PATCH {parts.path} HTTP/1.1\r\n"
            f"Host: {parts.netloc}\r\n"
            f"Authorization: Bearer {token}\r\n"
            "Tus-Resumable: 1.0.0\r\n"
            "Content-Type: application/offset+octet-stream\r\n"
            f"Upload-Offset: {offset}\r\n"
            f"Content-Length: {content_length}\r\n\r\n"
        )
        self.sock.sendall(request.encode())

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def cut(self) -> None:
        """Drop the connection abruptly (RST), mid-body."""
        self.sock.setsockopt(
            socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00"
        )
        self.sock.close()

    def read_status(self, timeout: float = 30) -> int:
        self.sock.settimeout(timeout)
        data = b""
        while b"\r\n" not in data:
            chunk = self.sock.recv(4096)
            if not chunk:
                break
            data += chunk
        return int(data.split(b" ", 2)[1])

    def close(self) -> None:
        self.sock.close()


def wait_for_offset(client: httpx.Client, url: str, expected: int, timeout: float = 10) -> int:
    """HEAD until the offset reaches `expected` (a cut body is noticed asynchronously)."""
    deadline = time.monotonic() + timeout
    offset = offset_of(client, url)
    while offset != expected and time.monotonic() < deadline:
        time.sleep(0.05)
        offset = offset_of(client, url)
    return offset
