"""The mesh API: marble activation and parameter retrieval (two-step activation, ADR 0002)."""

from __future__ import annotations

import base64
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from veil.attestation import TEE_KINDS, Evidence
from veil.coordinator.api._jsend import b64_field, fail, jsend, peer_certificate, read_json, success
from veil.coordinator.api._ops import MetricsMiddleware
from veil.coordinator.service import ActivationRequest, CoordinatorService
from veil.errors import AuthorizationError, ProtocolError
from veil.manifest import RenderedParameters


def _params(p: RenderedParameters) -> dict[str, Any]:
    return {
        "files": {k: base64.b64encode(v).decode() for k, v in p.files.items()},
        "env": {k: base64.b64encode(v).decode() for k, v in p.env.items()},
        "argv": list(p.argv),
    }


def mesh_api(service: CoordinatorService) -> Starlette:
    """The Starlette app of the mesh API for ``service``."""

    @jsend
    async def activate(request: Request) -> Response:
        body = await read_json(request)
        tee = body.get("tee")
        if tee not in TEE_KINDS:
            raise ProtocolError(f"tee must be one of {', '.join(TEE_KINDS)}")
        marble_type, uuid = body.get("marbleType"), body.get("uuid")
        if not isinstance(marble_type, str) or not isinstance(uuid, str):
            raise ProtocolError("marbleType and uuid must be strings")
        req = ActivationRequest(
            marble_type=marble_type,
            uuid=uuid,
            csr_der=b64_field(body.get("csr"), "csr"),
            evidence=Evidence(tee=tee, raw=b64_field(body.get("evidence"), "evidence")),
        )
        result = await run_in_threadpool(service.activate, req)
        return success(
            {
                "certificate": result.certificate_pem.decode(),
                "intermediate": result.intermediate_pem.decode(),
                "marbleRoot": result.marble_root_pem.decode(),
                "coordinatorRoot": result.coordinator_root_pem.decode(),
                "parameters": _params(result.parameters) if result.parameters else None,
                "pendingSecrets": list(result.pending_secrets),
            }
        )

    @jsend
    async def parameters(request: Request) -> Response:
        cert = peer_certificate(request)
        if cert is None:
            raise AuthorizationError(
                "present the marble certificate from activation", authenticated=False
            )
        params = await run_in_threadpool(service.marble_parameters, cert)
        return success({"parameters": _params(params)})

    async def not_found(request: Request, exc: Exception) -> Response:
        return fail(404, f"no such endpoint: {request.method} {request.url.path}")

    app = Starlette(
        routes=[
            Route("/api/v2/marble/activate", activate, methods=["POST"]),
            Route("/api/v2/marble/parameters", parameters, methods=["GET"]),
        ],
        exception_handlers={404: not_found},
    )
    app.add_middleware(MetricsMiddleware, metrics=service.metrics, api="mesh")
    return app
