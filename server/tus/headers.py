"""Parsing and validation of tus request headers. Every function raises an HTTPError naming
the header that was wrong, so a request is refused before a single body byte is read."""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from starlette.datastructures import Headers

from server.errors import BadRequest, PayloadTooLarge

TUS_VERSION = "1.0.0"
OFFSET_CONTENT_TYPE = "application/offset+octet-stream"
_METADATA_KEY = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")  # an RFC 7230 token
_MAX_INT_DIGITS = 19  # fits a signed 64-bit column


class Hasher(Protocol):
    def update(self, data: bytes, /) -> None: ...
    def digest(self) -> bytes: ...


class _Crc32:
    """zlib.crc32 behind hashlib's interface; digest is the big-endian 4-byte value."""

    def __init__(self) -> None:
        self._value = 0

    def update(self, data: bytes, /) -> None:
        self._value = zlib.crc32(data, self._value)

    def digest(self) -> bytes:
        return self._value.to_bytes(4, "big")


CHECKSUM_ALGORITHMS: dict[str, Callable[[], Hasher]] = {
    "sha1": hashlib.sha1,
    "sha256": hashlib.sha256,
    "md5": hashlib.md5,
    "crc32": _Crc32,
}


@dataclass(frozen=True)
class Checksum:
    algorithm: str
    expected: bytes

    def hasher(self) -> Hasher:
        return CHECKSUM_ALGORITHMS[self.algorithm]()


def parse_non_negative_int(headers: Headers, name: str) -> int | None:
    """An integer header, or None when absent."""
    raw = headers.get(name)
    if raw is None:
        return None
    raw = raw.strip()
    if not raw.isdigit() or not raw.isascii() or len(raw) > _MAX_INT_DIGITS:
        raise BadRequest(f"{name} must be a non-negative integer", code="invalid_header")
    return int(raw)


def parse_metadata(raw: str | None, max_bytes: int) -> dict[str, str]:
    """Decode `Upload-Metadata`: comma-separated `key base64value` pairs (value optional)."""
    if raw is None:
        return {}
    if len(raw.encode("latin-1", "replace")) > max_bytes:
        raise BadRequest(
            f"Upload-Metadata is larger than {max_bytes} bytes", code="metadata_too_large"
        )
    result: dict[str, str] = {}
    for pair in raw.split(","):
        pair = pair.strip()
        if not pair:
            raise BadRequest("Upload-Metadata has an empty pair", code="invalid_metadata")
        key, _, value = pair.partition(" ")
        if not _METADATA_KEY.match(key):
            raise BadRequest(f"Upload-Metadata key {key!r} is not valid", code="invalid_metadata")
        if key in result:
            raise BadRequest(f"Upload-Metadata key {key!r} repeats", code="invalid_metadata")
        value = value.strip()
        try:
            decoded = base64.b64decode(value, validate=True).decode("utf-8") if value else ""
        except (binascii.Error, UnicodeDecodeError):
            raise BadRequest(
                f"Upload-Metadata value of {key!r} is not base64 of UTF-8 text",
                code="invalid_metadata",
            ) from None
        result[key] = decoded
    return result


def parse_checksum(raw: str | None) -> Checksum | None:
    """`Upload-Checksum: ALGORITHM BASE64DIGEST`."""
    if raw is None:
        return None
    algorithm, _, encoded = raw.strip().partition(" ")
    algorithm = algorithm.lower()
    if algorithm not in CHECKSUM_ALGORITHMS:
        raise BadRequest(
            f"checksum algorithm {algorithm!r} is not supported "
            f"(supported: {', '.join(CHECKSUM_ALGORITHMS)})",
            code="unsupported_checksum",
        )
    try:
        expected = base64.b64decode(encoded.strip(), validate=True)
    except binascii.Error:
        raise BadRequest("Upload-Checksum digest is not base64", code="invalid_header") from None
    if len(expected) != len(CHECKSUM_ALGORITHMS[algorithm]().digest()):
        raise BadRequest(
            f"Upload-Checksum digest has the wrong length for {algorithm}", code="invalid_header"
        )
    return Checksum(algorithm, expected)


def parse_length_headers(headers: Headers, max_size: int) -> int | None:
    """Creation: exactly one of `Upload-Length` and `Upload-Defer-Length: 1`.

    Returns the length, or None when deferred.
    """
    length = parse_non_negative_int(headers, "upload-length")
    defer = headers.get("upload-defer-length")
    if defer is not None and defer.strip() != "1":
        raise BadRequest("Upload-Defer-Length must be 1", code="invalid_header")
    if (length is None) == (defer is None):
        raise BadRequest(
            "send exactly one of Upload-Length and Upload-Defer-Length", code="invalid_header"
        )
    if length is not None and length > max_size:
        raise PayloadTooLarge(
            f"Upload-Length {length} is over the limit of {max_size} bytes", max_size=max_size
        )
    return length


@dataclass(frozen=True)
class Concat:
    kind: str  # "partial" or "final"
    parts: tuple[str, ...] = ()  # upload ids of a final upload, in order


def parse_concat(raw: str | None, upload_id_from_url: Callable[[str], str | None]) -> Concat | None:
    """`Upload-Concat: partial` or `Upload-Concat: final;URL URL ...`."""
    if raw is None:
        return None
    raw = raw.strip()
    if raw == "partial":
        return Concat("partial")
    kind, _, urls = raw.partition(";")
    if kind.strip() != "final" or not urls.strip():
        raise BadRequest(
            "Upload-Concat must be 'partial' or 'final;URL URL ...'", code="invalid_header"
        )
    ids = []
    for url in urls.split():
        upload_id = upload_id_from_url(url)
        if upload_id is None:
            raise BadRequest(f"Upload-Concat names {url!r}, not an upload", code="invalid_concat")
        ids.append(upload_id)
    return Concat("final", tuple(ids))
