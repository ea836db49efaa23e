"""Shared REST plumbing: bounded body reads, JSON responses, veil error → HTTP status."""

from __future__ import annotations

import logging
import secrets
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from veil.errors import Error, ProtocolError
from veil.serving._dataplane import tf_code
from veil.serving._json_tensors import dumps

__all__ = ["BodyTooLarge", "guarded", "json_response", "read_body"]

_log = logging.getLogger(__name__)

# tensorflow.error.Code name → HTTP status, as TF Serving's http_server.cc maps them.
HTTP_STATUS = {
    "OK": 200,
    "CANCELLED": 499,
    "UNKNOWN": 500,
    "INVALID_ARGUMENT": 400,
    "DEADLINE_EXCEEDED": 504,
    "NOT_FOUND": 404,
    "ALREADY_EXISTS": 409,
    "PERMISSION_DENIED": 403,
    "RESOURCE_EXHAUSTED": 429,
    "FAILED_PRECONDITION": 400,
    "ABORTED": 409,
    "OUT_OF_RANGE": 400,
    "UNIMPLEMENTED": 501,
    "INTERNAL": 500,
    "UNAVAILABLE": 503,
    "DATA_LOSS": 500,
    "UNAUTHENTICATED": 401,
}


class BodyTooLarge(ProtocolError):  # noqa: N818 - reads as a condition, like StopIteration
    """The request body is over the configured limit (HTTP 413)."""


def json_response(document: Any, status: int = 200, *, body: bytes | None = None) -> Response:
    """A JSON response (every TF Serving answer is ``application/json``)."""
    content = dumps(document) if body is None else body
    return Response(content, status_code=status, media_type="application/json")


def error_response(message: str, status: int) -> Response:
    """``{"error": message}`` with ``status``."""
    return json_response({"error": message}, status)


async def read_body(request: Request, limit: int) -> bytes:
    """The whole body, refusing (before reading it) anything longer than ``limit`` bytes."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge(f"Request body is larger than the limit of {limit} bytes.")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise BodyTooLarge(f"Request body is larger than the limit of {limit} bytes.")
    return bytes(body)


Handler = Callable[[Request], Awaitable[Response]]


def guarded(handler: Handler) -> Handler:
    """Turn veil errors into ``{"error": ...}`` answers and anything else into a logged 500."""

    async def endpoint(request: Request) -> Response:
        try:
            return await handler(request)
        except BodyTooLarge as exc:
            return error_response(exc.message, 413)
        except Error as exc:
            return error_response(exc.message, HTTP_STATUS[tf_code(exc)])
        except Exception:  # noqa: BLE001 - logged with traceback, answered as 500
            request_id = secrets.token_hex(8)
            _log.exception(
                "request failed",
                extra={
                    "request_id": request_id,
                    "method": request.method,
                    "path": request.url.path,
                },
            )
            return error_response(
                f"Internal error (request id {request_id}); see server logs.", 500
            )

    return endpoint
