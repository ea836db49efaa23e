"""The client API over HTTP: every endpoint's success, wrong state, missing or unknown client
certificate, missing role, malformed and oversized bodies; every error body is JSend."""

from __future__ import annotations

import base64
import json
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from starlette.types import ASGIApp, Receive, Scope, Send

from veil.attestation import SimulatedPlatform, TrustAnchors
from veil.client import decrypt_recovery_secret, sign_recovery_secret
from veil.coordinator.api import client_api
from veil.coordinator.api._openapi import ENDPOINTS
from veil.coordinator.server import CoordinatorSettings, SimulatedCoordinatorTEE, build_service
from veil.coordinator.service import CoordinatorService
from veil.coordinator.store import MemoryStore

from .conftest import MARBLE_UNIQUE_ID, MODEL_KEY, User

with warnings.catch_warnings():
    # Starlette prefers the httpx2 fork for its test client; plain httpx works the same here.
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

SIGNER = "11" * 32
BIG = 3 * 1024 * 1024


def with_test_certificates(app: ASGIApp) -> ASGIApp:
    """Put the DER in header ``x-test-cert`` (base64) where uvicorn puts the TLS peer cert."""

    async def wrapped(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            cert = dict(scope["headers"]).get(b"x-test-cert")
            if cert:
                scope["extensions"] = {"tls": {"client_cert_der": base64.b64decode(cert)}}
        await app(scope, receive, send)

    return wrapped


@dataclass
class Api:
    """A client API under test, its service and its users (plus a stranger)."""

    http: TestClient
    app: Any
    service: CoordinatorService
    users: dict[str, User]
    manifest: bytes

    def call(
        self,
        method: str,
        path: str,
        *,
        user: str | None = None,
        json_body: Any = None,
        content: bytes | None = None,
    ) -> httpx.Response:
        headers = {}
        if user is not None:
            headers["x-test-cert"] = base64.b64encode(self.users[user].cert_der).decode()
        if content is not None:
            headers["content-type"] = "application/json"
            return self.http.request(method, path, content=content, headers=headers)
        return self.http.request(method, path, json=json_body, headers=headers)


@pytest.fixture
def api_manifest(make_user: Callable[[str], User]) -> tuple[bytes, dict[str, User]]:
    """A manifest with an owner, an updater, a user without roles; and a stranger outside it."""
    users = {name: make_user(name) for name in ("owner", "admin", "admin2", "nobody", "stranger")}
    doc = {
        "Packages": {
            "p": {"TEE": "simulated", "UniqueID": MARBLE_UNIQUE_ID.hex()},
            "signed": {"TEE": "simulated", "SignerID": SIGNER, "ProductID": 1,
                       "SecurityVersion": 1},
        },
        "Marbles": {"m": {"Package": "p"}},
        "Secrets": {"model_key": {"Type": "symmetric-key", "Size": 256, "UserDefined": True}},
        "Users": {
            "owner": {"Certificate": users["owner"].cert_pem, "Roles": ["key"]},
            "admin": {"Certificate": users["admin"].cert_pem, "Roles": ["update", "svn"]},
            "admin2": {"Certificate": users["admin2"].cert_pem, "Roles": ["update"]},
            "nobody": {"Certificate": users["nobody"].cert_pem},
        },
        "Roles": {
            "key": {"ResourceType": "Secrets", "ResourceNames": ["model_key"],
                    "Actions": ["WriteSecret", "ReadSecret"]},
            "update": {"ResourceType": "Manifest", "Actions": ["UpdateManifest"]},
            "svn": {"ResourceType": "Packages", "ResourceNames": ["signed"],
                    "Actions": ["UpdateSecurityVersion"]},
        },
        "Config": {"UpdateThreshold": 2},
    }  # fmt: skip
    return json.dumps(doc).encode(), users


@pytest.fixture
def make_api(
    tee: SimulatedCoordinatorTEE,
    anchors: TrustAnchors,
    api_manifest: tuple[bytes, dict[str, User]],
) -> Iterator[Callable[[str], Api]]:
    """Factory: the API in a state: fresh (2), set (3), pending (3 + update) or recovery (1)."""
    clients: list[TestClient] = []

    def make(state: str) -> Api:
        manifest, users = api_manifest
        service = CoordinatorService(
            MemoryStore(), tee, trust_anchors=anchors, recovery=state == "recovery"
        )
        if state in ("set", "pending"):
            service.set_manifest(manifest)
        app = client_api(service)
        http = TestClient(with_test_certificates(app))
        clients.append(http)
        api = Api(http=http, app=app, service=service, users=users, manifest=manifest)
        if state == "pending":
            doc = json.loads(manifest)
            doc["Marbles"]["m"]["MaxActivations"] = 4
            doc["Config"]["UpdateThreshold"] = 0
            api.manifest = json.dumps(doc).encode()
            resp = api.call("POST", "/api/v2/update", user="admin", json_body=_m(api.manifest))
            assert resp.status_code == 200, resp.text
            assert not resp.json()["data"]["applied"]  # waits for admin2
        return api

    yield make
    for http in clients:
        http.close()


def _m(raw: bytes) -> dict[str, str]:
    return {"manifest": base64.b64encode(raw).decode()}


def _svn_update() -> dict[str, str]:
    return _m(b'{"Packages": {"signed": {"SecurityVersion": 2}}}')


def _secret() -> dict[str, Any]:
    return {"secrets": {"model_key": {"Key": base64.b64encode(MODEL_KEY).decode()}}}


def _assert_jsend_error(resp: httpx.Response, status: int) -> None:
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert body["status"] in ("fail", "error")
    assert isinstance(body["message"], str)
    assert body["message"]
    assert "data" in body


# (id, state, method, path, user, body) -> 200
SUCCESS = [
    ("status", "fresh", "GET", "/api/v2/status", None, None),
    ("manifest-get", "set", "GET", "/api/v2/manifest", None, None),
    ("manifest-post", "fresh", "POST", "/api/v2/manifest", None, "manifest"),
    ("quote", "recovery", "GET", "/api/v2/quote?nonce=AAEC", None, None),
    ("secrets-post", "set", "POST", "/api/v2/secrets", "owner", _secret()),
    ("update-log", "set", "GET", "/api/v2/update", None, None),
    ("update-svn", "set", "POST", "/api/v2/update", "admin", _svn_update()),
    ("update-get", "pending", "GET", "/api/v2/update-manifest", None, None),
    ("update-ack", "pending", "POST", "/api/v2/update-manifest", "admin2", "manifest"),
    ("update-cancel", "pending", "POST", "/api/v2/update-cancel", "admin", {}),
    ("recover-key", "recovery", "GET", "/api/v2/recover/public-key", None, None),
    ("openapi", "fresh", "GET", "/api/v2/openapi.json", None, None),
    ("healthz", "recovery", "GET", "/healthz", None, None),
    ("readyz", "set", "GET", "/readyz", None, None),
    ("metrics", "set", "GET", "/metrics", None, None),
    ("events", "set", "GET", "/events", None, None),
]


@pytest.mark.parametrize(
    ("state", "method", "path", "user", "body"),
    [c[1:] for c in SUCCESS],
    ids=[c[0] for c in SUCCESS],
)
def test_endpoint_succeeds(
    make_api: Callable[[str], Api],
    state: str,
    method: str,
    path: str,
    user: str | None,
    body: Any,
) -> None:
    """Each endpoint answers 200 with a JSend success envelope in its proper state."""
    api = make_api(state)
    if body == "manifest":
        body = _m(api.manifest)
    resp = api.call(method, path, user=user, json_body=body)
    assert resp.status_code == 200, resp.text
    if "openapi" not in path and "metrics" not in path:
        assert resp.json()["status"] == "success"


def test_secret_read_back_over_the_api(make_api: Callable[[str], Api]) -> None:
    """A written user-defined secret reads back identical for a user with ReadSecret."""
    api = make_api("set")
    assert api.call("POST", "/api/v2/secrets", user="owner", json_body=_secret()).status_code == 200
    resp = api.call("GET", "/api/v2/secrets?s=model_key", user="owner")
    assert resp.status_code == 200
    assert base64.b64decode(resp.json()["data"]["secrets"]["model_key"]["Key"]) == MODEL_KEY


# (id, state, method, path, user, body, status)
REFUSALS = [
    # wrong state
    ("manifest-post-twice", "set", "POST", "/api/v2/manifest", None, "manifest", 409),
    ("manifest-post-recovery", "recovery", "POST", "/api/v2/manifest", None, "manifest", 409),
    ("secrets-post-fresh", "fresh", "POST", "/api/v2/secrets", "owner", _secret(), 409),
    ("secrets-get-fresh", "fresh", "GET", "/api/v2/secrets?s=model_key", "owner", None, 409),
    ("update-log-recovery", "recovery", "GET", "/api/v2/update", None, None, 409),
    ("update-post-fresh", "fresh", "POST", "/api/v2/update", "admin", _svn_update(), 409),
    ("update-get-none", "set", "GET", "/api/v2/update-manifest", None, None, 404),
    ("update-ack-none", "set", "POST", "/api/v2/update-manifest", "admin", "manifest", 404),
    ("update-cancel-none", "set", "POST", "/api/v2/update-cancel", "admin", {}, 404),
    ("recover-not-recovery", "set", "POST", "/api/v2/recover", None,
     {"recoverySecret": "AAAA", "recoverySecretSignature": "AAAA"}, 409),
    ("recover-no-record", "recovery", "POST", "/api/v2/recover", None,
     {"recoverySecret": base64.b64encode(bytes(32)).decode(),
      "recoverySecretSignature": "AAAA"}, 409),
    ("recover-key-not-recovery", "set", "GET", "/api/v2/recover/public-key", None, None, 409),
    ("readyz-recovery", "recovery", "GET", "/readyz", None, None, 503),
    # missing client certificate
    ("secrets-post-nocert", "set", "POST", "/api/v2/secrets", None, _secret(), 401),
    ("secrets-get-nocert", "set", "GET", "/api/v2/secrets?s=model_key", None, None, 401),
    ("update-post-nocert", "set", "POST", "/api/v2/update", None, _svn_update(), 401),
    ("update-ack-nocert", "pending", "POST", "/api/v2/update-manifest", None, "manifest", 401),
    ("update-cancel-nocert", "pending", "POST", "/api/v2/update-cancel", None, {}, 401),
    # unknown client certificate
    ("secrets-post-stranger", "set", "POST", "/api/v2/secrets", "stranger", _secret(), 401),
    ("secrets-get-stranger", "set", "GET", "/api/v2/secrets?s=model_key", "stranger", None, 401),
    ("update-post-stranger", "set", "POST", "/api/v2/update", "stranger", _svn_update(), 401),
    ("update-ack-stranger", "pending", "POST", "/api/v2/update-manifest", "stranger", "manifest",
     401),
    ("update-cancel-stranger", "pending", "POST", "/api/v2/update-cancel", "stranger", {}, 401),
    # missing role
    ("secrets-post-norole", "set", "POST", "/api/v2/secrets", "nobody", _secret(), 403),
    ("secrets-get-norole", "set", "GET", "/api/v2/secrets?s=model_key", "admin", None, 403),
    ("update-svn-norole", "set", "POST", "/api/v2/update", "owner", _svn_update(), 403),
    ("update-ack-norole", "pending", "POST", "/api/v2/update-manifest", "owner", "manifest", 403),
    ("update-cancel-norole", "pending", "POST", "/api/v2/update-cancel", "owner", {}, 403),
    # malformed
    ("manifest-post-nobody", "fresh", "POST", "/api/v2/manifest", None, {}, 400),
    ("manifest-post-notb64", "fresh", "POST", "/api/v2/manifest", None, {"manifest": "!!"}, 400),
    ("manifest-post-extra", "fresh", "POST", "/api/v2/manifest", None,
     {"manifest": "e30=", "x": 1}, 400),
    ("manifest-post-invalid", "fresh", "POST", "/api/v2/manifest", None,
     {"manifest": base64.b64encode(b'{"Packages": {}}').decode()}, 400),
    ("quote-bad-nonce", "set", "GET", "/api/v2/quote?nonce=%%%", None, None, 400),
    ("quote-long-nonce", "set", "GET", "/api/v2/quote?nonce=" + "A" * 200, None, None, 400),
    ("secrets-post-shape", "set", "POST", "/api/v2/secrets", "owner", {"secrets": []}, 400),
    ("secrets-post-size", "set", "POST", "/api/v2/secrets", "owner",
     {"secrets": {"model_key": {"Key": "AAAA"}}}, 400),
    ("secrets-get-none", "set", "GET", "/api/v2/secrets", "owner", None, 400),
    ("secrets-get-unknown", "set", "GET", "/api/v2/secrets?s=nope", "owner", None, 404),
    ("update-post-notjson", "set", "POST", "/api/v2/update", "admin",
     {"manifest": base64.b64encode(b"{").decode()}, 400),
    ("update-post-svn-field", "set", "POST", "/api/v2/update", "admin",
     _m(b'{"Packages": {"signed": {"SecurityVersion": 2, "Debug": true}}}'), 400),
    ("update-ack-other", "pending", "POST", "/api/v2/update-manifest", "admin2", "other", 400),
    ("update-cancel-extra", "pending", "POST", "/api/v2/update-cancel", "admin", {"x": 1}, 400),
    ("recover-notb64", "recovery", "POST", "/api/v2/recover", None,
     {"recoverySecret": "*", "recoverySecretSignature": "AAAA"}, 400),
    ("recover-missing", "recovery", "POST", "/api/v2/recover", None, {}, 400),
    ("no-such-endpoint", "set", "GET", "/api/v2/nothing", None, None, 404),
    ("wrong-method", "set", "DELETE", "/api/v2/manifest", None, None, 405),
]  # fmt: skip


@pytest.mark.parametrize(
    ("state", "method", "path", "user", "body", "status"),
    [c[1:] for c in REFUSALS],
    ids=[c[0] for c in REFUSALS],
)
def test_endpoint_refuses_with_a_jsend_error(
    make_api: Callable[[str], Api],
    api_manifest: tuple[bytes, dict[str, User]],
    state: str,
    method: str,
    path: str,
    user: str | None,
    body: Any,
    status: int,
) -> None:
    """Wrong state, missing/unknown certificate, missing role or bad input: a JSend 4xx/503."""
    api = make_api(state)
    if body == "manifest":
        body = _m(api.manifest)
    elif body == "other":
        body = _m(api_manifest[0])
    resp = api.call(method, path, user=user, json_body=body)
    _assert_jsend_error(resp, status)


POSTS = [
    ("/api/v2/manifest", "fresh", None),
    ("/api/v2/secrets", "set", "owner"),
    ("/api/v2/update", "set", "admin"),
    ("/api/v2/update-manifest", "pending", "admin2"),
    ("/api/v2/update-cancel", "pending", "admin"),
    ("/api/v2/recover", "recovery", None),
]


@pytest.mark.parametrize(("path", "state", "user"), POSTS, ids=[p[0] for p in POSTS])
@pytest.mark.parametrize(
    "content",
    [b"x" * BIG, b"{" * 100_000, b"\xff\xfe{", b"[]", b'{"manifest": ', b""],
    ids=["oversized", "deep", "not-utf8", "array", "truncated", "empty"],
)
def test_every_post_endpoint_refuses_bad_bodies_without_a_500(
    make_api: Callable[[str], Api], path: str, state: str, user: str | None, content: bytes
) -> None:
    """Oversized, nested, undecodable, truncated or empty bodies get a JSend 400."""
    api = make_api(state)
    resp = api.call("POST", path, user=user, content=content)
    _assert_jsend_error(resp, 400)


def test_openapi_documents_every_route(make_api: Callable[[str], Api]) -> None:
    """The OpenAPI 3.1 document names every route the app serves, with its method."""
    api = make_api("fresh")
    doc = api.call("GET", "/api/v2/openapi.json").json()
    assert doc["openapi"].startswith("3.1")
    served = {
        (method.lower(), route.path)  # type: ignore[attr-defined]
        for route in api.app.routes
        for method in (route.methods or ()) - {"HEAD"}  # type: ignore[attr-defined]
    }
    documented = {(m, p) for p, ops in doc["paths"].items() for m in ops}
    assert served == documented
    assert len(ENDPOINTS) == len(documented)


def test_metrics_count_activations_and_state(make_api: Callable[[str], Api]) -> None:
    """/metrics exposes the state gauge, request latency and activation counters."""
    api = make_api("set")
    api.service.metrics.activation("m", "PolicyError")
    api.call("GET", "/api/v2/status")
    text = api.call("GET", "/metrics").text
    assert "veil_coordinator_state 3" in text
    assert 'veil_coordinator_marble_activations_total{type="m",result="PolicyError"} 1' in text
    assert "veil_coordinator_api_request_duration_seconds_bucket" in text


def test_recovery_over_the_api(
    tmp_path: Path, make_user: Callable[[str], User], platform: SimulatedPlatform
) -> None:
    """POST /recover with a signed secret reopens the state; status goes from 1 to 3."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    doc = {
        "Packages": {"p": {"TEE": "simulated", "UniqueID": MARBLE_UNIQUE_ID.hex()}},
        "Marbles": {"m": {"Package": "p"}},
        "RecoveryKeys": {"k": pem.decode()},
    }
    first = build_service(
        CoordinatorSettings(seal_dir=tmp_path / "d", simulated_platform=platform.directory)
    )
    with TestClient(client_api(first)) as http:
        resp = http.post("/api/v2/manifest", json=_m(json.dumps(doc).encode()))
    encrypted = base64.b64decode(resp.json()["data"]["recoverySecrets"]["k"])
    first.store.close()  # type: ignore[attr-defined]
    other = SimulatedPlatform.create(tmp_path / "other")
    moved = build_service(
        CoordinatorSettings(seal_dir=tmp_path / "d", simulated_platform=other.directory)
    )
    secret = decrypt_recovery_secret(encrypted, key)
    with TestClient(client_api(moved)) as http:
        assert http.get("/api/v2/status").json()["data"]["code"] == 1
        resp = http.post(
            "/api/v2/recover",
            json={
                "recoverySecret": base64.b64encode(secret).decode(),
                "recoverySecretSignature": base64.b64encode(
                    sign_recovery_secret(secret, key)
                ).decode(),
            },
        )
        assert resp.json()["data"]["remaining"] == 0
        assert http.get("/api/v2/status").json()["data"]["code"] == 3
