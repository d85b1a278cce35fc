"""The tus 1.0.0 protocol handler (core + creation, creation-with-upload, creation-defer-length,
expiration, checksum, termination, concatenation).

It knows HTTP and the protocol rules. Bytes go through an `UploadStore`, exclusive access through
a `Locker`, upload rows through `records`. It knows nothing of homes or images: when an upload's
last byte is stored it calls one hook, `on_complete(upload_id)`.

Every header is validated before a body byte is read. A body is streamed into storage as it
arrives; whatever way it ends, the recorded offset equals exactly the bytes kept.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import email.utils
import hmac
import logging
import re
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import NoReturn
from urllib.parse import quote, urlsplit

from sqlmodel import Session
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from server.auth import Authenticator
from server.db import Database, utcnow
from server.errors import (
    BadRequest,
    Conflict,
    Forbidden,
    Gone,
    HTTPError,
    Locked,
    NotFound,
    PayloadTooLarge,
    ServiceUnavailable,
    UnsupportedMediaType,
)
from server.locks import SHUTTING_DOWN, Locker, LockTimeout, UploadLock
from server.models import Upload, UploadStatus
from server.storage import ChunkWriter, PartialReadUnsupported, StorageError, UploadStore
from server.tus import records
from server.tus.body import BodyEnd, BodyResult, copy_body
from server.tus.headers import (
    CHECKSUM_ALGORITHMS,
    OFFSET_CONTENT_TYPE,
    TUS_VERSION,
    Checksum,
    Hasher,
    parse_checksum,
    parse_concat,
    parse_length_headers,
    parse_metadata,
    parse_non_negative_int,
)
from server.tus.recent import RecentRows

log = logging.getLogger("tusgallery.tus")

EXTENSIONS = (
    "creation",
    "creation-with-upload",
    "creation-defer-length",
    "expiration",
    "checksum",
    "termination",
    "concatenation",
)
_UPLOAD_ID = re.compile(r"^[0-9a-f]{32}$")
_UPLOAD_URL = re.compile(r"(?:^|/)files/([0-9a-f]{32})/?$")

CompletionHook = Callable[[str], Awaitable[None]]


class ChecksumMismatch(HTTPError):
    status, code = 460, "checksum_mismatch"


class InsufficientStorage(HTTPError):
    status, code = 507, "storage_error"


class RequestTimeout(HTTPError):
    status, code = 408, "request_timeout"


@dataclass(frozen=True)
class TusConfig:
    max_size: int
    max_metadata_bytes: int
    expires_seconds: int
    read_timeout: float
    lock_timeout: float
    trust_forwarded: bool = False
    # `filetype` metadata values accepted at creation; None accepts any.
    allowed_filetypes: frozenset[str] | None = None


def is_upload_id(value: str) -> bool:
    return bool(_UPLOAD_ID.match(value))


def upload_id_from_url(url: str) -> str | None:
    match = _UPLOAD_URL.search(urlsplit(url).path)
    return match.group(1) if match else None


def http_date(value: dt.datetime) -> str:
    return email.utils.format_datetime(value.astimezone(dt.UTC), usegmt=True)


class TusApp:
    """ASGI app for `/files/` and `/files/{upload_id}` (the route supplies `upload_id`)."""

    def __init__(
        self,
        *,
        config: TusConfig,
        db: Database,
        store: UploadStore,
        locker: Locker,
        auth: Authenticator,
        on_complete: CompletionHook | None = None,
    ) -> None:
        self.config = config
        self.db = db
        self.store = store
        self.locker = locker
        self.auth = auth
        self.on_complete = on_complete
        self.recent = RecentRows() if locker.serves_one_process else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        try:
            response = await self.dispatch(request)
        except HTTPError as exc:
            response = exc.response()
        response.headers["Tus-Resumable"] = TUS_VERSION
        await response(scope, receive, send)

    async def dispatch(self, request: Request) -> Response:
        method = request.method
        override = request.headers.get("x-http-method-override")
        if method == "POST" and override:
            method = override.strip().upper()
        upload_id: str | None = request.path_params.get("upload_id")
        principal = await self.auth.authenticate(request)
        if method == "OPTIONS":
            return self.options()
        if upload_id is None:
            if method == "POST":
                self.check_version(request)
                return await self.create(request, principal)
            raise HTTPError(
                f"{method} is not allowed on the upload collection",
                status=405,
                code="method_not_allowed",
                headers={"Allow": "OPTIONS, POST"},
            )
        if method not in ("GET", "HEAD", "PATCH", "DELETE"):
            raise HTTPError(
                f"{method} is not allowed on an upload",
                status=405,
                code="method_not_allowed",
                headers={"Allow": "OPTIONS, GET, HEAD, PATCH, DELETE"},
            )
        if method != "GET":  # GET is plain HTTP, for a browser link as much as a tus client
            self.check_version(request)
        if not is_upload_id(upload_id):
            # Not one of ours: never reaches the database or the file system.
            raise NotFound("no such upload")
        if method == "HEAD":
            return await self.head(upload_id, principal)
        if method == "PATCH":
            return await self.patch(request, upload_id, principal)
        if method == "DELETE":
            return await self.terminate(upload_id, principal)
        return await self.download(upload_id, principal)

    # -- helpers ---------------------------------------------------------------------------

    @staticmethod
    def check_version(request: Request) -> None:
        if request.headers.get("tus-resumable") != TUS_VERSION:
            raise HTTPError(
                f"Tus-Resumable must be {TUS_VERSION}",
                status=412,
                code="unsupported_version",
                headers={"Tus-Version": TUS_VERSION},
            )

    def options(self) -> Response:
        return Response(
            status_code=204,
            headers={
                "Tus-Version": TUS_VERSION,
                "Tus-Extension": ",".join(EXTENSIONS),
                "Tus-Max-Size": str(self.config.max_size),
                "Tus-Checksum-Algorithm": ",".join(CHECKSUM_ALGORITHMS),
            },
        )

    def upload_url(self, request: Request, upload_id: str) -> str:
        scheme = request.url.scheme
        host = request.headers.get("host") or request.url.netloc
        if self.config.trust_forwarded:
            forwarded = _parse_forwarded(request.headers.get("forwarded"))
            scheme = (
                forwarded.get("proto") or _first(request.headers.get("x-forwarded-proto")) or scheme
            )
            host = forwarded.get("host") or _first(request.headers.get("x-forwarded-host")) or host
        root_path = request.scope.get("root_path", "")
        return f"{scheme}://{host}{root_path}/files/{upload_id}"

    async def load(self, upload_id: str, principal: str) -> Upload:
        upload = await self.db.run(lambda s: records.get(s, upload_id))
        # Another principal's upload is indistinguishable from a missing one.
        if upload is None or not hmac.compare_digest(upload.owner, principal):
            raise NotFound("no such upload")
        return upload

    @staticmethod
    def check_not_expired(upload: Upload) -> None:
        if not upload.is_complete and upload.expires_at and upload.expires_at <= utcnow():
            raise Gone("the upload expired", code="expired")

    def new_expiry(self) -> dt.datetime:
        return utcnow() + dt.timedelta(seconds=self.config.expires_seconds)

    def progress_headers(self, upload: Upload) -> dict[str, str]:
        headers = {"Upload-Offset": str(upload.offset)}
        if not upload.is_complete and upload.expires_at is not None:
            headers["Upload-Expires"] = http_date(upload.expires_at)
        return headers

    def lock(self, upload_id: str) -> _LockGuard:
        return _LockGuard(self.locker, upload_id, self.config.lock_timeout)

    async def completed(self, upload: Upload) -> None:
        """Tell the rest of the app; a failing hook never fails the PATCH that stored the bytes."""
        if self.on_complete is None or upload.concat == "partial":
            return
        try:
            await self.on_complete(upload.id)
        except Exception:
            log.exception("completion hook failed for upload %s", upload.id)

    # -- creation --------------------------------------------------------------------------

    async def create(self, request: Request, principal: str) -> Response:
        headers = request.headers
        concat = parse_concat(headers.get("upload-concat"), upload_id_from_url)
        if concat is not None and concat.kind == "final":
            return await self.create_final(request, principal, concat.parts)
        length = parse_length_headers(headers, self.config.max_size)
        metadata_header = headers.get("upload-metadata")
        meta = parse_metadata(metadata_header, self.config.max_metadata_bytes)
        self.check_filetype(meta)
        content_length = parse_non_negative_int(headers, "content-length")
        content_type = headers.get("content-type", "")
        with_body = content_type.split(";")[0].strip() == OFFSET_CONTENT_TYPE
        if not with_body and (content_length or headers.get("transfer-encoding")):
            raise UnsupportedMediaType(
                f"a body sent with creation needs Content-Type: {OFFSET_CONTENT_TYPE}"
            )
        checksum = parse_checksum(headers.get("upload-checksum")) if with_body else None
        limit = self.config.max_size if length is None else length
        if with_body and content_length is not None and content_length > limit:
            raise PayloadTooLarge("the body is longer than Upload-Length")

        upload_id = secrets.token_hex(16)
        try:
            state = await self.store.create(upload_id)
        except StorageError as exc:
            raise InsufficientStorage(f"could not create the upload: {exc}") from exc
        upload = Upload(
            id=upload_id,
            owner=principal,
            length=length,
            metadata_header=metadata_header.strip() if metadata_header else None,
            meta=meta,
            storage_state=state,
            concat=concat.kind if concat else None,
            expires_at=self.new_expiry(),
        )
        await self.db.run(lambda s: records.insert(s, upload), write=True)
        location = self.upload_url(request, upload_id)
        response_headers = {"Location": location}
        if with_body:
            try:
                async with self.lock(upload_id) as lock:
                    upload = await self.write_body(
                        request, upload, lock, length, checksum, content_length
                    )
            except HTTPError:
                # The creation failed as a whole: the client never learns the URL.
                await self.discard(upload)
                raise
            response_headers |= {"Upload-Offset": str(upload.offset)}
        if not upload.is_complete:
            response_headers["Upload-Expires"] = http_date(upload.expires_at or self.new_expiry())
        return Response(status_code=201, headers=response_headers)

    def check_filetype(self, meta: dict[str, str]) -> None:
        allowed = self.config.allowed_filetypes
        filetype = meta.get("filetype")
        if allowed is None or filetype is None:
            return
        if filetype.split(";")[0].strip().lower() not in allowed:
            raise UnsupportedMediaType(
                f"filetype {filetype!r} is not accepted (accepted: {', '.join(sorted(allowed))})",
                code="unsupported_filetype",
            )

    async def create_final(
        self, request: Request, principal: str, part_ids: tuple[str, ...]
    ) -> Response:
        if request.headers.get("upload-length") is not None:
            raise BadRequest("a final upload must not carry Upload-Length", code="invalid_header")
        metadata_header = request.headers.get("upload-metadata")
        meta = parse_metadata(metadata_header, self.config.max_metadata_bytes)
        self.check_filetype(meta)
        parts = await self.db.run(lambda s: records.get_many(s, list(part_ids)))
        ordered: list[Upload] = []
        for part_id in part_ids:
            part = parts.get(part_id)
            if part is None or part.owner != principal:
                raise BadRequest(f"partial upload {part_id} does not exist", code="invalid_concat")
            if part.concat != "partial":
                raise BadRequest(f"upload {part_id} is not a partial upload", code="invalid_concat")
            if not part.is_complete:
                raise BadRequest(f"partial upload {part_id} is not complete", code="invalid_concat")
            ordered.append(part)
        length = sum(part.length or 0 for part in ordered)
        if length > self.config.max_size:
            raise PayloadTooLarge(f"the parts add up to more than {self.config.max_size} bytes")
        upload_id = secrets.token_hex(16)
        try:
            state = await self.store.concat(
                upload_id, [(p.id, p.storage_state, p.length or 0) for p in ordered]
            )
        except StorageError as exc:
            raise InsufficientStorage(f"could not concatenate: {exc}") from exc
        now = utcnow()
        upload = Upload(
            id=upload_id,
            owner=principal,
            length=length,
            offset=length,
            metadata_header=metadata_header.strip() if metadata_header else None,
            meta=meta,
            storage_state=state,
            concat="final",
            concat_parts=list(part_ids),
            status=UploadStatus.COMPLETE,
            completed_at=now,
        )
        await self.db.run(lambda s: records.insert(s, upload), write=True)
        await self.completed(upload)
        return Response(
            status_code=201,
            headers={"Location": self.upload_url(request, upload_id), "Upload-Offset": str(length)},
        )

    # -- HEAD, GET, DELETE -----------------------------------------------------------------

    async def head(self, upload_id: str, principal: str) -> Response:
        # Taking the lock makes a stale writer save its bytes first, so the offset is current.
        async with self.lock(upload_id):
            upload = await self.load(upload_id, principal)
        self.check_not_expired(upload)
        headers = self.progress_headers(upload) | {"Cache-Control": "no-store"}
        if upload.length is None:
            headers["Upload-Defer-Length"] = "1"
        else:
            headers["Upload-Length"] = str(upload.length)
        if upload.metadata_header:
            headers["Upload-Metadata"] = upload.metadata_header
        if upload.concat == "partial":
            headers["Upload-Concat"] = "partial"
        elif upload.concat == "final":
            headers["Upload-Concat"] = "final;" + " ".join(
                f"/files/{part}" for part in upload.concat_parts
            )
        return Response(status_code=200, headers=headers)

    async def download(self, upload_id: str, principal: str) -> Response:
        upload = await self.load(upload_id, principal)
        self.check_not_expired(upload)
        filename = upload.meta.get("filename") or upload_id
        try:
            stream = self.store.read(upload.id, upload.storage_state, upload.offset)
        except PartialReadUnsupported:
            raise Conflict(
                "this storage can read an upload back only once it is complete",
                code="upload_incomplete",
                headers={"Upload-Offset": str(upload.offset)},
            ) from None
        return StreamingResponse(
            stream,
            media_type="application/octet-stream",
            headers={
                "Content-Length": str(upload.offset),
                "Content-Disposition": f"attachment; filename*=UTF-8''{quote(filename)}",
                "Cache-Control": "no-store",
                "X-Content-Type-Options": "nosniff",
                "Upload-Offset": str(upload.offset),
            },
        )

    async def terminate(self, upload_id: str, principal: str) -> Response:
        async with self.lock(upload_id):
            if self.recent is not None:
                self.recent.drop(upload_id)
            upload = await self.load(upload_id, principal)
            if upload.pinned:
                raise Conflict(
                    "the upload is attached to a gallery; remove the image instead",
                    code="upload_in_use",
                )
            await self.discard(upload)
        return Response(status_code=204)

    async def discard(self, upload: Upload) -> None:
        await self.db.run(lambda s: records.remove(s, upload.id), write=True)
        try:
            await self.store.delete(upload.id, upload.storage_state)
        except StorageError:
            # The row is gone, so nothing refers to the bytes; cleanup removes orphans later.
            log.warning("could not delete the bytes of upload %s", upload.id, exc_info=True)

    # -- PATCH -----------------------------------------------------------------------------

    async def patch(self, request: Request, upload_id: str, principal: str) -> Response:
        headers = request.headers
        if headers.get("content-type", "").split(";")[0].strip() != OFFSET_CONTENT_TYPE:
            raise UnsupportedMediaType(f"PATCH needs Content-Type: {OFFSET_CONTENT_TYPE}")
        offset = parse_non_negative_int(headers, "upload-offset")
        if offset is None:
            raise BadRequest("Upload-Offset is required", code="invalid_header")
        checksum = parse_checksum(headers.get("upload-checksum"))
        new_length = parse_non_negative_int(headers, "upload-length")
        if new_length is not None and new_length > self.config.max_size:
            raise PayloadTooLarge(f"Upload-Length is over the limit of {self.config.max_size}")
        content_length = parse_non_negative_int(headers, "content-length")

        async with self.lock(upload_id) as lock:
            reused = self.recent.take(upload_id, principal, offset) if self.recent else None
            upload = reused or await self.load(upload_id, principal)
            self.check_not_expired(upload)
            if upload.concat == "final":
                raise Forbidden("a final upload cannot be patched", code="final_upload")
            if offset != upload.offset:
                raise Conflict(
                    f"Upload-Offset {offset} does not match the upload's offset {upload.offset}",
                    code="offset_mismatch",
                    headers={"Upload-Offset": str(upload.offset)},
                    offset=upload.offset,
                )
            length = upload.length
            if new_length is not None:
                if length is not None and new_length != length:
                    raise BadRequest("Upload-Length cannot change", code="invalid_header")
                if new_length < upload.offset:
                    raise BadRequest("Upload-Length is below the offset", code="invalid_header")
                length = new_length
            limit = (length if length is not None else self.config.max_size) - upload.offset
            if content_length is not None and content_length > limit:
                raise PayloadTooLarge(
                    f"the body ({content_length} bytes) runs past the upload's length",
                    headers={"Upload-Offset": str(upload.offset)},
                )
            was_complete = upload.is_complete and upload.length is not None
            if was_complete and content_length == 0:
                return Response(status_code=204, headers=self.progress_headers(upload))
            upload = await self.write_body(request, upload, lock, length, checksum, content_length)
            if self.recent is not None:
                self.recent.keep(upload)
            return Response(status_code=204, headers=self.progress_headers(upload))

    async def write_body(
        self,
        request: Request,
        upload: Upload,
        lock: UploadLock,
        length: int | None,
        checksum: Checksum | None,
        content_length: int | None,
    ) -> Upload:
        """Stream the body to storage and record the new offset; returns the updated upload."""
        limit = (length if length is not None else self.config.max_size) - upload.offset
        try:
            writer = await self.store.open_writer(
                upload.id, upload.offset, upload.storage_state, content_length
            )
        except StorageError as exc:
            raise InsufficientStorage(f"could not open the upload: {exc}") from exc
        hasher = checksum.hasher() if checksum else None
        try:
            result = await copy_body(
                request.receive,
                writer,
                limit=limit,
                hasher=hasher,
                idle_timeout=self.config.read_timeout,
                lock=lock,
            )
        except StorageError as exc:
            await writer.rollback()
            raise InsufficientStorage(f"could not store the chunk: {exc}") from exc
        except asyncio.CancelledError:
            # Server shutting down past its grace period: keep what arrived, then go.
            if checksum is None:
                await self.commit(upload, writer, length, writer.written)
            else:
                await writer.rollback()
            raise
        return await self.finish_body(upload, writer, lock, length, checksum, hasher, result)

    async def finish_body(
        self,
        upload: Upload,
        writer: ChunkWriter,
        lock: UploadLock,
        length: int | None,
        checksum: Checksum | None,
        hasher: Hasher | None,
        result: BodyResult,
    ) -> Upload:
        """Keep or drop what a body left in the writer, by how the body ended."""
        if result.end is BodyEnd.TOO_LONG:
            await writer.rollback()
            raise PayloadTooLarge(
                "the body runs past the upload's length; nothing of it was stored",
                headers={"Upload-Offset": str(upload.offset), "Connection": "close"},
            )
        if checksum is not None and hasher is not None:
            # A chunk is verified whole or not at all: a cut body cannot be checked.
            complete_body = result.end is BodyEnd.COMPLETE
            if not complete_body or not hmac.compare_digest(hasher.digest(), checksum.expected):
                await writer.rollback()
                if complete_body:
                    raise ChecksumMismatch(
                        f"{checksum.algorithm} of the body does not match Upload-Checksum; "
                        "nothing of this chunk was stored",
                        headers={"Upload-Offset": str(upload.offset)},
                    )
                return upload
        upload = await self.commit(upload, writer, length, result.written)
        if result.end is BodyEnd.STOPPED and lock.stop_reason == SHUTTING_DOWN:
            raise ServiceUnavailable(
                "the server is restarting; the bytes received were saved, resume shortly",
                headers={"Upload-Offset": str(upload.offset), "Connection": "close"},
                offset=upload.offset,
            )
        if result.end is BodyEnd.STOPPED:
            raise Locked(
                f"stopped: {lock.stop_reason}; the bytes received were saved",
                headers={"Upload-Offset": str(upload.offset), "Connection": "close"},
                offset=upload.offset,
            )
        if result.end is BodyEnd.IDLE:
            raise RequestTimeout(
                "no data arrived in time; the bytes received were saved",
                headers={"Upload-Offset": str(upload.offset), "Connection": "close"},
                offset=upload.offset,
            )
        return upload

    async def commit(
        self, upload: Upload, writer: ChunkWriter, length: int | None, written: int
    ) -> Upload:
        """Keep the written bytes and record the new offset (durably, if it is the last byte)."""
        state = await writer.commit()
        new_offset = upload.offset + written
        complete = length is not None and new_offset == length
        if complete:
            # The one fsync of the upload, before the final PATCH is answered.
            state = await self.store.finish(upload.id, new_offset, state)
        expires_at = None if complete else self.new_expiry()

        def save(session: Session) -> bool:
            return records.save_progress(
                session,
                upload.id,
                from_offset=upload.offset,
                offset=new_offset,
                length=length,
                storage_state=state,
                expires_at=expires_at,
                complete=complete,
            )

        if not await self.db.run(save, write=True):
            await self.moved_behind_our_back(upload.id)
        upload.offset, upload.length, upload.storage_state = new_offset, length, state
        upload.expires_at = expires_at
        if complete:
            upload.status = UploadStatus.COMPLETE
            await self.completed(upload)
        return upload

    async def moved_behind_our_back(self, upload_id: str) -> NoReturn:
        """The row changed while a PATCH held the lock: answer from what the database says.

        The chunk's bytes are in storage past the recorded offset; the next writer drops them
        (open_writer starts at the recorded offset).
        """
        current = await self.db.run(lambda s: records.get(s, upload_id))
        log.warning("upload %s changed behind its lock holder; chunk not recorded", upload_id)
        if current is None:
            raise NotFound("no such upload")
        raise Conflict(
            f"the upload is at offset {current.offset}; this chunk was not recorded",
            code="offset_mismatch",
            headers={"Upload-Offset": str(current.offset)},
            offset=current.offset,
        )


class _LockGuard:
    """`async with` around a lock hold that turns a timeout into 423."""

    def __init__(self, locker: Locker, upload_id: str, timeout: float) -> None:
        self._cm = locker.hold(upload_id, timeout)

    async def __aenter__(self) -> UploadLock:
        try:
            return await self._cm.__aenter__()
        except LockTimeout:
            raise Locked("the upload is busy with another request; try again") from None

    async def __aexit__(self, *exc: object) -> bool | None:
        return await self._cm.__aexit__(*exc)  # type: ignore[arg-type]


def _first(value: str | None) -> str | None:
    return value.split(",")[0].strip() or None if value else None


def _parse_forwarded(value: str | None) -> dict[str, str]:
    """The first element of an RFC 7239 `Forwarded` header."""
    if not value:
        return {}
    result = {}
    for pair in value.split(",")[0].split(";"):
        key, _, val = pair.strip().partition("=")
        if key and val:
            result[key.lower()] = val.strip('"')
    return result
