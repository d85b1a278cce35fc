"""Builds the Starlette app from settings. `server.app:app` is the ASGI entry (Procfile)."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio.to_thread
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from server import api
from server.auth import Authenticator
from server.db import Database
from server.locks import SHUTTING_DOWN, LocalLocker, Locker
from server.middleware import JSONErrorMiddleware
from server.migrate import migrate
from server.services import Services
from server.settings import Settings
from server.storage import build_stores
from server.tus import TusApp, TusConfig

log = logging.getLogger("tusgallery")

ADMIN_DIST = Path(__file__).resolve().parent.parent / "client_js" / "dist"
# What the admin page may upload; the image pipeline still sniffs the real type from the bytes.
ALLOWED_FILETYPES = frozenset(
    {"image/jpeg", "image/jpg", "image/png", "image/webp", "image/heic", "image/heif"}
)
# Headers a browser client must be allowed to read (tus-js-client reads all of these).
EXPOSED_HEADERS = [
    "Location",
    "Upload-Offset",
    "Upload-Length",
    "Upload-Metadata",
    "Upload-Expires",
    "Upload-Defer-Length",
    "Upload-Concat",
    "Tus-Resumable",
    "Tus-Version",
    "Tus-Extension",
    "Tus-Max-Size",
    "Tus-Checksum-Algorithm",
]


def build_locker(settings: Settings, db: Database) -> Locker:
    if settings.is_postgres:
        from server.locks_pg import PostgresLocker

        return PostgresLocker(settings.database_url)
    return LocalLocker()


def build_services(settings: Settings) -> Services:
    db = Database(settings.database_url)
    uploads, media = build_stores(settings)
    return Services(
        settings=settings,
        db=db,
        uploads=uploads,
        media=media,
        locker=build_locker(settings, db),
        auth=Authenticator(db, settings.admin_token),
    )


def _install_shutdown_signal(locker: Locker) -> list[tuple[int, Any]]:
    """On SIGTERM/SIGINT, ask in-flight PATCHes to save what they have, then let uvicorn's own
    handler begin its graceful shutdown (which otherwise waits for slow bodies to finish)."""
    loop = asyncio.get_running_loop()
    previous_handlers = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        previous = signal.getsignal(sig)
        if not callable(previous):
            continue

        def handler(signum: int, frame: Any, previous: Any = previous) -> None:
            loop.call_soon_threadsafe(locker.stop_all, SHUTTING_DOWN)
            previous(signum, frame)

        try:
            signal.signal(sig, handler)
        except ValueError:  # not the main thread (in-process test clients)
            return previous_handlers
        previous_handlers.append((sig, previous))
    return previous_handlers


async def not_found(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    return JSONResponse(
        {"error": code, "detail": exc.detail}, status_code=exc.status_code, headers=exc.headers
    )


async def admin_missing(request: Request) -> Response:
    return HTMLResponse(
        "<h1>tusgallery</h1><p>The admin page is not built. Run <code>scripts/dev</code> "
        "(or <code>scripts/build-client</code>).</p>",
        status_code=503,
    )


def configure_logging(level: str) -> None:
    """uvicorn configures only its own loggers; without a handler of ours the structured lines
    (one per finalize, one per processed upload) would be dropped below WARNING."""
    logger = logging.getLogger("tusgallery")
    logger.setLevel(level.upper())
    if not logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
        logger.addHandler(handler)
        # The root logger may have a handler too (the CLI's basicConfig): print each line once.
        logger.propagate = False


def create_app(settings: Settings | None = None) -> Starlette:
    settings = settings or Settings.from_env()
    configure_logging(settings.log_level)
    svc = build_services(settings)
    processor = api.ImageProcessor(svc)
    tus = TusApp(
        config=TusConfig(
            max_size=settings.max_upload_bytes,
            max_metadata_bytes=settings.max_metadata_bytes,
            expires_seconds=settings.upload_expires_seconds,
            read_timeout=settings.read_timeout_seconds,
            lock_timeout=settings.lock_timeout_seconds,
            trust_forwarded=settings.trust_forwarded,
            allowed_filetypes=ALLOWED_FILETYPES,
        ),
        db=svc.db,
        store=svc.uploads,
        locker=svc.locker,
        auth=svc.auth,
        on_complete=processor.upload_completed,
    )

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await anyio.to_thread.run_sync(migrate, svc.db.engine)
        restore = _install_shutdown_signal(svc.locker)
        await processor.start()
        log.info("tusgallery ready (db=%s, storage=%s)", svc.db.dialect, settings.storage)
        try:
            yield
        finally:
            for sig, previous in restore:
                signal.signal(sig, previous)
            await processor.stop()
            await svc.locker.close()
            await svc.uploads.close()
            await svc.media.close()
            svc.db.dispose()

    admin: BaseRoute = (
        Mount("/admin", app=StaticFiles(directory=ADMIN_DIST, html=True), name="admin")
        if ADMIN_DIST.is_dir()
        else Route("/admin/{path:path}", admin_missing)
    )
    routes: list[BaseRoute] = [
        Route("/files", tus),
        Route("/files/", tus),
        Route("/files/{upload_id}", tus),
        *api.routes,
        admin,
        Route("/", lambda request: RedirectResponse("/admin/")),
    ]
    cors = settings.cors_origins
    app = Starlette(
        routes=routes,
        middleware=[
            Middleware(
                CORSMiddleware,
                allow_origins=list(cors),
                allow_methods=["GET", "HEAD", "POST", "PATCH", "DELETE", "OPTIONS"],
                allow_headers=["*"],
                expose_headers=EXPOSED_HEADERS,
                max_age=86400,
            ),
            Middleware(JSONErrorMiddleware),
        ],
        exception_handlers={HTTPException: not_found},
        lifespan=lifespan,
    )
    app.state.services = svc
    app.state.processor = processor
    return app


def __getattr__(name: str) -> Any:
    # `server.app:app` builds the app on first use, so importing this module reads no env.
    if name == "app":
        global app
        app = create_app()
        return app
    raise AttributeError(name)
