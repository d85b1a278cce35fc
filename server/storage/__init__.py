"""Storage backends for upload bytes and media objects (see base.py for the interfaces)."""

from __future__ import annotations

from server.settings import Settings
from server.storage.base import (
    ChunkWriter,
    MediaObject,
    MediaStore,
    PartialReadUnsupported,
    StorageError,
    StorageState,
    UploadStore,
)

__all__ = [
    "ChunkWriter",
    "MediaObject",
    "MediaStore",
    "PartialReadUnsupported",
    "StorageError",
    "StorageState",
    "UploadStore",
    "build_stores",
]


def build_stores(settings: Settings) -> tuple[UploadStore, MediaStore]:
    """The upload and media stores that `settings.storage` names."""
    if settings.storage == "s3":
        from server.storage.s3 import build_s3_stores

        return build_s3_stores(settings)
    from server.storage.local import LocalMediaStore, LocalUploadStore

    return LocalUploadStore(settings.data_dir), LocalMediaStore(settings.data_dir)
