"""ASGI middleware: turn errors into the JSON answer the contract promises, inside CORS.

Starlette's own error page sits outside every user middleware, so a 500 it renders would carry
no CORS headers and a browser would report only "network error". This middleware sits inside
CORS and answers every error itself.
"""

from __future__ import annotations

import logging

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from server.errors import HTTPError

log = logging.getLogger("tusgallery.errors")


class JSONErrorMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def send_tracking(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, send_tracking)
        except HTTPError as exc:
            if started:
                raise
            await exc.response()(scope, receive, send)
        except Exception:
            log.exception("unhandled error on %s %s", scope.get("method"), scope.get("path"))
            if started:
                raise
            error = HTTPError("internal server error; the request was not completed")
            await error.response()(scope, receive, send)
