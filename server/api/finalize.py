"""POST /api/homes/{id}/finalize: a home's fields and galleries, in one transaction.

The order of checks (the first failing one answers): body shape (400/422), unknown home (404),
Idempotency-Key replay or reuse (first answer / 422), `expected_version` (409), duplicates and
image ids not of this home (422), failed, partial or foreign uploads (422 `invalid_upload`),
uploads not processed yet (409 `upload_not_ready`), uploads attached to another home (409
`upload_already_attached`). Nothing is written before every check passed, and nothing is decoded:
image facts come from what the pipeline stored on the upload.

Concurrency is settled by the database, not by these checks alone: the home row is locked (FOR
UPDATE on PostgreSQL, SQLite's write lock) and its version bumped with a conditional UPDATE; the
unique upload_id of gallery_images refuses a second attachment even from a racing transaction.
Derivatives of detached images are deleted only after the commit, so a rolled-back finalize
loses no file.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

from sqlalchemy import Row, delete, insert, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select
from starlette.requests import Request
from starlette.responses import JSONResponse

from server.api.attachments import delete_media, detach_uploads, media_keys, pin_uploads
from server.api.common import json_response, log_event, principal, read_body
from server.api.homes import home_not_found, images_of, lock_home, new_id
from server.api.idempotency import IdempotencyKey, idempotency_key, load_record, save_record
from server.api.schemas import FinalizeBody, GalleryItem
from server.api.views import ImageRow, home_view, public_status
from server.db import utcnow
from server.errors import Conflict, HTTPError, Unprocessable
from server.models import GalleryImage, Home, Upload, UploadStatus
from server.services import services

_NOT_READY = (UploadStatus.RECEIVING, UploadStatus.COMPLETE, UploadStatus.PROCESSING)


@dataclass
class Outcome:
    status: int
    body: dict[str, Any]
    replayed: bool = False
    removed_keys: list[str] = field(default_factory=list)
    attached: int = 0
    detached: int = 0


@dataclass
class Placement:
    """One requested item, resolved: an image of this home, or an upload to attach."""

    item: GalleryItem
    image: GalleryImage | None = None
    upload: Row[Any] | None = None  # _UPLOAD_FACTS of the upload


def _resolve(
    body: FinalizeBody, current: list[GalleryImage]
) -> tuple[dict[str, list[Placement]], list[str]]:
    """Map each item to an existing image of the home, or to an upload still to attach."""
    by_id = {image.id: image for image in current}
    by_upload = {image.upload_id: image for image in current}
    plan: dict[str, list[Placement]] = {}
    unknown_images: list[dict[str, str]] = []
    duplicates: list[str] = []
    seen: set[str] = set()
    new_uploads: list[str] = []
    for gallery, items in body.galleries.items():
        placements = plan.setdefault(gallery, [])
        for item in items:
            if item.image_id is not None:
                image = by_id.get(item.image_id)
                if image is None:
                    unknown_images.append({"image_id": item.image_id, "reason": "not_in_home"})
                    continue
            else:
                # An upload already attached to this home means its image: resending the
                # upload ids of a previous finalize is harmless.
                image = by_upload.get(item.upload_id or "")
            identity = image.id if image is not None else f"upload:{item.upload_id}"
            if identity in seen:
                duplicates.append(item.image_id or item.upload_id or "")
                continue
            seen.add(identity)
            if image is None:
                new_uploads.append(item.upload_id or "")
            placements.append(Placement(item, image))
    if duplicates:
        raise Unprocessable(
            "an image may appear only once per home", code="duplicate_image", ids=duplicates
        )
    if unknown_images:
        raise Unprocessable(
            "image ids that are not images of this home",
            code="invalid_image",
            images=unknown_images,
        )
    return plan, new_uploads


# What finalize reads of an upload: loading whole rows (four JSON columns, a SQLModel object
# each) cost more than the rest of a 1000-image finalize together.
_UPLOAD_FACTS = (
    col(Upload.id),
    col(Upload.owner),
    col(Upload.concat),
    col(Upload.status),
    col(Upload.error_code),
    col(Upload.error),
    col(Upload.result),
)


def _load_uploads(session: Session, upload_ids: list[str], who: str) -> dict[str, Row[Any]]:
    """Lock and check the uploads to attach; raise listing every one that cannot be."""
    if not upload_ids:
        return {}
    query = (
        select(*_UPLOAD_FACTS)
        .where(col(Upload.id).in_(upload_ids))
        .order_by(col(Upload.id))  # one lock order for every transaction: no deadlocks
        .with_for_update()
    )
    found = {upload.id: upload for upload in session.execute(query)}
    invalid: list[dict[str, Any]] = []
    not_ready: list[dict[str, str]] = []
    for upload_id in upload_ids:
        upload = found.get(upload_id)
        if upload is None or upload.owner != who:
            # Another principal's upload is reported like a missing one: its existence is
            # not ours to reveal (the tus side answers 404 for it too).
            invalid.append({"upload_id": upload_id, "reason": "not_found"})
        elif upload.concat == "partial":
            invalid.append({"upload_id": upload_id, "reason": "partial_upload"})
        elif upload.status == UploadStatus.FAILED:
            invalid.append(
                {
                    "upload_id": upload_id,
                    "reason": upload.error_code or "failed",
                    "detail": upload.error or "processing failed",
                }
            )
        elif upload.status in _NOT_READY:
            not_ready.append({"upload_id": upload_id, "status": public_status(upload)})
    if invalid:
        raise Unprocessable(
            f"{len(invalid)} upload(s) cannot be attached", code="invalid_upload", uploads=invalid
        )
    if not_ready:
        raise Conflict(
            f"{len(not_ready)} upload(s) are not processed yet",
            code="upload_not_ready",
            uploads=not_ready,
        )
    return found


def _attached_elsewhere(session: Session, upload_ids: list[str], home_id: str) -> None:
    if not upload_ids:
        return
    query = select(GalleryImage.upload_id, GalleryImage.home_id).where(
        col(GalleryImage.upload_id).in_(upload_ids)
    )
    taken = [
        {"upload_id": upload_id, "home_id": other}
        for upload_id, other in session.exec(query)
        if other != home_id
    ]
    if taken:
        raise already_attached(taken)


def already_attached(taken: list[dict[str, str]] | None = None) -> Conflict:
    return Conflict(
        "upload(s) already belong to another home's gallery",
        code="upload_already_attached",
        uploads=taken or [],
    )


def _new_row(home_id: str, gallery: str, position: int, placement: Placement) -> dict[str, Any]:
    item, image, upload = placement.item, placement.image, placement.upload
    if image is not None:
        row = {c: getattr(image, c) for c in _IMAGE_COLUMNS}
        if item.caption_given:
            row["caption"] = item.caption
    else:
        assert upload is not None
        result = upload.result
        derivatives = result["derivatives"]
        row = {
            "id": new_id(),
            "upload_id": upload.id,
            "caption": item.caption,
            "content_type": result["content_type"],
            "width": result["width"],
            "height": result["height"],
            "size": result["size"],
            "sha256": result["sha256"],
            "display_key": derivatives["display"]["key"],
            "thumb_key": derivatives["thumb"]["key"],
            "created_at": utcnow(),
        }
    row.update(home_id=home_id, gallery=gallery, position=position)
    return row


_IMAGE_COLUMNS = (
    "id",
    "upload_id",
    "caption",
    "content_type",
    "width",
    "height",
    "size",
    "sha256",
    "display_key",
    "thumb_key",
    "created_at",
)


def finalize_in_transaction(
    session: Session, home_id: str, who: str, body: FinalizeBody, key: IdempotencyKey | None
) -> Outcome:
    home = lock_home(session, home_id)
    if home is None:
        raise home_not_found(home_id)
    if key is not None and (record := load_record(session, who, key)) is not None:
        return Outcome(record.status_code, record.response, replayed=True)
    if body.expected_version is not None and body.expected_version != home.version:
        raise Conflict(
            f"home is at version {home.version}, not {body.expected_version}",
            code="version_conflict",
            current_version=home.version,
        )

    current = images_of(session, [home_id])
    plan, new_upload_ids = _resolve(body, current)
    uploads = _load_uploads(session, new_upload_ids, who)
    _attached_elsewhere(session, new_upload_ids, home_id)
    for placements in plan.values():
        for placement in placements:
            if placement.image is None:
                placement.upload = uploads[placement.item.upload_id or ""]

    # Galleries that change: those named, and those an image is moved out of.
    kept = {p.image.id for ps in plan.values() for p in ps if p.image is not None}
    affected = set(plan) | {
        image.gallery for image in current if image.id in kept and image.gallery not in plan
    }
    rows: list[dict[str, Any]] = []
    for gallery in sorted(affected):
        if gallery in plan:
            placements = plan[gallery]
        else:
            remaining = [i for i in current if i.gallery == gallery and i.id not in kept]
            remaining.sort(key=lambda i: i.position)
            placements = [Placement(GalleryItem(image_id=i.id), i) for i in remaining]
        rows.extend(_new_row(home_id, gallery, n, p) for n, p in enumerate(placements))
    final_ids = {row["id"] for row in rows}
    detached = [i for i in current if i.gallery in affected and i.id not in final_ids]

    if affected:
        session.execute(
            delete(GalleryImage).where(
                col(GalleryImage.home_id) == home_id, col(GalleryImage.gallery).in_(affected)
            )
        )
    if rows:
        # Core executemany: the ORM's bulk path inspects every row dict first.
        session.execute(insert(GalleryImage.__table__), rows)  # type: ignore[arg-type]
    pin_uploads(session, new_upload_ids)
    detach_uploads(session, [image.upload_id for image in detached])

    fields = body.home.model_dump(exclude_none=True) if body.home is not None else {}
    now = utcnow()
    bumped = session.execute(
        update(Home)
        .where(col(Home.id) == home_id, col(Home.version) == home.version)
        .values(version=home.version + 1, updated_at=now, **fields)
        .execution_options(synchronize_session=False)
    )
    if bumped.rowcount != 1:  # type: ignore[attr-defined]
        # Unreachable while the row lock holds; kept as the guarantee that no update is lost.
        raise Conflict("home changed concurrently", code="version_conflict")
    # The answer is built from a detached copy: the row was written by the UPDATE above.
    session.expunge(home)
    for name, value in fields.items():
        setattr(home, name, value)
    home.version += 1
    home.updated_at = now

    untouched = [i for i in current if i.gallery not in affected]
    final_images: list[ImageRow] = [*untouched, *(SimpleNamespace(**row) for row in rows)]
    outcome = Outcome(
        200,
        home_view(home, final_images),
        removed_keys=media_keys(detached),
        attached=len(new_upload_ids),
        detached=len(detached),
    )
    if key is not None:
        save_record(session, who, key, outcome.status, outcome.body)
    return outcome


def _is_violation(exc: IntegrityError, *names: str) -> bool:
    message = str(exc.orig)
    return any(name in message for name in names)


async def finalize(request: Request) -> JSONResponse:
    started = time.perf_counter()
    who = await principal(request)
    home_id: str = request.path_params["home_id"]
    body, raw = await read_body(request, FinalizeBody)
    key = idempotency_key(request, raw)
    svc = services(request)

    def run(session: Session) -> Outcome:
        return finalize_in_transaction(session, home_id, who, body, key)

    counts: dict[str, Any] = {
        "galleries": len(body.galleries),
        "images": sum(len(items) for items in body.galleries.values()),
    }
    outcome: Outcome | None = None
    try:
        for attempt in (1, 2):
            try:
                outcome = await svc.db.run(run, write=True)
                break
            except IntegrityError as exc:
                if _is_violation(exc, "uq_gallery_images_upload_id", "gallery_images.upload_id"):
                    raise already_attached() from None
                if attempt == 1 and _is_violation(
                    exc, "idempotency_records_pkey", "idempotency_records.principal"
                ):
                    # A concurrent request with the same key committed first: answer from
                    # its record on the second pass.
                    continue
                raise
    except HTTPError as exc:
        counts["result"] = exc.code
        raise
    except Exception:
        counts["result"] = "error"
        raise
    else:
        assert outcome is not None
        counts.update(
            result="replayed" if outcome.replayed else "ok",
            attached=outcome.attached,
            detached=outcome.detached,
        )
    finally:
        ms = round((time.perf_counter() - started) * 1000, 1)
        log_event("finalize", home_id=home_id, ms=ms, **counts)
    await delete_media(svc.media, outcome.removed_keys)
    headers = {"idempotent-replayed": "true"} if outcome.replayed else {}
    return json_response(outcome.body, outcome.status, **headers)
