"""GET /api/uploads/{id}: where an upload is in its life (receiving, processing, ready, failed)."""

from __future__ import annotations

from sqlmodel import Session
from starlette.requests import Request
from starlette.responses import JSONResponse

from server.api.common import json_response, principal
from server.api.views import upload_view
from server.errors import NotFound
from server.models import Upload
from server.services import services


async def get_upload(request: Request) -> JSONResponse:
    who = await principal(request)
    upload_id: str = request.path_params["upload_id"]

    def read(session: Session) -> Upload | None:
        return session.get(Upload, upload_id)

    upload = await services(request).db.run(read)
    # Someone else's upload answers exactly like a missing one.
    if upload is None or upload.owner != who:
        raise NotFound(f"no upload {upload_id!r}", code="upload_not_found")
    return json_response(upload_view(upload))
