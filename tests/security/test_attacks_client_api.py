"""Attacks on the coordinator's client API (``/api/v2``): identities, roles, manifest, secrets."""

from __future__ import annotations

import base64
import datetime as dt
import json
import time

import httpx
import pytest

from tests.security._harness import b64, new_user
from tests.security.conftest import Deployment


def _tls_refused(deployment: Deployment, user_name: str) -> None:
    with (
        pytest.raises((httpx.ConnectError, httpx.ReadError, httpx.RemoteProtocolError)),
        deployment.coordinator.client(deployment.users[user_name]) as http,
    ):
        http.get("/api/v2/secrets", params={"s": "shared_key"})


def test_unknown_user_certificate_is_refused_by_tls(deployment: Deployment) -> None:
    """A well-formed client certificate that no manifest user holds fails the TLS handshake."""
    _tls_refused(deployment, "stranger")
    with deployment.coordinator.client(deployment.users["reader"]) as http:  # control
        assert http.get("/api/v2/secrets", params={"s": "shared_key"}).status_code == 200


def test_expired_user_certificate_is_refused_by_tls(deployment: Deployment) -> None:
    """A manifest user whose certificate has expired is refused, though the manifest names it."""
    wait = (deployment.shortlived_expiry - dt.datetime.now(dt.UTC)).total_seconds() + 1.5
    time.sleep(max(0.0, wait))
    _tls_refused(deployment, "shortlived")


def test_not_yet_valid_user_certificate_is_refused(deployment: Deployment, scratch: object) -> None:
    """A certificate valid only in the future is refused (TLS), even when its key is genuine."""
    from pathlib import Path

    future = dt.datetime.now(dt.UTC) + dt.timedelta(days=1)
    user = new_user("future", Path(str(scratch)), not_before=future)
    with (
        pytest.raises((httpx.ConnectError, httpx.ReadError, httpx.RemoteProtocolError)),
        deployment.coordinator.client(user) as http,
    ):
        http.get("/api/v2/secrets", params={"s": "shared_key"})


def test_reading_a_secret_without_read_secret_is_refused(deployment: Deployment) -> None:
    """The model owner may write the model key but not read it back; the admin neither."""
    for name in ("owner", "admin"):
        with deployment.coordinator.client(deployment.users[name]) as http:
            resp = http.get("/api/v2/secrets", params={"s": "model_key"})
        assert resp.status_code == 403, resp.text
        assert deployment.model_key.hex() not in resp.text
        assert b64(deployment.model_key) not in resp.text


def test_reading_secrets_without_a_client_certificate_is_refused(deployment: Deployment) -> None:
    """No client certificate: 401, and nothing about the secret's value."""
    with deployment.coordinator.client() as http:
        resp = http.get("/api/v2/secrets", params={"s": "shared_key"})
    assert resp.status_code == 401, resp.text


def test_writing_a_secret_without_write_secret_is_refused(deployment: Deployment) -> None:
    """A reader (and the admin) cannot overwrite the model key; the stored key is unchanged."""
    for name in ("reader", "admin"):
        with deployment.coordinator.client(deployment.users[name]) as http:
            resp = http.post(
                "/api/v2/secrets", json={"secrets": {"model_key": {"Key": b64(b"\x00" * 32)}}}
            )
        assert resp.status_code == 403, resp.text
    with deployment.rest() as http:  # the served model still decrypts with the owner's key
        resp = http.post("/v1/models/hp2:predict", json={"instances": [1.0]})
    assert resp.status_code == 200, resp.text


def test_writing_a_generated_secret_is_refused(deployment: Deployment) -> None:
    """Even the owner cannot overwrite a coordinator-generated secret."""
    with deployment.coordinator.client(deployment.users["owner"]) as http:
        resp = http.post(
            "/api/v2/secrets", json={"secrets": {"shared_key": {"Key": b64(b"\x00" * 32)}}}
        )
    assert resp.status_code == 403, resp.text


def test_per_marble_secret_cannot_be_read_by_a_user(deployment: Deployment) -> None:
    """A per-marble (non-shared) secret is never released to a user."""
    for name in ("reader", "owner", "admin"):
        with deployment.coordinator.client(deployment.users[name]) as http:
            resp = http.get("/api/v2/secrets", params={"s": "per_marble"})
        assert resp.status_code == 403, resp.text


def test_a_manifest_granting_read_on_a_per_marble_secret_is_refused(deployment: Deployment) -> None:
    """The manifest itself cannot grant ReadSecret on a per-marble secret (checked on update)."""
    from veil.manifest import Manifest

    doc = json.loads(json.dumps(deployment.manifest))
    doc["Roles"]["reader"]["ResourceNames"].append("per_marble")
    with pytest.raises(Exception, match="per-marble"):
        Manifest.from_json(json.dumps(doc).encode())


def test_manifest_cannot_be_replaced_after_the_key_upload(deployment: Deployment) -> None:
    """A second POST /api/v2/manifest (a manifest that would hand the key to 'evil') is refused."""
    co = deployment.coordinator
    evil = json.loads(json.dumps(deployment.manifest))
    evil["Packages"]["evil"] = {"TEE": "simulated", "UniqueID": "ab" * 32, "Debug": True}
    evil["Marbles"]["server"]["Package"] = "evil"
    with co.client() as http:
        before = http.get("/api/v2/manifest").json()["data"]
        resp = http.post("/api/v2/manifest", json={"manifest": b64(json.dumps(evil).encode())})
        after = http.get("/api/v2/manifest").json()["data"]
    assert resp.status_code == 409, resp.text
    assert after["manifestFingerprint"] == before["manifestFingerprint"]
    served = json.loads(base64.b64decode(after["manifest"]))
    assert "evil" not in served["Packages"]


def test_manifest_post_with_a_user_certificate_is_still_refused(deployment: Deployment) -> None:
    """Replacing the manifest is refused whoever asks (even the admin, who holds UpdateManifest)."""
    with deployment.coordinator.client(deployment.users["admin"]) as http:
        resp = http.post(
            "/api/v2/manifest", json={"manifest": b64(json.dumps(deployment.manifest).encode())}
        )
    assert resp.status_code == 409, resp.text


def test_quote_nonce_longer_than_64_bytes_is_refused(deployment: Deployment) -> None:
    """Evidence cannot be made over attacker-chosen report data longer than the nonce slot."""
    nonce = base64.urlsafe_b64encode(b"\x01" * 65).decode().rstrip("=")
    with deployment.coordinator.client() as http:
        resp = http.get("/api/v2/quote", params={"nonce": nonce})
    assert resp.status_code == 400, resp.text


def test_unknown_fields_in_a_secret_upload_are_refused(deployment: Deployment) -> None:
    """Smuggled fields are refused rather than ignored (no confused-deputy parsing)."""
    with deployment.coordinator.client(deployment.users["owner"]) as http:
        resp = http.post(
            "/api/v2/secrets",
            json={"secrets": {"note": {"Key": b64(b"x"), "Private": b64(b"y")}}},
        )
    assert resp.status_code == 400, resp.text
