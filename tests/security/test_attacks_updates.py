"""Attacks on manifest updates and recovery, against a coordinator of their own (MarbleRun API:
``/api/v2/update``, ``/update-manifest``, ``/update-cancel``, ``/recover``).

Three updaters hold ``UpdateManifest`` and ``UpdateThreshold`` is 2, so no single administrator
can change the deployment. The manifest names one recovery key (alice).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from tests.security._harness import (
    SERVE_ID,
    Coordinator,
    User,
    activation_request,
    b64,
    fetch_root,
    new_user,
)
from veil.attestation import SimulatedIdentity, SimulatedPlatform

OAEP = padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None)


def _rsa() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _public_pem(key: rsa.RSAPrivateKey) -> str:
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


@dataclass
class UpdateDeployment:
    dir: Path
    platform: SimulatedPlatform
    coordinator: Coordinator
    users: dict[str, User]
    manifest: dict[str, Any]
    alice: rsa.RSAPrivateKey
    recovery_secret: bytes  # alice's encrypted recovery secret from POST /manifest
    original_root: bytes

    def post(self, user: str | None, path: str, doc: dict[str, Any]) -> httpx.Response:
        with self.coordinator.client(self.users[user] if user else None) as http:
            return http.post(path, json={"manifest": b64(json.dumps(doc).encode())})

    def fingerprint(self) -> str:
        with self.coordinator.client() as http:
            return str(http.get("/api/v2/manifest").json()["data"]["manifestFingerprint"])


def base_manifest(users: dict[str, User], alice: rsa.RSAPrivateKey) -> dict[str, Any]:
    def cert(name: str) -> str:
        return users[name].cert_pem.decode()

    return {
        "Packages": {
            "app": {"TEE": "simulated", "UniqueID": SERVE_ID.hex(), "Debug": False},
            "signed": {
                "TEE": "simulated",
                "SignerID": "ab" * 32,
                "ProductID": 3,
                "SecurityVersion": 5,
                "Debug": False,
            },
        },
        "Marbles": {
            "app": {"Package": "app", "Parameters": {"Env": {"K": "{{ hex .Secrets.k }}"}}},
            "signed": {"Package": "signed", "Parameters": {"Env": {"MODE": "signed"}}},
        },
        "Secrets": {"k": {"Type": "symmetric-key", "Size": 256, "UserDefined": True}},
        "Users": {
            "admin1": {"Certificate": cert("admin1"), "Roles": ["updater"]},
            "admin2": {"Certificate": cert("admin2"), "Roles": ["updater"]},
            "admin3": {"Certificate": cert("admin3"), "Roles": ["updater"]},
            "owner": {"Certificate": cert("owner"), "Roles": ["writer"]},
            "svn": {"Certificate": cert("svn"), "Roles": ["svn"]},
        },
        "Roles": {
            "updater": {"ResourceType": "Manifest", "Actions": ["UpdateManifest"]},
            "writer": {
                "ResourceType": "Secrets",
                "ResourceNames": ["k"],
                "Actions": ["WriteSecret"],
            },
            "svn": {
                "ResourceType": "Packages",
                "ResourceNames": ["signed"],
                "Actions": ["UpdateSecurityVersion"],
            },
        },
        "RecoveryKeys": {"alice": _public_pem(alice)},
        "Config": {"UpdateThreshold": 2},
    }


def evil_manifest(dep: UpdateDeployment) -> dict[str, Any]:
    """The manifest a rogue administrator wants: the model key goes to a debug build."""
    doc = json.loads(json.dumps(dep.manifest))
    doc["Packages"]["app"] = {"TEE": "simulated", "UniqueID": "cd" * 32, "Debug": True}
    return doc


@pytest.fixture(scope="module")
def updates(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UpdateDeployment]:
    d = tmp_path_factory.mktemp("updates")
    platform = SimulatedPlatform.create(d / "platform")
    names = ("admin1", "admin2", "admin3", "owner", "svn", "mallory")
    users = {name: new_user(name, d / "users") for name in names}
    alice = _rsa()
    co = Coordinator(d, d / "platform")
    manifest = base_manifest(users, alice)
    try:
        co.start()
        resp = co.set_manifest(manifest)
        assert resp.status_code == 200, resp.text
        secret = base64.b64decode(resp.json()["data"]["recoverySecrets"]["alice"])
        yield UpdateDeployment(d, platform, co, users, manifest, alice, secret, co.root_pem)
    finally:
        co.stop()


def test_a_single_updater_cannot_apply_a_full_update(updates: UpdateDeployment) -> None:
    """With UpdateThreshold 2, one administrator's update stays pending; nothing changes."""
    before = updates.fingerprint()
    resp = updates.post("admin1", "/api/v2/update", evil_manifest(updates))
    assert resp.status_code == 200, resp.text
    assert resp.json()["data"]["applied"] is False
    assert updates.fingerprint() == before
    debug = SimulatedIdentity(unique_id=bytes.fromhex("cd" * 32), debug=True)
    req = activation_request(updates.platform, "app", identity=debug)
    with updates.coordinator.mesh() as http:
        assert http.post("/api/v2/marble/activate", json=req.body).status_code == 403


def test_acknowledging_twice_does_not_count_twice(updates: UpdateDeployment) -> None:
    """The submitter acknowledging its own pending update again is refused; still not applied."""
    resp = updates.post("admin1", "/api/v2/update-manifest", evil_manifest(updates))
    assert resp.status_code in (400, 409), resp.text
    with updates.coordinator.client() as http:
        pending = http.get("/api/v2/update-manifest").json()["data"]
    assert pending["remaining"] == 1, pending


def test_acknowledgement_by_a_user_without_update_manifest_is_refused(
    updates: UpdateDeployment,
) -> None:
    """The model owner (WriteSecret only) cannot provide the missing acknowledgement."""
    resp = updates.post("owner", "/api/v2/update-manifest", evil_manifest(updates))
    assert resp.status_code == 403, resp.text


def test_acknowledgement_by_an_unknown_certificate_is_refused(updates: UpdateDeployment) -> None:
    """A certificate outside the manifest cannot even complete the TLS handshake."""
    with pytest.raises(httpx.TransportError):
        updates.post("mallory", "/api/v2/update-manifest", evil_manifest(updates))


def test_acknowledging_a_different_manifest_is_refused(updates: UpdateDeployment) -> None:
    """admin2 acknowledging a manifest other than the pending one does not apply either."""
    other = evil_manifest(updates)
    other["Packages"]["app"]["UniqueID"] = "ef" * 32
    before = updates.fingerprint()
    resp = updates.post("admin2", "/api/v2/update-manifest", other)
    assert resp.status_code == 400, resp.text
    assert updates.fingerprint() == before


def test_cancel_by_a_non_updater_is_refused(updates: UpdateDeployment) -> None:
    """Only updaters may cancel a pending update."""
    with updates.coordinator.client(updates.users["owner"]) as http:
        resp = http.post("/api/v2/update-cancel", json={})
    assert resp.status_code == 403, resp.text
    with updates.coordinator.client(updates.users["admin3"]) as http:
        assert http.post("/api/v2/update-cancel", json={}).status_code == 200


def test_security_version_update_needs_the_role_and_never_goes_down(
    updates: UpdateDeployment,
) -> None:
    """UpdateSecurityVersion is per package; an updater without it, or a downgrade, is refused."""
    down = {"Packages": {"signed": {"SecurityVersion": 4}}}
    up = {"Packages": {"signed": {"SecurityVersion": 6}}}
    assert updates.post("admin1", "/api/v2/update", up).status_code == 403
    assert updates.post("svn", "/api/v2/update", down).status_code == 400
    other = {"Packages": {"app": {"SecurityVersion": 9}}}
    assert updates.post("svn", "/api/v2/update", other).status_code == 403
    old = SimulatedIdentity(
        unique_id=b"\x02" * 32, signer_id=bytes.fromhex("ab" * 32), product_id=3, security_version=5
    )
    with updates.coordinator.mesh() as http:  # control: SVN 5 is admitted before the update
        req = activation_request(updates.platform, "signed", identity=old)
        assert http.post("/api/v2/marble/activate", json=req.body).status_code == 200
    resp = updates.post("svn", "/api/v2/update", up)
    assert resp.status_code == 200, resp.text
    with updates.coordinator.mesh() as http:  # after it, the old build is refused
        req = activation_request(updates.platform, "signed", identity=old)
        assert http.post("/api/v2/marble/activate", json=req.body).status_code == 403


def test_user_removed_by_an_update_loses_access(updates: UpdateDeployment) -> None:
    """After a threshold update that drops the owner, the owner's certificate writes nothing."""
    doc = json.loads(json.dumps(updates.manifest))
    del doc["Users"]["owner"]
    with updates.coordinator.client(updates.users["owner"]) as http:  # control: still allowed
        ok = http.post("/api/v2/secrets", json={"secrets": {"k": {"Key": b64(b"\x01" * 32)}}})
    assert ok.status_code == 200, ok.text
    assert updates.post("admin1", "/api/v2/update", doc).json()["data"]["applied"] is False
    resp = updates.post("admin2", "/api/v2/update-manifest", doc)
    assert resp.status_code == 200, resp.text
    assert resp.json()["data"]["applied"] is True
    try:
        with updates.coordinator.client(updates.users["owner"]) as http:
            late = http.post("/api/v2/secrets", json={"secrets": {"k": {"Key": b64(b"\x02" * 32)}}})
    except httpx.TransportError:
        return  # refused at TLS
    assert late.status_code in (401, 403), late.text
    updates.manifest = doc


# -- recovery ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def in_recovery(updates: UpdateDeployment) -> UpdateDeployment:
    """The same data directory opened on another (simulated) machine: the seal key differs."""
    co = updates.coordinator
    co.stop()
    other = updates.dir / "other-platform"
    SimulatedPlatform.create(other)
    co.platform = other
    co.start()
    with co.client() as http:
        assert http.get("/api/v2/status").json()["data"]["code"] == 1
    return updates


def _sign(key: rsa.RSAPrivateKey, data: bytes) -> bytes:
    return key.sign(data, padding.PKCS1v15(), hashes.SHA256())


def _recover(dep: UpdateDeployment, secret: bytes, signature: bytes) -> httpx.Response:
    with dep.coordinator.client() as http:
        return http.post(
            "/api/v2/recover",
            json={"recoverySecret": b64(secret), "recoverySecretSignature": b64(signature)},
        )


def test_recovery_share_signed_by_a_non_recovery_key_is_refused(
    in_recovery: UpdateDeployment,
) -> None:
    """Mallory holds the genuine share (leaked) but signs with her own key: refused, still in
    recovery."""
    share = in_recovery.alice.decrypt(in_recovery.recovery_secret, OAEP)
    resp = _recover(in_recovery, share, _sign(_rsa(), share))
    assert resp.status_code == 403, resp.text
    with in_recovery.coordinator.client() as http:
        assert http.get("/api/v2/status").json()["data"]["code"] == 1


def test_forged_share_signed_by_the_recovery_key_does_not_unlock(
    in_recovery: UpdateDeployment,
) -> None:
    """A random 'share' (even signed by alice) does not open the sealed state."""
    fake = b"\x00" * len(in_recovery.alice.decrypt(in_recovery.recovery_secret, OAEP))
    resp = _recover(in_recovery, fake, _sign(in_recovery.alice, fake))
    assert resp.status_code in (400, 403), resp.text
    with in_recovery.coordinator.client() as http:
        assert http.get("/api/v2/status").json()["data"]["code"] == 1


def test_manifest_post_in_recovery_mode_is_refused(in_recovery: UpdateDeployment) -> None:
    """MarbleRun accepts a new manifest in recovery and discards the sealed state; veil refuses."""
    resp = in_recovery.coordinator.set_manifest(in_recovery.manifest)
    assert resp.status_code == 409, resp.text


def test_secrets_are_unavailable_in_recovery_mode(in_recovery: UpdateDeployment) -> None:
    """Nothing of the sealed state (secrets, activations) is served while it is sealed."""
    req = activation_request(in_recovery.platform, "app")
    with in_recovery.coordinator.mesh() as http:
        assert http.post("/api/v2/marble/activate", json=req.body).status_code in (409, 503)


def test_genuine_recovery_restores_the_state(in_recovery: UpdateDeployment) -> None:
    """Control: alice's own signed share recovers the state, with its original root identity."""
    share = in_recovery.alice.decrypt(in_recovery.recovery_secret, OAEP)
    resp = _recover(in_recovery, share, _sign(in_recovery.alice, share))
    assert resp.status_code == 200, resp.text
    co = in_recovery.coordinator
    co.root_pem = fetch_root(co.client_addr)  # the recovered root, not the temporary one
    assert co.root_pem == in_recovery.original_root
    with co.client() as http:
        assert http.get("/api/v2/status").json()["data"]["code"] == 3
