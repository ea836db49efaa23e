"""Marble activation: the coordinator certifies the CSR key only after evidence binds exactly it."""

from __future__ import annotations

import base64
import dataclasses
import json
import uuid as uuidlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from veil.attestation import Evidence, SimulatedPlatform, TrustAnchors
from veil.coordinator.server import SimulatedCoordinatorTEE
from veil.coordinator.service import ActivationRequest, CoordinatorService
from veil.coordinator.store import MemoryStore
from veil.errors import (
    AuthorizationError,
    EvidenceError,
    NotFoundError,
    PolicyError,
    ProtocolError,
    StateError,
)
from veil.pki import generate_key, marble_identity, spki_der, verify_issued_by

from .conftest import MARBLE_UNIQUE_ID, Doc, Marble


def _load(pem: bytes) -> x509.Certificate:
    return x509.load_pem_x509_certificate(pem)


def _private_forms(key: ec.EllipticCurvePrivateKey) -> list[bytes]:
    scalar = key.private_numbers().private_value.to_bytes(32, "big")
    pkcs8 = key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return [scalar, pkcs8, base64.b64encode(scalar), scalar.hex().encode()]


def test_activation_certifies_exactly_the_csr_key(
    service: CoordinatorService, make_marble: Callable[..., Marble]
) -> None:
    """The marble certificate's public key is the CSR key, so the marble's own key works with it."""
    marble = make_marble()
    result = service.activate(marble.request)
    cert = _load(result.certificate_pem)
    public_key = cert.public_key()
    assert isinstance(public_key, ec.EllipticCurvePublicKey)
    assert spki_der(public_key) == spki_der(marble.key.public_key())
    signature = marble.key.sign(b"tls transcript", ec.ECDSA(hashes.SHA256()))
    public_key.verify(signature, b"tls transcript", ec.ECDSA(hashes.SHA256()))


def test_activation_result_chains_to_the_coordinator_root(
    service: CoordinatorService, make_marble: Callable[..., Marble]
) -> None:
    """The certificate chains to the intermediate, the intermediate to the root, and names the marble."""
    marble = make_marble()
    result = service.activate(marble.request)
    cert = _load(result.certificate_pem)
    now = cert.not_valid_before_utc
    intermediate = _load(result.intermediate_pem)
    verify_issued_by(cert, intermediate, now)
    verify_issued_by(intermediate, _load(result.coordinator_root_pem), now)
    verify_issued_by(cert, _load(result.marble_root_pem), now)
    assert result.coordinator_root_pem == service.root_cert_pem
    assert marble_identity(cert) == (marble.request.uuid, "m")
    assert result.claims.unique_id == MARBLE_UNIQUE_ID


def test_the_coordinator_never_holds_the_marble_private_key(
    make_service: Callable[..., CoordinatorService],
    manifest_bytes: bytes,
    make_marble: Callable[..., Marble],
) -> None:
    """Neither the request, the result nor any stored value contains the marble's private key."""
    store = MemoryStore()
    service = make_service(store)
    service.set_manifest(manifest_bytes)
    marble = make_marble()
    request_fields = [f.name for f in dataclasses.fields(ActivationRequest)]
    assert request_fields == ["marble_type", "uuid", "csr_der", "evidence"]
    result = service.activate(marble.request)
    exposed = [marble.request.csr_der, marble.request.evidence.raw, repr(result).encode()]
    with store.transaction() as txn:
        exposed += [txn.get(key) or b"" for key in txn.keys("")]
    assert len(exposed) > 10
    for secret_form in _private_forms(marble.key):
        assert not any(secret_form in blob for blob in exposed)


def test_evidence_replayed_with_another_csr_key_is_refused_at_report_data(
    service: CoordinatorService, make_marble: Callable[..., Marble]
) -> None:
    """Genuine evidence that binds a different key than the CSR's is refused: no certificate."""
    victim = make_marble()
    # The attacker submits its own CSR with the victim's genuine evidence.
    attacker = make_marble()
    replay = dataclasses.replace(attacker.request, evidence=victim.request.evidence)
    with pytest.raises(EvidenceError) as info:
        service.activate(replay)
    assert info.value.step == "report-data"


def test_evidence_binding_another_key_than_the_csr_is_refused(
    service: CoordinatorService, make_marble: Callable[..., Marble]
) -> None:
    """A marble whose evidence was made for another key cannot get its CSR key certified."""
    marble = make_marble(evidence_key=generate_key())
    with pytest.raises(EvidenceError) as info:
        service.activate(marble.request)
    assert info.value.step == "report-data"


def test_refused_activations_do_not_consume_max_activations(
    service: CoordinatorService, make_marble: Callable[..., Marble]
) -> None:
    """An activation refused by verification does not count towards MaxActivations."""
    victim = make_marble()
    replay = dataclasses.replace(make_marble().request, evidence=victim.request.evidence)
    for _ in range(3):
        with pytest.raises(EvidenceError):
            service.activate(replay)
    service.activate(make_marble().request)
    service.activate(make_marble().request)


def test_evidence_of_another_measurement_is_refused_by_the_package(
    service: CoordinatorService, make_marble: Callable[..., Marble]
) -> None:
    """A marble built differently from the package's UniqueID is refused with PolicyError."""
    marble = make_marble(unique_id=bytes.fromhex("cd" * 32))
    with pytest.raises(PolicyError) as info:
        service.activate(marble.request)
    assert info.value.claim == "unique_id"


def test_evidence_of_another_simulated_platform_is_refused_at_chain(
    service: CoordinatorService, make_marble: Callable[..., Marble], tmp_path: Path
) -> None:
    """Evidence signed by a platform whose root the coordinator did not pin is refused."""
    intruder = SimulatedPlatform.create(tmp_path / "intruder")
    marble = make_marble(evidence_platform=intruder)
    with pytest.raises(EvidenceError) as info:
        service.activate(marble.request)
    assert info.value.step == "chain"


def test_tampered_evidence_is_refused_at_signature(
    service: CoordinatorService, make_marble: Callable[..., Marble]
) -> None:
    """Evidence whose signed body was edited (here: claiming another build) is refused."""
    marble = make_marble(unique_id=bytes.fromhex("cd" * 32))
    envelope = json.loads(marble.request.evidence.raw)
    body = json.loads(base64.b64decode(envelope["body"]))
    body["unique_id"] = MARBLE_UNIQUE_ID.hex()
    envelope["body"] = base64.b64encode(json.dumps(body, sort_keys=True).encode()).decode()
    tampered = Evidence(tee="simulated", raw=json.dumps(envelope).encode())
    with pytest.raises(EvidenceError) as info:
        service.activate(dataclasses.replace(marble.request, evidence=tampered))
    assert info.value.step == "signature"


def test_simulated_evidence_is_refused_for_an_sgx_package(
    make_service: Callable[..., CoordinatorService],
    make_manifest: Callable[[], Doc],
    make_marble: Callable[..., Marble],
) -> None:
    """A package that says SGX never accepts simulated evidence: there is no silent fallback."""
    doc = make_manifest()
    doc["Packages"]["p"]["TEE"] = "sgx"
    service = make_service()
    service.set_manifest(json.dumps(doc).encode())
    with pytest.raises(PolicyError) as info:
        service.activate(make_marble().request)
    assert info.value.claim == "tee"


def test_package_without_tee_defaults_to_sgx_and_refuses_simulated_evidence(
    make_service: Callable[..., CoordinatorService],
    make_manifest: Callable[[], Doc],
    make_marble: Callable[..., Marble],
) -> None:
    """A package that does not name a TEE is an SGX package, so simulation must be explicit."""
    doc = make_manifest()
    del doc["Packages"]["p"]["TEE"]
    service = make_service()
    service.set_manifest(json.dumps(doc).encode())
    with pytest.raises(PolicyError) as info:
        service.activate(make_marble().request)
    assert info.value.claim == "tee"


def test_coordinator_without_a_pinned_simulated_root_refuses_simulated_evidence(
    tee: SimulatedCoordinatorTEE, manifest_bytes: bytes, make_marble: Callable[..., Marble]
) -> None:
    """A coordinator that pins no simulated root cannot verify simulated evidence and refuses it."""
    service = CoordinatorService(MemoryStore(), tee, trust_anchors=TrustAnchors())
    service.set_manifest(manifest_bytes)
    with pytest.raises(EvidenceError) as info:
        service.activate(make_marble().request)
    assert info.value.step == "chain"


def test_max_activations_refuses_the_third_activation(
    service: CoordinatorService, make_marble: Callable[..., Marble]
) -> None:
    """MaxActivations 2 admits two marbles of the type and refuses the third."""
    service.activate(make_marble().request)
    service.activate(make_marble().request)
    with pytest.raises(AuthorizationError, match="MaxActivations"):
        service.activate(make_marble().request)


def test_unlimited_activations_when_max_activations_is_zero(
    make_service: Callable[..., CoordinatorService],
    make_manifest: Callable[[], Doc],
    make_marble: Callable[..., Marble],
) -> None:
    """MaxActivations 0 (or absent) sets no limit, as in MarbleRun."""
    doc = make_manifest()
    del doc["Marbles"]["m"]["MaxActivations"]
    service = make_service()
    service.set_manifest(json.dumps(doc).encode())
    for _ in range(3):
        service.activate(make_marble().request)


def test_unknown_marble_type_is_not_found(
    service: CoordinatorService, make_marble: Callable[..., Marble]
) -> None:
    """Activating a marble type the manifest does not define raises NotFoundError."""
    with pytest.raises(NotFoundError, match="not in the manifest"):
        service.activate(make_marble(marble_type="ghost").request)


def test_activation_needs_a_uuid(
    service: CoordinatorService, make_marble: Callable[..., Marble]
) -> None:
    """A marble UUID that does not parse is a protocol error."""
    request = dataclasses.replace(make_marble().request, uuid="not-a-uuid")
    with pytest.raises(ProtocolError, match="not a UUID"):
        service.activate(request)


def test_activation_refuses_a_garbage_csr(
    service: CoordinatorService, make_marble: Callable[..., Marble]
) -> None:
    """A CSR that does not parse is a protocol error before any evidence is looked at."""
    request = dataclasses.replace(make_marble().request, csr_der=b"garbage")
    with pytest.raises(ProtocolError, match="CSR"):
        service.activate(request)


def test_activation_before_a_manifest_is_refused(
    make_service: Callable[..., CoordinatorService], make_marble: Callable[..., Marble]
) -> None:
    """A coordinator without a manifest does not admit marbles."""
    with pytest.raises(StateError, match="cannot activate a marble"):
        make_service().activate(make_marble().request)


def test_marble_uuid_is_normalised(
    service: CoordinatorService, make_marble: Callable[..., Marble]
) -> None:
    """An upper-case UUID is certified in its canonical lower-case form."""
    marble = make_marble()
    upper = str(uuidlib.UUID(marble.request.uuid)).upper()
    result = service.activate(dataclasses.replace(marble.request, uuid=upper))
    uuid, _ = marble_identity(_load(result.certificate_pem))
    assert uuid == upper.lower()


def test_activation_log_has_no_key_material(
    service: CoordinatorService,
    make_marble: Callable[..., Marble],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The activation log entry names the marble but carries no key material."""
    marble = make_marble()
    with caplog.at_level("DEBUG"):
        service.activate(marble.request)
    logged: list[Any] = [vars(r) for r in caplog.records]
    assert logged
    text = repr(logged).encode()
    for secret_form in _private_forms(marble.key):
        assert secret_form not in text
