"""Operations endpoints: liveness, readiness, Prometheus metrics, the activation event log."""

from __future__ import annotations

import time
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from veil.coordinator._metrics import Metrics
from veil.coordinator.core import Status
from veil.coordinator.service import CoordinatorService

_KNOWN_PREFIXES = ("/api/v2/", "/healthz", "/readyz", "/metrics", "/events")


class MetricsMiddleware:
    """ASGI middleware recording each request's latency by method, path and status."""

    def __init__(self, app: ASGIApp, *, metrics: Metrics, api: str) -> None:
        self.app = app
        self.metrics = metrics
        self.api = api

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def record(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, record)
        finally:
            path = str(scope.get("path", ""))
            route = path if path.startswith(_KNOWN_PREFIXES) and len(path) < 64 else "other"
            self.metrics.observe_request(
                str(scope.get("method", "")),
                f"{self.api}:{route}",
                status,
                time.perf_counter() - start,
            )


def ops_routes(service: CoordinatorService) -> list[Route]:
    """``/healthz``, ``/readyz``, ``/metrics`` and ``/events`` for ``service``."""

    async def healthz(_: Request) -> Response:
        return JSONResponse({"status": "success", "data": {"alive": True}})

    async def readyz(_: Request) -> Response:
        state = service.status()
        ready = state in (Status.ACCEPTING_MANIFEST, Status.ACCEPTING_MARBLES)
        data: dict[str, Any] = {"ready": ready, "code": int(state)}
        body = {"status": "success" if ready else "fail", "data": data, "message": state.message}
        return JSONResponse(body, status_code=200 if ready else 503)

    async def metrics(_: Request) -> Response:
        text = service.metrics.render(state=int(service.status()))
        return PlainTextResponse(text, media_type="text/plain; version=0.0.4; charset=utf-8")

    async def events(_: Request) -> Response:
        return JSONResponse({"status": "success", "data": {"events": service.events.list()}})

    return [
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
        Route("/events", events, methods=["GET"]),
    ]


def ops_app(service: CoordinatorService) -> Starlette:
    """The app of the separate ``--metrics-addr`` listener (plain HTTP, no secrets)."""
    return Starlette(routes=ops_routes(service))
