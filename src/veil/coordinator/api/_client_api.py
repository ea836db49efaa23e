"""The client API: MarbleRun's v2 paths under ``/api/v2`` with JSend envelopes."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from veil.coordinator.api._jsend import (
    b64_field,
    fail,
    jsend,
    only_fields,
    peer_certificate,
    read_json,
    success,
)
from veil.coordinator.api._openapi import openapi_document
from veil.coordinator.api._ops import MetricsMiddleware, ops_routes
from veil.coordinator.service import CoordinatorService, UpdateResult
from veil.errors import NotFoundError, ProtocolError


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _update_result(result: UpdateResult) -> dict[str, Any]:
    return {
        "applied": result.applied,
        "kind": result.kind,
        "fingerprint": result.fingerprint,
        "acknowledged": list(result.acknowledged),
        "missingUsers": list(result.missing),
        "missingAcknowledgements": result.remaining,
        "recoverySecrets": {k: _b64(v) for k, v in result.recovery_secrets.items()},
    }


async def _manifest_body(request: Request) -> bytes:
    body = await read_json(request)
    only_fields(body, "manifest")
    return b64_field(body.get("manifest"), "manifest")


def _state_routes(service: CoordinatorService) -> list[Route]:
    @jsend
    async def status(_: Request) -> Response:
        s = service.status()
        return success({"code": int(s), "message": s.message})

    @jsend
    async def get_manifest(_: Request) -> Response:
        doc = service.manifest_document()
        if doc is None:
            return success(
                {"manifest": None, "manifestFingerprint": "", "manifestSignatureRootECDSA": None}
            )
        raw, fingerprint, signature = doc
        return success(
            {
                "manifest": _b64(raw),
                "manifestFingerprint": fingerprint,
                "manifestSignatureRootECDSA": _b64(signature),
                "securityVersionUpdates": service.security_versions(),
            }
        )

    @jsend
    async def post_manifest(request: Request) -> Response:
        raw = await _manifest_body(request)
        result = await run_in_threadpool(service.set_manifest, raw)
        return success(
            {"recoverySecrets": {k: _b64(v) for k, v in result.recovery_secrets.items()}}
        )

    @jsend
    async def quote(request: Request) -> Response:
        nonce_text = request.query_params.get("nonce", "")
        if len(nonce_text) > 128:
            raise ProtocolError("the nonce is at most 64 bytes")
        try:
            padded = nonce_text + "=" * (-len(nonce_text) % 4)
            nonce = base64.b64decode(padded, altchars=b"-_", validate=True)
        except (binascii.Error, ValueError):
            raise ProtocolError("nonce must be base64url") from None
        evidence = await run_in_threadpool(service.quote, nonce)
        return success(
            {
                "cert": service.certificate_chain_pem().decode(),
                "quote": _b64(evidence.raw),
                "tee": evidence.tee,
            }
        )

    return [
        Route("/api/v2/status", status, methods=["GET"]),
        Route("/api/v2/manifest", get_manifest, methods=["GET"]),
        Route("/api/v2/manifest", post_manifest, methods=["POST"]),
        Route("/api/v2/quote", quote, methods=["GET"]),
    ]


def _secret_routes(service: CoordinatorService) -> list[Route]:
    @jsend
    async def post_secrets(request: Request) -> Response:
        body = await read_json(request)
        only_fields(body, "secrets")
        secrets = body.get("secrets")
        if not isinstance(secrets, dict) or not secrets:
            raise ProtocolError('body must be {"secrets": {name: {"Key": base64}}}')
        values: dict[str, bytes] = {}
        for name, entry in secrets.items():
            if not isinstance(entry, dict) or "Key" not in entry:
                raise ProtocolError(f"secret {name!r} must be an object with a base64 Key")
            only_fields(entry, "Key")
            values[str(name)] = b64_field(entry["Key"], f"secret {name!r} Key")
        await run_in_threadpool(service.write_secrets, peer_certificate(request), values)
        return success(None)

    @jsend
    async def get_secrets(request: Request) -> Response:
        names = request.query_params.getlist("s")
        if not names:
            raise ProtocolError("name at least one secret with ?s=NAME")
        if len(names) > 256:
            raise ProtocolError("ask for at most 256 secrets at once")
        values = await run_in_threadpool(service.read_secrets, peer_certificate(request), names)
        out = {
            name: {
                k: _b64(v)
                for k, v in (
                    ("Key", value.key),
                    ("Cert", value.cert_der),
                    ("Public", value.public_der),
                    ("Private", value.private_der),
                )
                if v is not None
            }
            for name, value in values.items()
        }
        return success({"secrets": out})

    return [
        Route("/api/v2/secrets", get_secrets, methods=["GET"]),
        Route("/api/v2/secrets", post_secrets, methods=["POST"]),
    ]


def _update_routes(service: CoordinatorService) -> list[Route]:
    @jsend
    async def update_log(_: Request) -> Response:
        signed = await run_in_threadpool(service.signed_update_log)
        return success({"updateLog": list(signed.entries), "head": signed.head})

    @jsend
    async def post_update(request: Request) -> Response:
        raw = await _manifest_body(request)
        result = await run_in_threadpool(service.update, peer_certificate(request), raw)
        return success(_update_result(result))

    @jsend
    async def get_pending(_: Request) -> Response:
        pending = await run_in_threadpool(service.pending_update)
        if pending is None:
            raise NotFoundError("no manifest update is pending")
        return success(pending)

    @jsend
    async def acknowledge(request: Request) -> Response:
        raw = await _manifest_body(request)
        result = await run_in_threadpool(service.acknowledge_update, peer_certificate(request), raw)
        return success(_update_result(result))

    @jsend
    async def cancel(request: Request) -> Response:
        body = await read_json(request)
        only_fields(body)
        await run_in_threadpool(service.cancel_update, peer_certificate(request))
        return success(None)

    return [
        Route("/api/v2/update", update_log, methods=["GET"]),
        Route("/api/v2/update", post_update, methods=["POST"]),
        Route("/api/v2/update-manifest", get_pending, methods=["GET"]),
        Route("/api/v2/update-manifest", acknowledge, methods=["POST"]),
        Route("/api/v2/update-cancel", cancel, methods=["POST"]),
    ]


def _recovery_routes(service: CoordinatorService) -> list[Route]:
    @jsend
    async def recover(request: Request) -> Response:
        body = await read_json(request)
        only_fields(body, "recoverySecret", "recoverySecretSignature")
        secret = b64_field(body.get("recoverySecret"), "recoverySecret")
        signature = b64_field(body.get("recoverySecretSignature"), "recoverySecretSignature")
        if len(secret) > 4096 or len(signature) > 4096:
            raise ProtocolError("the recovery secret or its signature is too long")
        progress = await run_in_threadpool(service.recover, secret, signature)
        message = (
            "Recovery successful."
            if progress.recovered
            else f"Secret was processed successfully. Upload the next secret. "
            f"Remaining secrets: {progress.remaining}"
        )
        return success({"remaining": progress.remaining, "statusMessage": message})

    @jsend
    async def recovery_public_key(_: Request) -> Response:
        pem = service.recovery_public_key_pem()
        return success({"publicKey": pem.decode()})

    return [
        Route("/api/v2/recover", recover, methods=["POST"]),
        Route("/api/v2/recover/public-key", recovery_public_key, methods=["GET"]),
    ]


def client_api(
    service: CoordinatorService, *, on_manifest_set: Callable[[], None] | None = None
) -> Starlette:
    """The Starlette app of the client API for ``service``.

    ``on_manifest_set`` is kept for callers that predate :meth:`CoordinatorService.add_listener`;
    it is registered as a listener.
    """
    if on_manifest_set is not None:
        service.add_listener(on_manifest_set)

    async def openapi(_: Request) -> Response:
        return JSONResponse(openapi_document())

    async def not_found(request: Request, exc: Exception) -> Response:
        return fail(404, f"no such endpoint: {request.method} {request.url.path}")

    async def not_allowed(request: Request, exc: Exception) -> Response:
        return fail(405, f"method {request.method} not allowed on {request.url.path}")

    routes = [
        *_state_routes(service),
        *_secret_routes(service),
        *_update_routes(service),
        *_recovery_routes(service),
        Route("/api/v2/openapi.json", openapi, methods=["GET"]),
        *ops_routes(service),
    ]
    app = Starlette(routes=routes, exception_handlers={404: not_found, 405: not_allowed})
    app.add_middleware(MetricsMiddleware, metrics=service.metrics, api="client")
    return app
