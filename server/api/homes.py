"""Homes: create, list, read, delete. Their galleries change only through finalize."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import delete
from sqlmodel import Session, col, select
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from server.api.attachments import delete_media, detach_uploads, media_keys
from server.api.common import json_response, principal, read_body
from server.api.schemas import HomeCreate
from server.api.views import home_view
from server.errors import BadRequest, NotFound
from server.models import GalleryImage, Home
from server.services import services

DEFAULT_PAGE = 50
MAX_PAGE = 200


def new_id() -> str:
    return uuid.uuid4().hex


def home_not_found(home_id: str) -> NotFound:
    return NotFound(f"no home {home_id!r}", code="home_not_found")


def lock_home(session: Session, home_id: str) -> Home | None:
    """The home's row, locked until commit on PostgreSQL (SQLite's write lock covers it)."""
    return session.exec(select(Home).where(Home.id == home_id).with_for_update()).first()


def images_of(session: Session, home_ids: list[str]) -> list[GalleryImage]:
    if not home_ids:
        return []
    query = select(GalleryImage).where(col(GalleryImage.home_id).in_(home_ids))
    return list(session.exec(query))


def _page_param(request: Request, name: str, default: int, maximum: int) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    if not raw.isdigit() or int(raw) > maximum:
        raise BadRequest(f"{name} must be an integer from 0 to {maximum}", code="invalid_query")
    return int(raw)


async def create_home(request: Request) -> JSONResponse:
    who = await principal(request)
    body, _raw = await read_body(request, HomeCreate)
    home = Home(id=new_id(), created_by=who, **body.model_dump())

    def insert(session: Session) -> dict[str, Any]:
        session.add(home)
        session.flush()
        return home_view(home, [])

    view = await services(request).db.run(insert, write=True)
    return json_response(view, 201, location=f"/api/homes/{home.id}")


async def list_homes(request: Request) -> JSONResponse:
    await principal(request)
    limit = _page_param(request, "limit", DEFAULT_PAGE, MAX_PAGE)
    offset = _page_param(request, "offset", 0, 10**9)

    def read(session: Session) -> list[dict[str, Any]]:
        query = select(Home).order_by(col(Home.created_at), col(Home.id))
        homes = list(session.exec(query.offset(offset).limit(limit)))
        by_home: dict[str, list[GalleryImage]] = {home.id: [] for home in homes}
        for image in images_of(session, list(by_home)):
            by_home[image.home_id].append(image)
        return [home_view(home, by_home[home.id]) for home in homes]

    homes = await services(request).db.run(read)
    return json_response({"homes": homes, "limit": limit, "offset": offset})


async def get_home(request: Request) -> JSONResponse:
    await principal(request)
    home_id: str = request.path_params["home_id"]

    def read(session: Session) -> dict[str, Any] | None:
        home = session.get(Home, home_id)
        return None if home is None else home_view(home, images_of(session, [home_id]))

    view = await services(request).db.run(read)
    if view is None:
        raise home_not_found(home_id)
    return json_response(view)


async def delete_home(request: Request) -> Response:
    await principal(request)
    home_id: str = request.path_params["home_id"]
    svc = services(request)

    def remove(session: Session) -> list[str] | None:
        home = lock_home(session, home_id)
        if home is None:
            return None
        images = images_of(session, [home_id])
        session.execute(delete(GalleryImage).where(col(GalleryImage.home_id) == home_id))
        detach_uploads(session, [image.upload_id for image in images])
        session.delete(home)
        return media_keys(images)

    keys = await svc.db.run(remove, write=True)
    if keys is None:
        raise home_not_found(home_id)
    await delete_media(svc.media, keys)
    return Response(status_code=204)
