"""Manifest updates: security versions at once, full updates after UpdateThreshold acks, cancel,
and the hash-chained update log that detects edited or removed entries."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from typing import Any

import pytest
from cryptography import x509

from veil.coordinator._updatelog import verify_update_log
from veil.coordinator.service import CoordinatorService
from veil.coordinator.store import SealedSQLiteStore
from veil.errors import (
    AuthorizationError,
    IntegrityError,
    ManifestError,
    NotFoundError,
    ProtocolError,
    StateError,
)
from veil.manifest import Manifest

from .conftest import MARBLE_UNIQUE_ID, MODEL_KEY, Doc, User

SIGNER = "7c0c8c9a1e5c77d8e1b3e3f50ba22f3fd0b8c4ae5d1f6c6b8b7a9a2a9e1c3d4f"


@pytest.fixture
def admins(make_user: Callable[[str], User]) -> dict[str, User]:
    """Three administrators allowed to update the manifest, and the model owner."""
    return {name: make_user(name) for name in ("admin1", "admin2", "admin3", "owner")}


@pytest.fixture
def make_doc(admins: dict[str, User]) -> Callable[[], Doc]:
    """Factory: a manifest with a SignerID package, UpdateThreshold 2 and three updaters."""

    def make() -> Doc:
        return {
            "Packages": {
                "p": {"TEE": "simulated", "UniqueID": MARBLE_UNIQUE_ID.hex()},
                "signed": {"TEE": "simulated", "SignerID": SIGNER, "ProductID": 1,
                           "SecurityVersion": 1},
            },
            "Marbles": {"m": {"Package": "p", "Parameters": {
                "Env": {"KEY": "{{ hex .Secrets.model_key }}"}}}},
            "Secrets": {
                "model_key": {"Type": "symmetric-key", "Size": 256, "UserDefined": True},
                "shared": {"Type": "symmetric-key", "Size": 128, "Shared": True},
                "tls": {"Type": "cert-ecdsa", "Size": 256, "Shared": True},
            },
            "Users": {
                **{n: {"Certificate": admins[n].cert_pem, "Roles": ["updater"]}
                   for n in ("admin1", "admin2", "admin3")},
                "owner": {"Certificate": admins["owner"].cert_pem,
                          "Roles": ["key", "read", "svn"]},
            },
            "Roles": {
                "updater": {"ResourceType": "Manifest", "Actions": ["UpdateManifest"]},
                "key": {"ResourceType": "Secrets", "ResourceNames": ["model_key"],
                        "Actions": ["WriteSecret"]},
                "read": {"ResourceType": "Secrets", "ResourceNames": ["model_key", "shared"],
                         "Actions": ["ReadSecret"]},
                "svn": {"ResourceType": "Packages", "ResourceNames": ["signed"],
                        "Actions": ["UpdateSecurityVersion"]},
            },
            "Config": {"UpdateThreshold": 2},
        }  # fmt: skip

    return make


@pytest.fixture
def svc(make_service: Callable[..., CoordinatorService], make_doc: Callable[[], Doc]) -> Any:
    """A coordinator with the update manifest set and the model key uploaded."""
    service = make_service()
    service.set_manifest(json.dumps(make_doc()).encode())
    return service


def _der(admins: dict[str, User], name: str) -> bytes:
    return admins[name].cert_der


def _svn(version: int, package: str = "signed") -> bytes:
    return json.dumps({"Packages": {package: {"SecurityVersion": version}}}).encode()


def _verify(service: CoordinatorService) -> None:
    signed = service.signed_update_log()
    root = x509.load_pem_x509_certificate(service.root_cert_pem).public_key()
    verify_update_log(signed.entries, signed.head, root)  # type: ignore[arg-type]


# -- security versions ------------------------------------------------------------------------


def test_security_version_update_applies_at_once_and_rotates_the_intermediate(
    svc: CoordinatorService, admins: dict[str, User]
) -> None:
    """UpdateSecurityVersion raises the SVN immediately; the signed document stays as it was."""
    document = svc.manifest_document()
    intermediate = svc.intermediate_cert_pem
    tls_before = svc.store.get("secrets/generated/tls")
    result = svc.update(_der(admins, "owner"), _svn(5))
    assert result.applied
    assert result.kind == "security-version"
    manifest = svc.manifest()
    assert manifest is not None
    assert manifest.packages["signed"].security_version == 5
    assert svc.manifest_document() == document
    assert svc.intermediate_cert_pem != intermediate
    assert svc.store.get("secrets/generated/tls") != tls_before  # re-issued by the new CA
    assert svc.security_versions() == {"signed": 5}
    assert json.loads(svc.update_log()[-1])["action"] == "update-security-version"
    _verify(svc)


@pytest.mark.parametrize(
    ("body", "error", "match"),
    [
        (_svn(0), ManifestError, "cannot go down"),
        (_svn(3, "missing"), ManifestError, "not in the manifest"),
        (_svn(3, "p"), AuthorizationError, "not allowed to update the security version"),
        (b'{"Packages": {"signed": {"SecurityVersion": 3, "Debug": true}}}', ManifestError,
         "only set SecurityVersion"),
        (b'{"Packages": {"signed": {"SecurityVersion": "3"}}}', ManifestError, "integer"),
    ],
    ids=["lower", "unknown-package", "no-role", "other-field", "not-integer"],
)  # fmt: skip
def test_security_version_update_refusals(
    svc: CoordinatorService,
    admins: dict[str, User],
    body: bytes,
    error: type[Exception],
    match: str,
) -> None:
    """A lower version, unknown package, missing role or other field is refused; nothing changes."""
    with pytest.raises(error, match=match):
        svc.update(_der(admins, "owner"), body)
    assert svc.security_versions() == {}


# -- full updates -----------------------------------------------------------------------------


def test_full_update_needs_two_of_three_acknowledgements(
    svc: CoordinatorService, admins: dict[str, User], make_doc: Callable[[], Doc]
) -> None:
    """The submitter counts as first; the second identical acknowledgement applies the update."""
    svc.write_secrets(_der(admins, "owner"), {"model_key": MODEL_KEY})
    shared = svc.read_secrets(_der(admins, "owner"), ["shared"])["shared"]
    doc = make_doc()
    doc["Marbles"]["m"]["MaxActivations"] = 7
    del doc["Secrets"]["tls"]
    raw = json.dumps(doc).encode()
    first = svc.update(_der(admins, "admin1"), raw)
    assert not first.applied
    assert first.remaining == 1
    assert set(first.missing) == {"admin2", "admin3"}
    pending = svc.pending_update()
    assert pending is not None
    assert pending["fingerprint"] == Manifest.from_json(raw).fingerprint()
    with pytest.raises(StateError, match="already acknowledged"):
        svc.acknowledge_update(_der(admins, "admin1"), raw)
    other = make_doc()
    with pytest.raises(ProtocolError, match="not the pending update"):
        svc.acknowledge_update(_der(admins, "admin2"), json.dumps(other).encode())
    with pytest.raises(AuthorizationError):
        svc.acknowledge_update(_der(admins, "owner"), raw)
    intermediate = svc.intermediate_cert_pem
    done = svc.acknowledge_update(_der(admins, "admin2"), json.dumps(doc, indent=1).encode())
    assert done.applied
    manifest = svc.manifest()
    assert manifest is not None
    assert manifest.marbles["m"].max_activations == 7
    assert svc.pending_update() is None
    assert svc.intermediate_cert_pem != intermediate
    kept = svc.read_secrets(_der(admins, "owner"), ["model_key", "shared"])
    assert kept["model_key"].key == MODEL_KEY  # unchanged definitions keep their values
    assert kept["shared"] == shared
    assert svc.store.get("secrets/generated/tls") is None  # dropped secrets are removed
    actions = [json.loads(e)["action"] for e in svc.update_log()]
    assert actions[-3:] == ["update-submitted", "update-acknowledged", "update-manifest"]
    _verify(svc)


def test_changed_secret_definition_is_regenerated(
    svc: CoordinatorService, admins: dict[str, User], make_doc: Callable[[], Doc]
) -> None:
    """A secret whose definition changes gets a new value; a changed user-defined one is unset."""
    svc.write_secrets(_der(admins, "owner"), {"model_key": MODEL_KEY})
    before = svc.read_secrets(_der(admins, "owner"), ["shared"])["shared"]
    doc = make_doc()
    doc["Secrets"]["shared"]["Size"] = 256
    doc["Secrets"]["model_key"]["Size"] = 128
    raw = json.dumps(doc).encode()
    svc.update(_der(admins, "admin1"), raw)
    svc.acknowledge_update(_der(admins, "admin3"), raw)
    after = svc.read_secrets(_der(admins, "owner"), ["shared", "model_key"])
    assert after["shared"].key != before.key
    assert after["shared"].key is not None
    assert len(after["shared"].key) == 32
    assert "model_key" not in after


def test_cancel_drops_the_pending_update(
    svc: CoordinatorService, admins: dict[str, User], make_doc: Callable[[], Doc]
) -> None:
    """Any updater may cancel; afterwards acknowledging or cancelling finds nothing."""
    doc = make_doc()
    doc["Marbles"]["m"]["MaxActivations"] = 3
    raw = json.dumps(doc).encode()
    svc.update(_der(admins, "admin1"), raw)
    with pytest.raises(StateError, match="another manifest update is pending"):
        svc.update(_der(admins, "admin2"), raw)
    with pytest.raises(AuthorizationError):
        svc.cancel_update(_der(admins, "owner"))
    svc.cancel_update(_der(admins, "admin3"))
    assert svc.pending_update() is None
    with pytest.raises(NotFoundError):
        svc.cancel_update(_der(admins, "admin3"))
    with pytest.raises(NotFoundError):
        svc.acknowledge_update(_der(admins, "admin2"), raw)
    manifest = svc.manifest()
    assert manifest is not None
    assert manifest.marbles["m"].max_activations == 0
    assert json.loads(svc.update_log()[-1])["action"] == "update-cancelled"
    _verify(svc)


def test_update_refusals(
    svc: CoordinatorService, admins: dict[str, User], make_doc: Callable[[], Doc]
) -> None:
    """No certificate, no UpdateManifest role, the same manifest or an invalid one are refused."""
    raw = json.dumps(make_doc()).encode()
    changed = make_doc()
    changed["Marbles"]["m"]["MaxActivations"] = 1
    with pytest.raises(AuthorizationError, match="client certificate"):
        svc.update(None, json.dumps(changed).encode())
    with pytest.raises(AuthorizationError, match="not allowed to update the manifest"):
        svc.update(_der(admins, "owner"), json.dumps(changed).encode())
    with pytest.raises(ProtocolError, match="already in force"):
        svc.update(_der(admins, "admin1"), raw)
    changed["Marbles"]["m"]["Package"] = "nope"
    with pytest.raises(ManifestError) as info:
        svc.update(_der(admins, "admin1"), json.dumps(changed).encode())
    assert info.value.path == "Marbles.m.Package"


def test_root_secret_rotation_keeps_the_previous_generation(
    svc: CoordinatorService, admins: dict[str, User], make_doc: Callable[[], Doc]
) -> None:
    """RotateRootSecret gives shared symmetric keys new values and keeps the old as previous."""
    before = svc.read_secrets(_der(admins, "owner"), ["shared"])["shared"]
    doc = make_doc()
    doc["Config"]["RotateRootSecret"] = True
    raw = json.dumps(doc).encode()
    svc.update(_der(admins, "admin1"), raw)
    svc.acknowledge_update(_der(admins, "admin2"), raw)
    after = svc.read_secrets(_der(admins, "owner"), ["shared"])["shared"]
    assert after.key != before.key
    assert svc.store.get("secrets/previous/shared") is not None


# -- the update log ---------------------------------------------------------------------------


def test_update_log_verifies_and_detects_edited_or_removed_rows(
    make_service: Callable[..., CoordinatorService],
    make_sealed_store: Callable[[], SealedSQLiteStore],
    make_doc: Callable[[], Doc],
    admins: dict[str, User],
) -> None:
    """Editing one SQLite row, or deleting one, breaks verification of the served log."""
    store = make_sealed_store()
    service = make_service(store)
    service.set_manifest(json.dumps(make_doc()).encode())
    service.write_secrets(_der(admins, "owner"), {"model_key": MODEL_KEY})
    service.update(_der(admins, "owner"), _svn(2))
    _verify(service)
    conn = sqlite3.connect(store.path)
    (blob,) = conn.execute("SELECT value FROM kv WHERE key = 'updatelog/000000000001'").fetchone()
    conn.execute(
        "UPDATE kv SET value = ? WHERE key = 'updatelog/000000000001'",
        (blob[:-1] + bytes([blob[-1] ^ 1]),),
    )
    conn.commit()
    with pytest.raises(IntegrityError, match="entry 1"):
        _verify(service)
    conn.execute("UPDATE kv SET value = ? WHERE key = 'updatelog/000000000001'", (blob,))
    conn.commit()
    _verify(service)
    conn.execute("DELETE FROM kv WHERE key = 'updatelog/000000000002'")
    conn.commit()
    with pytest.raises(IntegrityError, match="removed"):
        _verify(service)
    conn.close()


def test_update_log_with_a_forged_head_signature_is_refused(svc: CoordinatorService) -> None:
    """A head not signed by the root key fails verification."""
    signed = svc.signed_update_log()
    head = dict(signed.head)
    head["signature"] = head["signature"][:-8] + "AAAAAAA="
    root = x509.load_pem_x509_certificate(svc.root_cert_pem).public_key()
    with pytest.raises(IntegrityError):
        verify_update_log(signed.entries, head, root)  # type: ignore[arg-type]
    with pytest.raises(IntegrityError):
        verify_update_log(signed.entries[:-1], signed.head, root)  # type: ignore[arg-type]
