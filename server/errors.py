"""Errors that carry their HTTP status, and the one JSON shape every error answer has.

Handlers raise `HTTPError` (or a subclass); the error middleware turns it into
`{"error": CODE, "detail": TEXT, ...extra}` with the status and headers it carries.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from starlette.responses import JSONResponse


class HTTPError(Exception):
    status: int = 500
    code: str = "internal_error"

    def __init__(
        self,
        detail: str,
        *,
        status: int | None = None,
        code: str | None = None,
        headers: Mapping[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        if status is not None:
            self.status = status
        if code is not None:
            self.code = code
        self.headers = dict(headers or {})
        self.extra = extra

    def body(self) -> dict[str, Any]:
        return {"error": self.code, "detail": self.detail, **self.extra}

    def response(self) -> JSONResponse:
        return JSONResponse(self.body(), status_code=self.status, headers=self.headers)


class BadRequest(HTTPError):
    status, code = 400, "bad_request"


class Unauthorized(HTTPError):
    status, code = 401, "unauthorized"

    def __init__(self, detail: str = "missing or invalid bearer token") -> None:
        super().__init__(detail, headers={"WWW-Authenticate": 'Bearer realm="tusgallery"'})


class Forbidden(HTTPError):
    status, code = 403, "forbidden"


class NotFound(HTTPError):
    status, code = 404, "not_found"


class Conflict(HTTPError):
    status, code = 409, "conflict"


class Gone(HTTPError):
    status, code = 410, "gone"


class PayloadTooLarge(HTTPError):
    status, code = 413, "too_large"


class UnsupportedMediaType(HTTPError):
    status, code = 415, "unsupported_media_type"


class Unprocessable(HTTPError):
    status, code = 422, "invalid"


class Locked(HTTPError):
    status, code = 423, "locked"


class ServiceUnavailable(HTTPError):
    status, code = 503, "unavailable"
