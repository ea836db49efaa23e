"""Recovery: the sealed state survives the loss of the seal key for the RecoveryKeys holders."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from veil.attestation import SimulatedPlatform
from veil.client import (
    decrypt_recovery_secret,
    encrypt_for_coordinator,
    sign_recovery_secret,
)
from veil.coordinator import _shamir
from veil.coordinator.core import Status
from veil.coordinator.server import CoordinatorSettings, build_service
from veil.coordinator.service import CoordinatorService
from veil.errors import AuthorizationError, ProtocolError, StateError, VerificationError

from .conftest import MODEL_KEY, Doc, User

Keys = dict[str, rsa.RSAPrivateKey]


@pytest.fixture(scope="module")
def rsa_keys() -> list[rsa.RSAPrivateKey]:
    """Three RSA-2048 recovery keys (made once: key generation is slow)."""
    return [rsa.generate_private_key(public_exponent=65537, key_size=2048) for _ in range(3)]


def _pem(key: rsa.RSAPrivateKey) -> str:
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


@pytest.fixture
def start(tmp_path: Path) -> Callable[..., CoordinatorService]:
    """Factory: start a coordinator on the data dir with a platform (a new name = new hardware)."""
    opened: list[CoordinatorService] = []

    def make(platform_name: str = "platform") -> CoordinatorService:
        platform_dir = tmp_path / platform_name
        if not platform_dir.exists():
            SimulatedPlatform.create(platform_dir)
        for old in opened:
            close = getattr(old.store, "close", None)
            if close is not None:
                close()
        svc = build_service(
            CoordinatorSettings(seal_dir=tmp_path / "data", simulated_platform=platform_dir)
        )
        opened.append(svc)
        return svc

    return make


def _with_keys(doc: Doc, keys: Keys, threshold: int = 0) -> bytes:
    doc["RecoveryKeys"] = {name: _pem(key) for name, key in keys.items()}
    if threshold:
        doc["Config"] = {"RecoveryThreshold": threshold}
    return json.dumps(doc).encode()


def _upload(svc: CoordinatorService, encrypted: bytes, key: rsa.RSAPrivateKey) -> Any:
    secret = decrypt_recovery_secret(encrypted, key)
    signature = sign_recovery_secret(secret, key)
    return svc.recover(encrypt_for_coordinator(secret, svc.recovery_public_key_pem()), signature)


def _snapshot(svc: CoordinatorService, owner: User) -> dict[str, Any]:
    values = svc.read_secrets(owner.cert_der, ["model_key", "shared"])
    return {
        "root": svc.root_cert_pem,
        "manifest": svc.manifest_document(),
        "secrets": {k: (v.key, v.cert_der) for k, v in values.items()},
        "log": svc.update_log(),
    }


@pytest.mark.parametrize(
    ("holders", "threshold", "uploads"),
    [(1, 0, 1), (3, 0, 3), (3, 2, 2)],
    ids=["single-key", "all-of-three", "two-of-three"],
)
def test_state_is_recovered_on_new_hardware_with_every_secret_identical(
    start: Callable[..., CoordinatorService],
    make_manifest: Callable[[], Doc],
    users: dict[str, User],
    rsa_keys: list[rsa.RSAPrivateKey],
    holders: int,
    threshold: int,
    uploads: int,
) -> None:
    """After the seal key is lost, the holders' uploads reopen the old state unchanged."""
    keys = {f"holder{i}": rsa_keys[i] for i in range(holders)}
    svc = start()
    result = svc.set_manifest(_with_keys(make_manifest(), keys, threshold))
    assert set(result.recovery_secrets) == set(keys)
    svc.write_secrets(users["owner"].cert_der, {"model_key": MODEL_KEY})
    before = _snapshot(svc, users["owner"])

    moved = start("other-hardware")
    assert moved.status() == Status.RECOVERY
    assert moved.quote(b"nonce").raw  # evidence stays available in recovery (MarbleRun #129)
    with pytest.raises(StateError):
        moved.read_secrets(users["owner"].cert_der, ["model_key"])
    names = sorted(keys)
    for index, name in enumerate(names[:uploads]):
        progress = _upload(moved, result.recovery_secrets[name], keys[name])
        assert progress.remaining == uploads - index - 1
    assert progress.recovered
    assert moved.status() == Status.ACCEPTING_MARBLES
    after = _snapshot(moved, users["owner"])
    assert after["secrets"]["model_key"][0] == MODEL_KEY
    assert after == before

    again = start("other-hardware")  # re-sealed with the new platform's key
    assert again.status() == Status.ACCEPTING_MARBLES


def test_fewer_than_threshold_uploads_keep_recovery_mode(
    start: Callable[..., CoordinatorService],
    make_manifest: Callable[[], Doc],
    rsa_keys: list[rsa.RSAPrivateKey],
) -> None:
    """The same holder uploading twice counts once; one of two needed keeps status 1."""
    keys = {f"holder{i}": rsa_keys[i] for i in range(3)}
    secrets = start().set_manifest(_with_keys(make_manifest(), keys, 2)).recovery_secrets
    moved = start("elsewhere")
    for _ in range(2):
        assert _upload(moved, secrets["holder0"], keys["holder0"]).remaining == 1
    assert moved.status() == Status.RECOVERY


def test_upload_not_signed_by_a_recovery_key_is_refused(
    start: Callable[..., CoordinatorService],
    make_manifest: Callable[[], Doc],
    rsa_keys: list[rsa.RSAPrivateKey],
) -> None:
    """A secret signed by another key is refused with AuthorizationError."""
    secrets = start().set_manifest(_with_keys(make_manifest(), {"a": rsa_keys[0]})).recovery_secrets
    moved = start("elsewhere")
    secret = decrypt_recovery_secret(secrets["a"], rsa_keys[0])
    with pytest.raises(AuthorizationError, match="not signed by any recovery key"):
        moved.recover(secret, sign_recovery_secret(secret, rsa_keys[1]))
    with pytest.raises(ProtocolError):
        moved.recover(b"short", sign_recovery_secret(b"short", rsa_keys[0]))


def test_wrong_secret_does_not_unlock_and_changes_nothing(
    start: Callable[..., CoordinatorService],
    make_manifest: Callable[[], Doc],
    rsa_keys: list[rsa.RSAPrivateKey],
    tmp_path: Path,
) -> None:
    """A correctly signed but wrong key is refused and the state file stays untouched."""
    start().set_manifest(_with_keys(make_manifest(), {"a": rsa_keys[0]}))
    moved = start("elsewhere")
    db = (tmp_path / "data" / "state.db").read_bytes()
    wrong = bytes(32)
    with pytest.raises(VerificationError, match="do not unlock"):
        moved.recover(wrong, sign_recovery_secret(wrong, rsa_keys[0]))
    assert moved.status() == Status.RECOVERY
    assert (tmp_path / "data" / "state.db").read_bytes() == db


def test_manifest_cannot_be_set_in_recovery(
    start: Callable[..., CoordinatorService],
    make_manifest: Callable[[], Doc],
    manifest_bytes: bytes,
    rsa_keys: list[rsa.RSAPrivateKey],
) -> None:
    """Recovery mode refuses a new manifest instead of silently discarding the old state."""
    start().set_manifest(_with_keys(make_manifest(), {"a": rsa_keys[0]}))
    moved = start("elsewhere")
    with pytest.raises(StateError, match="cannot set a manifest"):
        moved.set_manifest(manifest_bytes)


def test_recovery_without_recovery_keys_says_what_to_do(
    start: Callable[..., CoordinatorService], manifest_bytes: bytes
) -> None:
    """State sealed without RecoveryKeys cannot be recovered; the error says so."""
    start().set_manifest(manifest_bytes)
    moved = start("elsewhere")
    assert moved.status() == Status.RECOVERY
    with pytest.raises(StateError, match="no recovery record"):
        moved.recover(bytes(32), b"sig")


@pytest.mark.parametrize("mode", ["UniqueKey", "Disabled"])
def test_seal_mode_is_honoured(
    start: Callable[..., CoordinatorService],
    make_manifest: Callable[[], Doc],
    rsa_keys: list[rsa.RSAPrivateKey],
    tmp_path: Path,
    mode: str,
) -> None:
    """UniqueKey seals to the measurement; Disabled keeps no sealed key, so a restart recovers."""
    doc = make_manifest()
    doc["RecoveryKeys"] = {"a": _pem(rsa_keys[0])}
    doc["Config"] = {"SealMode": mode}
    start().set_manifest(json.dumps(doc).encode())
    key_file = tmp_path / "data" / "sealed_key"
    assert key_file.exists() == (mode != "Disabled")
    restarted = start()
    expected = Status.RECOVERY if mode == "Disabled" else Status.ACCEPTING_MARBLES
    assert restarted.status() == expected


def test_shamir_any_threshold_subset_recovers_and_fewer_do_not() -> None:
    """Shamir over GF(2^8): every 3 of 5 shares give the secret; 2 give something else."""
    import itertools
    import os

    secret = os.urandom(32)
    shares = _shamir.split(secret, shares=5, threshold=3)
    assert all(len(s) == 33 for s in shares)
    for subset in itertools.combinations(shares, 3):
        assert _shamir.combine(list(subset)) == secret
    assert _shamir.combine(shares[:2]) != secret
    with pytest.raises(ProtocolError):
        _shamir.combine([shares[0], shares[0]])


def test_changing_recovery_keys_rotates_the_data_key(
    start: Callable[..., CoordinatorService],
    make_manifest: Callable[[], Doc],
    users: dict[str, User],
    rsa_keys: list[rsa.RSAPrivateKey],
) -> None:
    """After an update to other RecoveryKeys, old secrets no longer unlock; new ones do."""
    doc = make_manifest()
    doc["Users"]["owner"]["Roles"].append("updater")
    doc["Roles"]["updater"] = {"ResourceType": "Manifest", "Actions": ["UpdateManifest"]}
    svc = start()
    old = svc.set_manifest(_with_keys(doc, {"a": rsa_keys[0]})).recovery_secrets
    svc.write_secrets(users["owner"].cert_der, {"model_key": MODEL_KEY})
    result = svc.update(users["owner"].cert_der, _with_keys(doc, {"b": rsa_keys[1]}))
    assert result.applied
    assert set(result.recovery_secrets) == {"b"}
    assert start().status() == Status.ACCEPTING_MARBLES  # the rotated key is sealed

    moved = start("elsewhere")
    with pytest.raises(AuthorizationError):  # "a" is no longer a recovery key
        _upload(moved, old["a"], rsa_keys[0])
    assert _upload(moved, result.recovery_secrets["b"], rsa_keys[1]).recovered
    assert moved.read_secrets(users["owner"].cert_der, ["model_key"])["model_key"].key == MODEL_KEY


def test_rotation_interrupted_before_commit_changes_nothing(
    start: Callable[..., CoordinatorService],
    manifest_bytes: bytes,
    users: dict[str, User],
    tmp_path: Path,
) -> None:
    """A crash before the rotation commits leaves the old key in force; staged files go away."""
    svc = start()
    svc.set_manifest(manifest_bytes)
    svc.write_secrets(users["owner"].cert_der, {"model_key": MODEL_KEY})
    data = tmp_path / "data"

    def dies_before_commit() -> None:
        with svc.store.transaction() as txn:
            svc.stage_data_key_rotation(txn, svc.require_manifest())
            raise RuntimeError("the process dies before COMMIT")

    with pytest.raises(RuntimeError):
        dies_before_commit()
    assert (data / "sealed_key.next").exists()
    again = start()
    assert again.read_secrets(users["owner"].cert_der, ["model_key"])["model_key"].key == MODEL_KEY
    assert not (data / "sealed_key.next").exists()
    assert not (data / "recovery.json.next").exists()


def test_rotation_interrupted_after_commit_still_opens(
    start: Callable[..., CoordinatorService],
    manifest_bytes: bytes,
    users: dict[str, User],
    tmp_path: Path,
) -> None:
    """A crash between re-encrypting the rows and replacing the key file loses nothing."""
    svc = start()
    svc.set_manifest(manifest_bytes)
    svc.write_secrets(users["owner"].cert_der, {"model_key": MODEL_KEY})
    data = tmp_path / "data"
    old_key_file = (data / "sealed_key").read_bytes()
    with svc.store.transaction() as txn:
        svc.stage_data_key_rotation(txn, svc.require_manifest())
    # the process dies here: rows re-sealed, new key only in sealed_key.next
    assert (data / "sealed_key").read_bytes() == old_key_file
    assert (data / "sealed_key.next").exists()
    again = start()
    assert again.status() == Status.ACCEPTING_MARBLES
    assert again.read_secrets(users["owner"].cert_der, ["model_key"])["model_key"].key == MODEL_KEY
    assert not (data / "sealed_key.next").exists()
