"""JSend envelopes and the one mapping from veil errors to HTTP status codes."""

from __future__ import annotations

import base64
import binascii
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from veil.errors import (
    AuthorizationError,
    ConfigurationError,
    EnvironmentFailure,
    Error,
    ManifestError,
    NetworkError,
    NotFoundError,
    ProtocolError,
    StateError,
    StorageError,
    VerificationError,
)

log = logging.getLogger(__name__)
MAX_BODY = 2 * 1024 * 1024


def success(data: Any) -> JSONResponse:
    """``{"status": "success", "data": …}``."""
    return JSONResponse({"status": "success", "data": data})


def fail(status_code: int, message: str, *, data: Any = None) -> JSONResponse:
    """``{"status": "fail", …}``: the caller must change its request."""
    return JSONResponse(
        {"status": "fail", "data": data, "message": message}, status_code=status_code
    )


def error_response(exc: Exception) -> JSONResponse:
    """Map an exception to a JSend response. Unexpected errors reveal nothing."""
    if isinstance(exc, AuthorizationError):
        return fail(403 if exc.authenticated else 401, exc.message)
    if isinstance(exc, NotFoundError):
        return fail(404, exc.message)
    if isinstance(exc, StateError):
        if exc.retryable:
            resp = fail(503, exc.message)
            resp.headers["Retry-After"] = "1"
            return resp
        return fail(409, exc.message)
    if isinstance(exc, VerificationError):
        return fail(403, exc.message)
    if isinstance(exc, ManifestError | ProtocolError | ConfigurationError):
        return fail(400, exc.message)
    if isinstance(exc, NetworkError) or (
        isinstance(exc, StorageError) and getattr(exc, "retryable", False)
    ):
        # The shared store was unreachable or the transaction kept losing to other replicas
        # (ADR 0008): nothing was decided, the caller may retry here or at another replica.
        log.warning("request failed, retryable: %s", exc.message)
        resp = JSONResponse(
            {"status": "error", "data": None, "message": exc.message}, status_code=503
        )
        resp.headers["Retry-After"] = "1"
        return resp
    if isinstance(exc, EnvironmentFailure | Error):
        log.error("request failed: %s", exc.message)
        return JSONResponse(
            {"status": "error", "data": None, "message": exc.message}, status_code=500
        )
    log.exception("unexpected error")
    return JSONResponse(
        {"status": "error", "data": None, "message": "internal error"}, status_code=500
    )


async def read_json(request: Request) -> dict[str, Any]:
    """Read a JSON object body of at most ``MAX_BODY`` bytes."""
    length = request.headers.get("content-length")
    if length is not None and (not length.isdigit() or int(length) > MAX_BODY):
        raise ProtocolError(f"the request body is larger than {MAX_BODY} bytes")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY:
            raise ProtocolError(f"the request body is larger than {MAX_BODY} bytes")
    try:
        doc = json.loads(body)
    except (ValueError, RecursionError):
        raise ProtocolError("the request body is not valid JSON") from None
    if not isinstance(doc, dict):
        raise ProtocolError("the request body must be a JSON object")
    return doc


def peer_certificate(request: Request) -> bytes | None:
    """DER of the TLS client certificate, if the client presented one."""
    tls = request.scope.get("extensions", {}).get("tls", {})
    cert = tls.get("client_cert_der")
    return cert if isinstance(cert, bytes) else None


Handler = Callable[[Request], Awaitable[Response]]


def jsend(handler: Handler) -> Handler:
    """Wrap a handler so every veil error becomes its JSend response."""

    async def wrapped(request: Request) -> Response:
        try:
            return await handler(request)
        except Exception as exc:  # noqa: BLE001 - mapped in one place, unexpected ones logged
            return error_response(exc)

    return wrapped


def only_fields(body: dict[str, Any], *allowed: str) -> None:
    """Raise a ProtocolError naming the first field of ``body`` that is not ``allowed``."""
    for key in body:
        if key not in allowed:
            raise ProtocolError(f"unknown field {key!r}; the fields here are {', '.join(allowed)}")


def b64_field(value: object, what: str) -> bytes:
    """Decode a base64 JSON field or raise a ProtocolError naming it."""
    if not isinstance(value, str):
        raise ProtocolError(f"{what} must be a base64 string")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise ProtocolError(f"{what} is not valid base64") from None
