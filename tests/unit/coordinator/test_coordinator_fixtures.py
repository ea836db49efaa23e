"""MarbleRun's sample manifests through ``POST /api/v2/manifest``: valid ones are accepted (after
their placeholder certificates are replaced), invalid ones are refused naming the field."""

from __future__ import annotations

import base64
import json
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from veil.attestation import TrustAnchors
from veil.coordinator.api import client_api
from veil.coordinator.server import SimulatedCoordinatorTEE
from veil.coordinator.service import CoordinatorService
from veil.coordinator.store import MemoryStore

from .conftest import User

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # starlette prefers the httpx2 fork for its test client
    from starlette.testclient import TestClient

FIXTURES = (
    Path(__file__).resolve().parents[3].parent / "shared" / "fixtures" / "marblerun-manifests"
)

VALID = [
    "helloworld_manifest.json",
    "helloc++_manifest.json",
    "gramine-hello_manifest.json",
    "occlum-hello_manifest.json",
    "estore_manifest.json",
    "gramine-nginx_manifest.json",
    "gramine-redis_manifest.json",
    "marblerun-tensorflow-demo_manifest.json",
]
# file -> field the refusal names (the first fault in the file as given)
INVALID = {
    "samples_sample-manifest.json": "Marbles.backendFirst.Parameters.Env.API_KEY",
    "samples_manifest-template.json": "Packages.<PackageName>.SignerID",
    "marblerun-tensorflow-demo_pfKey.json": "pfKey",
}


def _replace_placeholder_certificates(
    doc: dict[str, Any], make_user: Callable[[str], User]
) -> None:
    for name, user in (doc.get("Users") or {}).items():
        if "BEGIN CERTIFICATE" not in str(user.get("Certificate", "")):
            user["Certificate"] = make_user(name).cert_pem


def _post(tee: SimulatedCoordinatorTEE, anchors: TrustAnchors, raw: bytes) -> Any:
    service = CoordinatorService(MemoryStore(), tee, trust_anchors=anchors)
    with TestClient(client_api(service)) as http:
        resp = http.post("/api/v2/manifest", json={"manifest": base64.b64encode(raw).decode()})
        return resp, http.get("/api/v2/status").json()["data"]["code"]


def test_every_fixture_is_covered() -> None:
    """Each JSON file in the shared fixture folder is in exactly one list here."""
    assert {p.name for p in FIXTURES.glob("*.json")} == set(VALID) | set(INVALID)


@pytest.mark.parametrize("name", VALID)
def test_valid_marblerun_manifest_is_accepted(
    name: str,
    tee: SimulatedCoordinatorTEE,
    anchors: TrustAnchors,
    make_user: Callable[[str], User],
) -> None:
    """A valid sample manifest is set (status 3), its secrets generated."""
    doc = json.loads((FIXTURES / name).read_text())
    _replace_placeholder_certificates(doc, make_user)
    resp, code = _post(tee, anchors, json.dumps(doc).encode())
    assert resp.status_code == 200, resp.text
    assert resp.json()["status"] == "success"
    assert code == 3


@pytest.mark.parametrize(("name", "field"), INVALID.items())
def test_invalid_marblerun_manifest_is_refused_naming_the_field(
    name: str,
    field: str,
    tee: SimulatedCoordinatorTEE,
    anchors: TrustAnchors,
) -> None:
    """An invalid sample is refused with a JSend fail whose message names the field."""
    resp, code = _post(tee, anchors, (FIXTURES / name).read_bytes())
    assert resp.status_code == 400, resp.text
    body = resp.json()
    assert body["status"] == "fail"
    assert body["message"].startswith(field + ":")
    assert code == 2
