"""The homes REST API (/api/...), media serving (/media/...) and the image pipeline runner.

Every /api route except /api/health needs the bearer token, reads included: homes and uploads
are admin data. /media/ is public: its objects are derivatives with no metadata, behind keys
that contain a random upload id, and browsers load them with plain <img src>.
"""

from __future__ import annotations

from starlette.routing import BaseRoute, Route

from server.api.finalize import finalize
from server.api.health import health
from server.api.homes import create_home, delete_home, get_home, list_homes
from server.api.media import get_media
from server.api.processing import ImageProcessor
from server.api.uploads import get_upload

routes: list[BaseRoute] = [
    Route("/api/health", health, methods=["GET"]),
    Route("/api/homes", create_home, methods=["POST"]),
    Route("/api/homes", list_homes, methods=["GET"]),
    Route("/api/homes/{home_id}", get_home, methods=["GET"]),
    Route("/api/homes/{home_id}", delete_home, methods=["DELETE"]),
    Route("/api/homes/{home_id}/finalize", finalize, methods=["POST"]),
    Route("/api/uploads/{upload_id}", get_upload, methods=["GET"]),
    Route("/media/{key:path}", get_media, methods=["GET", "HEAD"]),
]

__all__ = ["ImageProcessor", "routes"]
