"""What every /api handler shares: the caller's principal, the JSON body, JSON answers.

Bodies are validated with pydantic models that forbid unknown fields; whatever is wrong comes
back as 400 (not JSON at all) or 422 (JSON of the wrong shape) listing each problem, never 500.
"""

from __future__ import annotations

import json
import logging
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse

from server.errors import BadRequest, Unprocessable
from server.services import services

M = TypeVar("M", bound=BaseModel)

# Finalize of 1000 images with captions stays far below this; anything larger is not a client
# of ours and is refused before it is parsed.
MAX_BODY_BYTES = 4 * 1024 * 1024


async def principal(request: Request) -> str:
    return await services(request).auth.authenticate(request)


async def read_json(request: Request) -> Any:
    body = await request.body()
    if len(body) > MAX_BODY_BYTES:
        raise BadRequest(f"body is larger than {MAX_BODY_BYTES} bytes", code="body_too_large")
    if not body:
        raise BadRequest("a JSON body is required", code="invalid_json")
    try:
        return json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadRequest(f"body is not valid JSON: {exc}", code="invalid_json") from None


def validate(model: type[M], data: Any) -> M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = [
            {
                "path": ".".join(str(part) for part in err["loc"]) or "(body)",
                "message": err["msg"],
            }
            for err in exc.errors(include_url=False, include_input=False)
        ]
        summary = "; ".join(f"{p['path']}: {p['message']}" for p in problems[:5])
        raise Unprocessable(
            f"invalid body: {summary}", code="invalid_body", problems=problems
        ) from None


async def read_body(request: Request, model: type[M]) -> tuple[M, Any]:
    """The validated body and the raw JSON it came from (hashed for idempotency)."""
    raw = await read_json(request)
    return validate(model, raw), raw


def json_response(data: Any, status_code: int = 200, **headers: str) -> JSONResponse:
    return JSONResponse(data, status_code=status_code, headers=headers or None)


def log_event(event: str, **fields: Any) -> None:
    """One structured line (JSON) per unit of work, whatever formatter the app installs."""
    _log.info(json.dumps({"event": event, **fields}, separators=(",", ":"), default=str))


_log = logging.getLogger("tusgallery.api")
