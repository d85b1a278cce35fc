"""GET /api/health: 200 when the database and the media store answer, else 503."""

from __future__ import annotations

from sqlalchemy import text
from sqlmodel import Session
from starlette.requests import Request
from starlette.responses import JSONResponse

from server.api.common import json_response
from server.errors import ServiceUnavailable
from server.services import services

_PROBE_KEY = "health/probe"


async def health(request: Request) -> JSONResponse:
    svc = services(request)

    def ping(session: Session) -> None:
        session.execute(text("SELECT 1"))

    try:
        await svc.db.run(ping)
    except Exception as exc:
        raise ServiceUnavailable(f"database: {exc.__class__.__name__}", code="unhealthy") from None
    try:
        # A missing object is an answer too; only an error means storage is down.
        await svc.media.exists(_PROBE_KEY)
    except Exception as exc:
        raise ServiceUnavailable(f"storage: {exc.__class__.__name__}", code="unhealthy") from None
    return json_response({"status": "ok"})
