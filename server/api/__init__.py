"""REST API (placeholder until the homes API lands): health only."""

from __future__ import annotations

from sqlalchemy import text
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Route

from server.services import Services, services


async def health(request: Request) -> JSONResponse:
    svc = services(request)
    try:
        await svc.db.run(lambda s: s.execute(text("SELECT 1")))
    except Exception as exc:
        return JSONResponse({"status": "unavailable", "detail": str(exc)}, status_code=503)
    return JSONResponse({"status": "ok"})


class ImageProcessor:
    """Placeholder: the image pipeline hooks in here."""

    def __init__(self, svc: Services) -> None:
        self.svc = svc

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    async def upload_completed(self, upload_id: str) -> None:
        return None


routes: list[BaseRoute] = [Route("/api/health", health)]
