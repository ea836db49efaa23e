"""The mesh API over HTTP: activation and parameters, with JSend errors for every refusal."""

from __future__ import annotations

import base64
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from veil.coordinator.api import mesh_api
from veil.coordinator.service import CoordinatorService
from veil.pki import generate_key

from .conftest import MODEL_KEY, Marble, User

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # starlette prefers the httpx2 fork for its test client
    from starlette.testclient import TestClient


def _body(marble: Marble) -> dict[str, Any]:
    r = marble.request
    return {
        "tee": r.evidence.tee,
        "marbleType": r.marble_type,
        "uuid": r.uuid,
        "csr": base64.b64encode(r.csr_der).decode(),
        "evidence": base64.b64encode(r.evidence.raw).decode(),
    }


@pytest.fixture
def mesh(service: CoordinatorService) -> Iterator[Callable[..., Any]]:
    """POST/GET helper on the mesh app; ``cert`` (DER) stands in for the TLS peer certificate."""
    app = mesh_api(service)

    async def with_cert(scope: Any, receive: Any, send: Any) -> None:
        cert = dict(scope.get("headers", [])).get(b"x-test-cert")
        if cert:
            scope["extensions"] = {"tls": {"client_cert_der": base64.b64decode(cert)}}
        await app(scope, receive, send)

    with TestClient(with_cert) as http:

        def call(method: str, path: str, *, cert: bytes | None = None, **kw: Any) -> Any:
            headers = dict(kw.pop("headers", {}))
            if cert:
                headers["x-test-cert"] = base64.b64encode(cert).decode()
            return http.request(method, f"/api/v2/marble/{path}", headers=headers, **kw)

        yield call


def _jsend_fail(resp: Any, status: int) -> None:
    assert resp.status_code == status, resp.text
    assert resp.json()["status"] == "fail"
    assert resp.json()["message"]


def test_activation_then_parameters(
    mesh: Callable[..., Any],
    service: CoordinatorService,
    make_marble: Callable[..., Marble],
    users: dict[str, User],
) -> None:
    """A marble activates (waiting for the key), then fetches its parameters with its cert."""
    marble = make_marble()
    resp = mesh("POST", "activate", json=_body(marble))
    assert resp.status_code == 200, resp.text
    data = resp.json()["data"]
    assert data["pendingSecrets"] == ["model_key"]
    cert_der = x509.load_pem_x509_certificate(data["certificate"].encode()).public_bytes(
        serialization.Encoding.DER
    )
    waiting = mesh("GET", "parameters", cert=cert_der)
    _jsend_fail(waiting, 503)
    assert waiting.headers["retry-after"] == "1"
    service.write_secrets(users["owner"].cert_der, {"model_key": MODEL_KEY})
    params = mesh("GET", "parameters", cert=cert_der).json()["data"]["parameters"]
    assert base64.b64decode(params["env"]["VEIL_MODEL_KEY"]) == MODEL_KEY.hex().encode()


@pytest.mark.parametrize(
    ("change", "status"),
    [
        ({"tee": "nope"}, 400),
        ({"uuid": 7}, 400),
        ({"csr": "!!"}, 400),
        ({"csr": base64.b64encode(b"x" * 20000).decode()}, 400),
        ({"marbleType": "unknown"}, 404),
        ({"uuid": "not-a-uuid"}, 400),
    ],
    ids=["tee", "uuid-type", "csr-b64", "csr-oversized", "unknown-type", "uuid-format"],
)
def test_malformed_activation_is_a_jsend_fail(
    mesh: Callable[..., Any], make_marble: Callable[..., Marble], change: Any, status: int
) -> None:
    """Malformed or unknown activation requests are refused with the right JSend status."""
    resp = mesh("POST", "activate", json={**_body(make_marble()), **change})
    _jsend_fail(resp, status)


def test_evidence_bound_to_another_key_is_refused(
    mesh: Callable[..., Any], make_marble: Callable[..., Marble]
) -> None:
    """Evidence binding another key than the CSR's is refused (403), nothing is certified."""
    resp = mesh("POST", "activate", json=_body(make_marble(evidence_key=generate_key())))
    _jsend_fail(resp, 403)


@pytest.mark.parametrize("content", [b"x" * (3 * 1024 * 1024), b"{", b"", b"[1]"])
def test_bad_bodies_are_a_400(mesh: Callable[..., Any], content: bytes) -> None:
    """Oversized, truncated, empty or non-object bodies get a JSend 400, never a 500."""
    resp = mesh("POST", "activate", content=content, headers={"content-type": "application/json"})
    _jsend_fail(resp, 400)


def test_parameters_need_a_marble_certificate(
    mesh: Callable[..., Any], users: dict[str, User]
) -> None:
    """No certificate: 401; a certificate the intermediate did not issue: 403."""
    _jsend_fail(mesh("GET", "parameters"), 401)
    _jsend_fail(mesh("GET", "parameters", cert=users["owner"].cert_der), 403)
    _jsend_fail(mesh("GET", "parameters", cert=b"garbage"), 403)


def test_activation_before_a_manifest_is_wrong_state(
    make_service: Callable[..., CoordinatorService], make_marble: Callable[..., Marble]
) -> None:
    """Before a manifest is set, activation is refused with 409."""
    with TestClient(mesh_api(make_service())) as http:
        resp = http.post("/api/v2/marble/activate", json=_body(make_marble()))
    _jsend_fail(resp, 409)
