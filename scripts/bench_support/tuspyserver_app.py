"""Peer: tuspyserver mounted in FastAPI the way its README's "Basic setup" shows.

Runs from the benchmark's own tool venv (.bench/venv), never from the project's environment:
`uvicorn tuspyserver_app:app --app-dir scripts/bench_support` with `BENCH_PEER_DIR` set.
The README's CORS middleware is kept so the peer does per request what a deployed one does.
"""

from __future__ import annotations

import os

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from tuspyserver import create_tus_router

app = FastAPI()
app.add_middleware(
    CORSMiddleware,
    allow_origins=["*"],
    allow_methods=["*"],
    allow_headers=["*"],
    expose_headers=[
        "Location",
        "Upload-Offset",
        "Tus-Resumable",
        "Tus-Version",
        "Tus-Extension",
        "Tus-Max-Size",
        "Upload-Expires",
        "Upload-Length",
    ],
)
app.include_router(create_tus_router(files_dir=os.environ["BENCH_PEER_DIR"]))
