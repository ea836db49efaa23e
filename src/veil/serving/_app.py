"""The REST app: TF Serving ``/v1``, KServe ``/v2``, ``/healthz`` and Prometheus metrics."""

from __future__ import annotations

import re
import time
from urllib.parse import unquote

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from veil.serving._dataplane import DataPlane
from veil.serving._http import error_response, json_response
from veil.serving._metrics import METRICS_PATH
from veil.serving._rest_kserve import kserve_routes
from veil.serving._rest_tfs import TfServingRest

__all__ = ["rest_app"]

_ALL_METHODS = ["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"]
_MODEL = re.compile(r"/v1/models/([^/:]+)[^:]*(?::(predict|classify|regress))?", re.IGNORECASE)
_API = {"predict": "Predict", "classify": "Classify", "regress": "Regress"}
_ORIGIN = re.compile(r"https?://.*", re.IGNORECASE)
_CORS_HEADERS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "POST, GET",
    "Access-Control-Allow-Headers": "Content-Type",
}


def rest_app(
    dataplane: DataPlane, *, max_request_bytes: int, cors: bool = False, metrics: bool = True
) -> Starlette:
    """Build the ASGI app; unknown paths answer 404 ``{"error": ...}``."""
    tfs = TfServingRest(dataplane, max_request_bytes=max_request_bytes)
    counters = dataplane.metrics

    async def healthz(request: Request) -> Response:
        return json_response({"status": "ok"})

    async def prometheus(request: Request) -> Response:
        return Response(counters.render(), media_type="text/plain; version=0.0.4")

    async def fallback(request: Request) -> Response:
        path = request.scope.get("raw_path", b"").decode("latin-1") or request.url.path
        if not tfs.claims(path):
            return error_response(f"Not found: {request.method} {path}", 404)
        if cors and request.method == "OPTIONS":
            if not _ORIGIN.fullmatch(request.headers.get("origin", "")):
                response = error_response("Origin header is missing in CORS preflight", 400)
            else:
                response = Response(status_code=200)
            response.headers.update(_CORS_HEADERS)
            return response
        started = time.perf_counter()
        response = await tfs.endpoint(request)
        match = _MODEL.fullmatch(path)
        if match and request.method == "POST":
            status = "OK" if response.status_code == 200 else f"HTTP_{response.status_code}"
            api = _API.get((match.group(2) or "").lower(), "Other")
            counters.observe(unquote(match.group(1)), api, status, time.perf_counter() - started)
        if cors:
            response.headers.update(_CORS_HEADERS)
        return response

    routes = [
        Route("/healthz", healthz, methods=["GET"]),
        *kserve_routes(dataplane, max_request_bytes=max_request_bytes),
    ]
    if metrics:
        routes.append(Route(METRICS_PATH, prometheus, methods=["GET"]))
    routes.append(Route("/{path:path}", fallback, methods=_ALL_METHODS))

    async def unmatched(request: Request, exc: Exception) -> Response:
        # paths the catch-all cannot match (e.g. a decoded newline) still get a JSON error
        status = 405 if getattr(exc, "status_code", 404) == 405 else 404
        path = request.scope.get("raw_path", b"").decode("latin-1") or request.url.path
        return error_response(f"Not found: {request.method} {path}", status)

    return Starlette(routes=routes, exception_handlers={404: unmatched, 405: unmatched})
