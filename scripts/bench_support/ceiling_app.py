"""The ceiling: the least a Starlette app can do to take an upload, run under the same uvicorn.

It speaks just enough of tus (POST, PATCH, HEAD, DELETE) for the benchmark's one tus client to
drive it like every other server: each PATCH body is streamed from `request.stream()` straight
into one file and the file is fsynced once, when its last byte lands. No auth, no checks, no
database, blocking writes on the event loop: anything tusgallery does on top costs time, so the
ratio tusgallery / ceiling is the price of the protocol, the checks and the bookkeeping.

Run: `uvicorn ceiling_app:app --app-dir scripts/bench_support` with `BENCH_CEILING_DIR` set.
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

DATA_DIR = Path(os.environ.get("BENCH_CEILING_DIR", "./ceiling-data"))
TUS_HEADERS = {"Tus-Resumable": "1.0.0"}


@dataclass
class Upload:
    path: Path
    length: int
    offset: int = 0


uploads: dict[str, Upload] = {}


async def create(request: Request) -> Response:
    upload_id = uuid.uuid4().hex
    path = DATA_DIR / upload_id
    path.touch()
    uploads[upload_id] = Upload(path, int(request.headers["upload-length"]))
    return Response(
        status_code=201, headers={**TUS_HEADERS, "Location": f"/files/{upload_id}"}
    )


async def append(request: Request) -> Response:
    upload = uploads[request.path_params["upload_id"]]
    with upload.path.open("ab") as file:
        async for data in request.stream():
            file.write(data)
            upload.offset += len(data)
        if upload.offset >= upload.length:
            file.flush()
            os.fsync(file.fileno())
    return Response(
        status_code=204, headers={**TUS_HEADERS, "Upload-Offset": str(upload.offset)}
    )


async def head(request: Request) -> Response:
    upload = uploads[request.path_params["upload_id"]]
    headers = {
        **TUS_HEADERS,
        "Upload-Offset": str(upload.offset),
        "Upload-Length": str(upload.length),
    }
    return Response(status_code=200, headers=headers)


async def terminate(request: Request) -> Response:
    upload = uploads.pop(request.path_params["upload_id"])
    upload.path.unlink(missing_ok=True)
    return Response(status_code=204, headers=TUS_HEADERS)


async def options(request: Request) -> Response:
    return Response(status_code=204, headers={**TUS_HEADERS, "Tus-Version": "1.0.0"})


DATA_DIR.mkdir(parents=True, exist_ok=True)
app = Starlette(
    routes=[
        Route("/files/", create, methods=["POST"]),
        Route("/files/", options, methods=["OPTIONS"]),
        Route("/files/{upload_id}", append, methods=["PATCH"]),
        Route("/files/{upload_id}", head, methods=["HEAD"]),
        Route("/files/{upload_id}", terminate, methods=["DELETE"]),
    ]
)
