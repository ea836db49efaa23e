"""The client API: MarbleRun's v2 paths under ``/api/v2`` with JSend envelopes."""

from __future__ import annotations

import base64
import binascii

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from veil.coordinator.api._jsend import b64_field, fail, jsend, peer_certificate, read_json, success
from veil.coordinator.service import CoordinatorService
from veil.errors import ProtocolError


def client_api(service: CoordinatorService, *, on_manifest_set: object = None) -> Starlette:
    """The Starlette app of the client API for ``service``.

    ``on_manifest_set`` (a callable) is invoked after a manifest is set, so the server can add
    the manifest's user certificates to its TLS trust store.
    """

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
                "manifest": base64.b64encode(raw).decode(),
                "manifestFingerprint": fingerprint,
                "manifestSignatureRootECDSA": base64.b64encode(signature).decode(),
            }
        )

    @jsend
    async def post_manifest(request: Request) -> Response:
        body = await read_json(request)
        raw = b64_field(body.get("manifest"), "manifest")
        await run_in_threadpool(service.set_manifest, raw)
        if callable(on_manifest_set):
            on_manifest_set()
        return success({"recoverySecrets": {}})

    @jsend
    async def quote(request: Request) -> Response:
        nonce_text = request.query_params.get("nonce", "")
        try:
            nonce = base64.urlsafe_b64decode(nonce_text + "=" * (-len(nonce_text) % 4))
        except (binascii.Error, ValueError):
            raise ProtocolError("nonce must be base64url") from None
        evidence = await run_in_threadpool(service.quote, nonce)
        return success(
            {
                "cert": service.certificate_chain_pem().decode(),
                "quote": base64.b64encode(evidence.raw).decode(),
                "tee": evidence.tee,
            }
        )

    @jsend
    async def post_secrets(request: Request) -> Response:
        body = await read_json(request)
        secrets = body.get("secrets")
        if not isinstance(secrets, dict):
            raise ProtocolError('body must be {"secrets": {name: {"Key": base64}}}')
        values: dict[str, bytes] = {}
        for name, entry in secrets.items():
            if not isinstance(entry, dict) or "Key" not in entry:
                raise ProtocolError(f"secret {name!r} must be an object with a base64 Key")
            values[str(name)] = b64_field(entry["Key"], f"secret {name!r} Key")
        await run_in_threadpool(service.write_secrets, peer_certificate(request), values)
        return success(None)

    @jsend
    async def get_secrets(request: Request) -> Response:
        names = request.query_params.getlist("s")
        if not names:
            raise ProtocolError("name at least one secret with ?s=NAME")
        values = await run_in_threadpool(service.read_secrets, peer_certificate(request), names)
        out = {
            name: {
                k: base64.b64encode(v).decode()
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

    @jsend
    async def update_log(_: Request) -> Response:
        return success({"updateLog": await run_in_threadpool(service.update_log)})

    async def healthz(_: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def not_found(request: Request, exc: Exception) -> Response:
        return fail(404, f"no such endpoint: {request.method} {request.url.path}")

    async def not_allowed(request: Request, exc: Exception) -> Response:
        return fail(405, f"method {request.method} not allowed on {request.url.path}")

    routes = [
        Route("/api/v2/status", status, methods=["GET"]),
        Route("/api/v2/manifest", get_manifest, methods=["GET"]),
        Route("/api/v2/manifest", post_manifest, methods=["POST"]),
        Route("/api/v2/quote", quote, methods=["GET"]),
        Route("/api/v2/secrets", get_secrets, methods=["GET"]),
        Route("/api/v2/secrets", post_secrets, methods=["POST"]),
        Route("/api/v2/update", update_log, methods=["GET"]),
        Route("/healthz", healthz, methods=["GET"]),
    ]
    return Starlette(routes=routes, exception_handlers={404: not_found, 405: not_allowed})
