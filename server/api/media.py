"""GET /media/{key}: the derivatives of gallery images, public so <img src> works without a token.

Only derivatives live in the media store (stripped of EXIF/GPS by the pipeline); originals stay
private as upload bytes. A key contains the upload id and the processing attempt, so the bytes
behind a URL never change and may be cached for good.
"""

from __future__ import annotations

import mimetypes

from starlette.requests import Request
from starlette.responses import FileResponse, RedirectResponse, Response, StreamingResponse

from server.errors import NotFound
from server.services import services
from server.storage import StorageError

CACHE_FOREVER = "public, max-age=31536000, immutable"


async def get_media(request: Request) -> Response:
    key: str = request.path_params["key"]
    svc = services(request)
    not_found = NotFound(f"no media object {key!r}", code="media_not_found")
    path = svc.media.file_path(key)
    if path is not None:
        return FileResponse(path, headers={"cache-control": CACHE_FOREVER})
    try:
        if not await svc.media.exists(key):
            raise not_found
        if svc.settings.s3_media_mode == "redirect":
            url = await svc.media.presigned_url(key)
            if url is not None:
                return RedirectResponse(url, status_code=307)
        stream = svc.media.open(key)
    except (FileNotFoundError, StorageError):
        raise not_found from None
    content_type = mimetypes.guess_type(key)[0] or "application/octet-stream"
    return StreamingResponse(
        stream, media_type=content_type, headers={"cache-control": CACHE_FOREVER}
    )
