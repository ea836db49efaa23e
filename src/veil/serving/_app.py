"""The REST app: TF Serving ``/v1``, KServe ``/v2`` and ``/healthz`` on one Starlette app."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from veil.serving._dataplane import DataPlane
from veil.serving._http import error_response, json_response
from veil.serving._rest_kserve import kserve_routes
from veil.serving._rest_tfs import TfServingRest

__all__ = ["rest_app"]

_ALL_METHODS = ["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"]


def rest_app(dataplane: DataPlane, *, max_request_bytes: int) -> Starlette:
    """Build the ASGI app; unknown paths answer 404 ``{"error": ...}``."""
    tfs = TfServingRest(dataplane, max_request_bytes=max_request_bytes)

    async def healthz(request: Request) -> Response:
        return json_response({"status": "ok"})

    async def fallback(request: Request) -> Response:
        path = request.scope.get("raw_path", b"").decode("latin-1") or request.url.path
        if tfs.claims(path):
            return await tfs.endpoint(request)
        return error_response(f"Not found: {request.method} {path}", 404)

    routes = [
        Route("/healthz", healthz, methods=["GET"]),
        *kserve_routes(dataplane, max_request_bytes=max_request_bytes),
        Route("/{path:path}", fallback, methods=_ALL_METHODS),
    ]
    return Starlette(routes=routes)
