"""All configuration, read once from the environment.

Every knob lives here so operators find them in one place; the defaults are the safe embedded
setup (SQLite file + local disk under ./data, same-origin only, no forwarded headers trusted).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

MiB = 1024 * 1024


class SettingsError(ValueError):
    """An environment variable holds a value that cannot be used."""


def _int(env: Mapping[str, str], name: str, default: int, minimum: int = 0) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise SettingsError(f"{name} must be an integer, got {raw!r}") from exc
    if value < minimum:
        raise SettingsError(f"{name} must be >= {minimum}, got {value}")
    return value


def _float(env: Mapping[str, str], name: str, default: float, minimum: float = 0.0) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError as exc:
        raise SettingsError(f"{name} must be a number, got {raw!r}") from exc
    if value < minimum:
        raise SettingsError(f"{name} must be >= {minimum}, got {value}")
    return value


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name, "").strip().lower()
    if not raw:
        return default
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise SettingsError(f"{name} must be 0 or 1, got {raw!r}")


def _list(env: Mapping[str, str], name: str) -> tuple[str, ...]:
    return tuple(item.strip() for item in env.get(name, "").split(",") if item.strip())


@dataclass(frozen=True)
class Settings:
    port: int = 8000
    database_url: str = "sqlite:///./data/tusgallery.db"
    data_dir: Path = Path("./data")
    storage: str = "local"
    s3_bucket: str = ""
    s3_endpoint_url: str | None = None
    s3_region: str | None = None
    # Smallest S3 part is 5 MiB; larger parts mean fewer requests per upload.
    s3_part_size: int = 8 * MiB
    # Parts one PATCH uploads at once; memory per PATCH is about (this + 1) * part size.
    s3_write_concurrency: int = 4
    # Upload a part while its PATCH body arrives (unsigned payload: keep S3 on TLS or a
    # trusted network); off gathers each part, then uploads it with a signed payload.
    s3_stream_parts: bool = True
    # "redirect" answers /media/ with a presigned URL, "stream" proxies the bytes.
    s3_media_mode: str = "redirect"
    admin_token: str | None = None
    max_upload_bytes: int = 50 * MiB
    max_image_pixels: int = 50_000_000
    max_metadata_bytes: int = 4096
    upload_expires_seconds: int = 86400
    cors_origins: tuple[str, ...] = ()
    trust_forwarded: bool = False
    # A client that stops sending without closing gives up its lock after this long.
    read_timeout_seconds: float = 30.0
    # How long a request waits for another request on the same upload to let go (then 423).
    lock_timeout_seconds: float = 3.0
    image_workers: int = field(default_factory=lambda: max(1, min(2, os.cpu_count() or 1)))
    # A `processing` claim older than this is taken to belong to a crashed worker and redone.
    processing_stale_seconds: int = 300
    # How often an instance looks for uploads no hook announced (0: a quarter of the stale
    # time, between 0.5 and 30 s).
    processing_sweep_seconds: float = 0.0
    log_level: str = "info"

    @property
    def is_postgres(self) -> bool:
        return self.database_url.startswith("postgresql")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        storage = env.get("TUSGALLERY_STORAGE", "local").strip() or "local"
        if storage not in ("local", "s3"):
            raise SettingsError(f"TUSGALLERY_STORAGE must be 'local' or 's3', got {storage!r}")
        media_mode = env.get("TUSGALLERY_S3_MEDIA_MODE", "redirect").strip() or "redirect"
        if media_mode not in ("redirect", "stream"):
            raise SettingsError("TUSGALLERY_S3_MEDIA_MODE must be 'redirect' or 'stream'")
        bucket = env.get("TUSGALLERY_S3_BUCKET", "").strip()
        if storage == "s3" and not bucket:
            raise SettingsError("TUSGALLERY_STORAGE=s3 needs TUSGALLERY_S3_BUCKET")
        part_size = _int(env, "TUSGALLERY_S3_PART_SIZE", 8 * MiB, minimum=5 * MiB)
        return cls(
            port=_int(env, "PORT", 8000, minimum=0),
            database_url=env.get("DATABASE_URL", "").strip() or cls.database_url,
            data_dir=Path(env.get("TUSGALLERY_DATA_DIR", "").strip() or "./data"),
            storage=storage,
            s3_bucket=bucket,
            s3_endpoint_url=env.get("TUSGALLERY_S3_ENDPOINT_URL", "").strip() or None,
            s3_region=env.get("TUSGALLERY_S3_REGION", "").strip() or None,
            s3_part_size=part_size,
            s3_write_concurrency=_int(env, "TUSGALLERY_S3_WRITE_CONCURRENCY", 4, minimum=1),
            s3_stream_parts=_bool(env, "TUSGALLERY_S3_STREAM_PARTS", True),
            s3_media_mode=media_mode,
            admin_token=env.get("TUSGALLERY_ADMIN_TOKEN", "").strip() or None,
            max_upload_bytes=_int(env, "TUSGALLERY_MAX_UPLOAD_BYTES", 50 * MiB, minimum=1),
            max_image_pixels=_int(env, "TUSGALLERY_MAX_IMAGE_PIXELS", 50_000_000, minimum=1),
            max_metadata_bytes=_int(env, "TUSGALLERY_MAX_METADATA_BYTES", 4096, minimum=64),
            upload_expires_seconds=_int(env, "TUSGALLERY_UPLOAD_EXPIRES_SECONDS", 86400, 1),
            cors_origins=_list(env, "TUSGALLERY_CORS_ORIGINS"),
            trust_forwarded=_bool(env, "TUSGALLERY_TRUST_FORWARDED", False),
            read_timeout_seconds=_float(env, "TUSGALLERY_READ_TIMEOUT_SECONDS", 30.0, 0.1),
            lock_timeout_seconds=_float(env, "TUSGALLERY_LOCK_TIMEOUT_SECONDS", 3.0, 0.05),
            image_workers=_int(env, "TUSGALLERY_IMAGE_WORKERS", cls().image_workers, 1),
            processing_stale_seconds=_int(env, "TUSGALLERY_PROCESSING_STALE_SECONDS", 300, 1),
            processing_sweep_seconds=_float(env, "TUSGALLERY_PROCESSING_SWEEP_SECONDS", 0.0),
            log_level=env.get("TUSGALLERY_LOG_LEVEL", "info").strip() or "info",
        )
