"""Coordinator state: status codes, first-writer-wins manifest, its signature, and the quote."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Callable

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from veil.attestation import Policy, TrustAnchors, coordinator_report_data, measure, verify
from veil.coordinator.core import Status
from veil.coordinator.server import SimulatedCoordinatorTEE
from veil.coordinator.service import CoordinatorService
from veil.coordinator.store import MemoryStore
from veil.errors import EvidenceError, ManifestError, ProtocolError, StateError
from veil.manifest import Manifest

from .conftest import Doc


def test_status_codes_follow_marblerun(
    make_service: Callable[..., CoordinatorService], manifest_bytes: bytes
) -> None:
    """A new coordinator accepts a manifest (2); once it is set it accepts marbles (3)."""
    service = make_service()
    assert service.status() == Status.ACCEPTING_MANIFEST
    assert int(service.status()) == 2
    assert service.manifest() is None
    service.set_manifest(manifest_bytes)
    assert int(service.status()) == 3
    assert service.status().message.startswith("Coordinator is running correctly")


def test_recovery_mode_reports_status_one(
    tee: SimulatedCoordinatorTEE, anchors: TrustAnchors
) -> None:
    """A coordinator started in recovery reports status 1."""
    service = CoordinatorService(MemoryStore(), tee, trust_anchors=anchors, recovery=True)
    assert int(service.status()) == 1
    assert "recovery" in service.status().message


def test_second_manifest_is_refused_and_the_first_stays(
    service: CoordinatorService, make_manifest: Callable[[], Doc], manifest_bytes: bytes
) -> None:
    """The first manifest wins; setting another one raises StateError and changes nothing."""
    before = service.manifest_document()
    doc = make_manifest()
    doc["Marbles"]["m"]["MaxActivations"] = 9
    with pytest.raises(StateError, match="cannot set a manifest"):
        service.set_manifest(json.dumps(doc).encode())
    assert service.manifest_document() == before
    with pytest.raises(StateError):
        service.set_manifest(manifest_bytes)


def test_invalid_manifest_is_refused_before_any_state_change(
    make_service: Callable[..., CoordinatorService], make_manifest: Callable[[], Doc]
) -> None:
    """A manifest referencing an undefined package raises ManifestError and leaves status 2."""
    service = make_service()
    doc = make_manifest()
    doc["Marbles"]["m"]["Package"] = "missing"
    with pytest.raises(ManifestError):
        service.set_manifest(json.dumps(doc).encode())
    assert service.status() == Status.ACCEPTING_MANIFEST


def test_oversized_manifest_is_refused(make_service: Callable[..., CoordinatorService]) -> None:
    """A manifest larger than 1 MiB is refused before parsing."""
    with pytest.raises(ManifestError, match="larger than"):
        make_service().set_manifest(b" " * (1024 * 1024 + 1))


def test_manifest_signature_verifies_under_the_root_key(
    service: CoordinatorService, manifest_bytes: bytes
) -> None:
    """The root key signs the fingerprint (SHA-256 of the canonical manifest), as clients check."""
    document = service.manifest_document()
    assert document is not None
    raw, fingerprint, signature = document
    assert raw == manifest_bytes
    manifest = Manifest.from_json(raw)
    assert fingerprint == hashlib.sha256(manifest.canonical_bytes()).hexdigest()
    root_key = x509.load_pem_x509_certificate(service.root_cert_pem).public_key()
    assert isinstance(root_key, ec.EllipticCurvePublicKey)
    root_key.verify(signature, bytes.fromhex(fingerprint), ec.ECDSA(hashes.SHA256()))


def test_user_certificates_are_exposed_for_client_tls(
    make_service: Callable[..., CoordinatorService], manifest_bytes: bytes
) -> None:
    """Before a manifest no client certificate is trusted; afterwards every manifest user's is."""
    service = make_service()
    assert service.user_certificates_pem() == []
    service.set_manifest(manifest_bytes)
    assert len(service.user_certificates_pem()) == 2


def test_quote_binds_the_root_certificate_and_nonce(
    service: CoordinatorService, anchors: TrustAnchors
) -> None:
    """The coordinator's evidence verifies against its measurement and binds root and nonce."""
    root_der = x509.load_pem_x509_certificate(service.root_cert_pem).public_bytes(
        serialization.Encoding.DER
    )
    policy = Policy(tee="simulated", unique_id=measure("coordinator"))
    nonce = b"client nonce"
    now = dt.datetime.now(dt.UTC)
    claims = verify(
        service.quote(nonce),
        policy,
        trust_anchors=anchors,
        expected_report_data=coordinator_report_data(root_der, nonce),
        now=now,
    )
    assert claims.unique_id == measure("coordinator")
    with pytest.raises(EvidenceError) as info:
        verify(
            service.quote(b"other nonce"),
            policy,
            trust_anchors=anchors,
            expected_report_data=coordinator_report_data(root_der, nonce),
            now=now,
        )
    assert info.value.step == "report-data"


def test_quote_refuses_a_nonce_over_64_bytes(service: CoordinatorService) -> None:
    """A nonce longer than 64 bytes is a protocol error."""
    with pytest.raises(ProtocolError, match="64 bytes"):
        service.quote(bytes(65))


def test_certificate_chain_is_intermediate_then_root(service: CoordinatorService) -> None:
    """certificate_chain_pem returns the intermediate followed by the root, each signed upward."""
    intermediate, root = x509.load_pem_x509_certificates(service.certificate_chain_pem())
    assert root.public_bytes(serialization.Encoding.PEM) == service.root_cert_pem
    intermediate.verify_directly_issued_by(root)
    mesh, chain = service.mesh_identity
    assert chain.endswith(intermediate.public_bytes(serialization.Encoding.PEM))
    mesh.cert.verify_directly_issued_by(intermediate)


def test_two_coordinators_have_different_roots(
    make_service: Callable[..., CoordinatorService],
) -> None:
    """Each new state creates its own root CA: deployments do not share an identity."""
    assert make_service().root_cert_pem != make_service().root_cert_pem
