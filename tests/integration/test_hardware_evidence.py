"""The coordinator's activation path runs full hardware verification on real evidence.

Real quotes cannot be re-signed for a test key, so each one is refused exactly at the binding
step — after chain, collateral, QE and quote signature, and TCB checks have all passed.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from pathlib import Path
from typing import Any

import pytest

from veil.attestation import Collateral, Evidence, SimulatedPlatform, TrustAnchors
from veil.attestation.issuers import GramineIssuer
from veil.coordinator.server import SimulatedCoordinatorTEE
from veil.coordinator.service import ActivationRequest, CoordinatorService
from veil.coordinator.store import MemoryStore
from veil.errors import EvidenceError, PolicyError
from veil.pki import build_csr, generate_key

VECTORS = Path(__file__).resolve().parents[2].parent / "shared" / "vectors"


def _vector(vid: str) -> dict[str, Any]:
    index = VECTORS / "index.json"
    if not index.exists():
        pytest.fail(f"the shared attestation vectors are missing: {index}")
    return next(v for v in json.loads(index.read_text())["vectors"] if v["id"] == vid)


def _service(tmp_path: Path, v: dict[str, Any], package: dict[str, object]) -> CoordinatorService:
    platform = SimulatedPlatform.create(tmp_path / "platform")
    at = dt.datetime.fromtimestamp(v["verify_at_unix"], dt.UTC)
    service = CoordinatorService(
        MemoryStore(),
        SimulatedCoordinatorTEE(platform),
        trust_anchors=TrustAnchors(intel_root_der=(VECTORS / v["trust_anchor"]).read_bytes()),
        collateral=Collateral(dcap_json=(VECTORS / v["collateral"]).read_bytes()),
        clock=lambda: at,
    )
    manifest = {
        "Packages": {"enclave": package},
        "Marbles": {"server": {"Package": "enclave"}},
    }
    service.set_manifest(json.dumps(manifest).encode())
    return service


def _request(raw: bytes) -> ActivationRequest:
    key = generate_key()
    return ActivationRequest(
        marble_type="server",
        uuid=str(uuid.uuid4()),
        csr_der=build_csr(key, common_name="m", dns_names=["localhost"]),
        evidence=Evidence(tee="sgx", raw=raw),
    )


def _sgx_package(v: dict[str, Any], **extra: object) -> dict[str, object]:
    return {
        "TEE": "sgx",
        "UniqueID": v["mrenclave"],
        "Debug": False,
        "AcceptedTCBStatuses": [v["expect_tcb_status"]],
        **extra,
    }


def test_real_sgx_quote_passes_dcap_and_is_refused_only_at_the_key_binding(tmp_path: Path) -> None:
    """A genuine SGX quote verifies through DCAP in the coordinator, then fails report-data."""
    v = _vector("dcapqvl-sgx-v3")
    service = _service(tmp_path, v, _sgx_package(v))
    with pytest.raises(EvidenceError) as info:
        service.activate(_request((VECTORS / v["evidence"]).read_bytes()))
    assert info.value.step == "report-data"


def test_gramine_issuer_evidence_from_a_fake_device_is_consumed_by_the_coordinator(
    tmp_path: Path,
) -> None:
    """Evidence read through Gramine's /dev/attestation files reaches full DCAP verification."""
    v = _vector("dcapqvl-sgx-v3")
    quote = (VECTORS / v["evidence"]).read_bytes()
    device = tmp_path / "dev-attestation"
    device.mkdir()
    (device / "attestation_type").write_text("dcap")
    (device / "user_report_data").write_bytes(b"")
    (device / "quote").write_bytes(quote)
    evidence = GramineIssuer(device).issue(bytes.fromhex(v["report_data"]))
    assert evidence.raw == quote
    assert (device / "user_report_data").read_bytes() == bytes.fromhex(v["report_data"])
    service = _service(tmp_path, v, _sgx_package(v))
    with pytest.raises(EvidenceError) as info:
        service.activate(_request(evidence.raw))
    assert info.value.step == "report-data"


def test_real_quote_for_another_package_is_refused(tmp_path: Path) -> None:
    """The package's identity is checked too: a quote of another enclave never activates."""
    v = _vector("dcapqvl-sgx-v3")
    service = _service(tmp_path, v, _sgx_package(v, UniqueID="00" * 32))
    with pytest.raises((EvidenceError, PolicyError)):
        service.activate(_request((VECTORS / v["evidence"]).read_bytes()))


def test_simulated_evidence_against_a_hardware_package_is_refused(tmp_path: Path) -> None:
    """A manifest package for SGX never accepts simulated evidence (no fallback)."""
    v = _vector("dcapqvl-sgx-v3")
    service = _service(tmp_path, v, _sgx_package(v))
    platform = SimulatedPlatform.create(tmp_path / "other")
    from veil.attestation import SimulatedIdentity

    fake = platform.issue(SimulatedIdentity(unique_id=bytes.fromhex(v["mrenclave"])), bytes(64))
    request = _request(b"")
    request = ActivationRequest(
        marble_type=request.marble_type, uuid=request.uuid, csr_der=request.csr_der, evidence=fake
    )
    with pytest.raises(PolicyError) as info:
        service.activate(request)
    assert info.value.claim == "tee"
