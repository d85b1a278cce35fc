"""How homes, gallery images and uploads look in JSON answers."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol

from server.models import Home, Upload, UploadStatus

MEDIA_PREFIX = "/media/"


class ImageRow(Protocol):
    """What a view reads of a gallery image: a GalleryImage, or finalize's plain row (building
    SQLModel objects costs more than the whole finalize transaction for large galleries)."""

    id: str
    upload_id: str
    gallery: str
    position: int
    caption: str | None
    content_type: str
    width: int
    height: int
    size: int
    sha256: str
    display_key: str
    thumb_key: str


def media_url(key: str) -> str:
    return MEDIA_PREFIX + key


def image_view(image: ImageRow) -> dict[str, Any]:
    return {
        "id": image.id,
        "upload_id": image.upload_id,
        "url": media_url(image.display_key),
        "thumbnail_url": media_url(image.thumb_key),
        "width": image.width,
        "height": image.height,
        "content_type": image.content_type,
        "size": image.size,
        "sha256": image.sha256,
        "caption": image.caption,
        "position": image.position,
    }


def galleries_view(images: Iterable[ImageRow]) -> dict[str, list[dict[str, Any]]]:
    """Galleries by name (sorted), each in position order; an emptied gallery disappears."""
    galleries: dict[str, list[ImageRow]] = {}
    for image in images:
        galleries.setdefault(image.gallery, []).append(image)
    return {
        name: [image_view(i) for i in sorted(galleries[name], key=lambda i: i.position)]
        for name in sorted(galleries)
    }


def home_view(home: Home, images: Iterable[ImageRow]) -> dict[str, Any]:
    return {
        "id": home.id,
        "name": home.name,
        "address": home.address,
        "description": home.description,
        "version": home.version,
        "created_at": home.created_at.isoformat(),
        "updated_at": home.updated_at.isoformat(),
        "galleries": galleries_view(images),
    }


class UploadState(Protocol):
    status: str
    concat: str | None


def public_status(upload: UploadState) -> str:
    """The status clients see: `complete` is only a queue position inside the pipeline."""
    if upload.status == UploadStatus.COMPLETE and upload.concat == "partial":
        # A tus partial is never an image; it waits to be concatenated, not processed.
        return "complete"
    if upload.status == UploadStatus.COMPLETE:
        return UploadStatus.PROCESSING
    return upload.status


def upload_view(upload: Upload) -> dict[str, Any]:
    view: dict[str, Any] = {
        "id": upload.id,
        "status": public_status(upload),
        "offset": upload.offset,
        "length": upload.length,
    }
    if upload.concat:
        view["concat"] = upload.concat
    if upload.status == UploadStatus.FAILED:
        view["error"] = upload.error
        view["error_code"] = upload.error_code
    if upload.status == UploadStatus.READY:
        result = upload.result
        view["image"] = {
            "content_type": result.get("content_type"),
            "width": result.get("width"),
            "height": result.get("height"),
            "sha256": result.get("sha256"),
            "url": media_url(result["derivatives"]["display"]["key"]),
            "thumbnail_url": media_url(result["derivatives"]["thumb"]["key"]),
        }
    return view
