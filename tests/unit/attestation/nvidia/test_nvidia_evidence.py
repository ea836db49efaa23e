"""verify_nvidia_evidence checks the SPDM signature, the device chain and the nonce."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from veil.attestation.backends.nvidia import parse_spdm_measurements, verify_nvidia_evidence
from veil.errors import ConfigurationError, EvidenceError, VerificationError

from .conftest import Vector, vector_inputs

NVIDIA_VECTOR_IDS = [
    "trustee-nvidia-hopper-1",
    "trustee-nvidia-hopper-coco",
    "trustee-nvidia-chain-case2",
    "trustee-nvidia-chain-case3",
    "trustee-nvidia-chain-case4",
]
HOPPER = "trustee-nvidia-hopper-1"
FUZZ = settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
Inputs = tuple[bytes, list[bytes], bytes, dt.datetime]


@pytest.fixture(scope="module")
def hopper(vectors: Path, nvidia_vectors: dict[str, Vector]) -> Inputs:
    """The accepted Hopper evidence with its full chain, pinned root and time."""
    return vector_inputs(vectors, nvidia_vectors[HOPPER])


def test_the_parametrized_ids_cover_every_nvidia_vector(
    nvidia_vectors: dict[str, Vector],
) -> None:
    """Every nvidia vector in index.json is exercised by the verdict test below."""
    assert sorted(nvidia_vectors) == sorted(NVIDIA_VECTOR_IDS)


@pytest.mark.parametrize("vector_id", NVIDIA_VECTOR_IDS)
def test_vector_verdict_and_stage(
    vectors: Path, nvidia_vectors: dict[str, Vector], vector_id: str
) -> None:
    """Each vector is accepted with its nonce, or rejected at its reject_stage."""
    vector = nvidia_vectors[vector_id]
    evidence, chain, root, now = vector_inputs(vectors, vector)
    nonce = bytes.fromhex(vector["nonce"])
    assert hashlib.sha256(evidence).hexdigest() == vector["evidence_sha256"]
    if vector["expect"] == "accept":
        claims = verify_nvidia_evidence(
            evidence, chain=chain, trust_anchor=root, now=now, nonce=nonce
        )
        for key in vector["identity_keys"]:
            assert claims.fields[key] == vector[key], key
        assert claims.tee == "nvidia"
        assert claims.report_data == nonce + bytes(32)
    else:
        with pytest.raises(EvidenceError) as caught:
            verify_nvidia_evidence(evidence, chain=chain, trust_anchor=root, now=now, nonce=nonce)
        assert caught.value.step == vector["reject_stage"]


def test_claims_equal_the_trustee_claims_file(
    vectors: Path, nvidia_vectors: dict[str, Vector], hopper: Inputs
) -> None:
    """FWID, versions, opaque configuration and all 64 measurements match trustee's claims."""
    evidence, chain, root, now = hopper
    claims = verify_nvidia_evidence(evidence, chain=chain, trust_anchor=root, now=now)
    expected = json.loads((vectors / nvidia_vectors[HOPPER]["expected_claims"]).read_text())
    for key, value in expected["config"].items():
        if key != "measurement_count":
            assert claims.fields[key] == value, key
    assert claims.fields["measurements"] == expected["measurements"]
    assert claims.unique_id.hex() == expected["config"]["fwid"]


def test_a_trailing_byte_after_the_signature_is_not_signed_and_is_ignored(
    vectors: Path, nvidia_vectors: dict[str, Vector]
) -> None:
    """The coco blob's extra byte is outside the SPDM structure, so the signed length excludes it."""
    evidence, *_ = vector_inputs(vectors, nvidia_vectors["trustee-nvidia-hopper-coco"])
    parsed = parse_spdm_measurements(evidence)
    assert len(parsed.signed) + 96 == len(evidence) - 1


def test_another_nonce_is_a_report_data_failure(hopper: Inputs) -> None:
    """Evidence made for another challenge is refused as a replay."""
    evidence, chain, root, now = hopper
    with pytest.raises(EvidenceError) as caught:
        verify_nvidia_evidence(evidence, chain=chain, trust_anchor=root, now=now, nonce=bytes(32))
    assert caught.value.step == "report-data"


def test_the_chain_may_omit_the_root(hopper: Inputs) -> None:
    """Only the pinned root is trusted, so a chain that stops below it verifies too."""
    evidence, chain, root, now = hopper
    verify_nvidia_evidence(evidence, chain=chain[:-1], trust_anchor=root, now=now)


def test_a_root_that_is_not_self_signed_is_a_configuration_error(hopper: Inputs) -> None:
    """Pinning an intermediate instead of the NVIDIA Device Identity CA is a configuration error."""
    evidence, chain, _, now = hopper
    with pytest.raises(ConfigurationError):
        verify_nvidia_evidence(evidence, chain=chain, trust_anchor=chain[-2], now=now)


def test_another_root_is_a_chain_failure(hopper: Inputs) -> None:
    """A chain to a different self-signed root does not reach the pinned one."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.serialization import Encoding
    from cryptography.x509.oid import NameOID

    evidence, chain, _, now = hopper
    key = ec.generate_private_key(ec.SECP384R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "NVIDIA Device Identity CA")])
    other = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(dt.datetime(2020, 1, 1, tzinfo=dt.UTC))
        .not_valid_after(dt.datetime(2040, 1, 1, tzinfo=dt.UTC))
        .sign(key, hashes.SHA384())
        .public_bytes(Encoding.DER)
    )
    with pytest.raises(EvidenceError) as caught:
        verify_nvidia_evidence(evidence, chain=chain, trust_anchor=other, now=now)
    assert caught.value.step == "chain"


def test_a_time_before_the_chain_is_valid_is_a_chain_failure(hopper: Inputs) -> None:
    """Certificates are checked at the explicit ``now``."""
    evidence, chain, root, _ = hopper
    with pytest.raises(EvidenceError) as caught:
        verify_nvidia_evidence(
            evidence, chain=chain, trust_anchor=root, now=dt.datetime(2019, 1, 1, tzinfo=dt.UTC)
        )
    assert caught.value.step == "chain"


def test_a_naive_now_is_a_configuration_error(hopper: Inputs) -> None:
    """``now`` must carry a time zone."""
    evidence, chain, root, _ = hopper
    with pytest.raises(ConfigurationError):
        verify_nvidia_evidence(
            evidence, chain=chain, trust_anchor=root, now=dt.datetime(2025, 1, 1)
        )


def test_a_leaf_whose_fwid_differs_from_the_evidence_is_a_chain_failure(
    vectors: Path, nvidia_vectors: dict[str, Vector], hopper: Inputs
) -> None:
    """The coco chain's leaf does not carry the FWID the Hopper evidence reports."""
    evidence, _, root, now = hopper
    _, coco_chain, _, _ = vector_inputs(vectors, nvidia_vectors["trustee-nvidia-hopper-coco"])
    with pytest.raises(EvidenceError) as caught:
        verify_nvidia_evidence(evidence, chain=coco_chain, trust_anchor=root, now=now)
    assert caught.value.step == "chain"


def test_a_flipped_measurement_bit_is_a_signature_failure(hopper: Inputs) -> None:
    """Changing one measured byte breaks the SPDM signature."""
    evidence, chain, root, now = hopper
    raw = bytearray(evidence)
    raw[37 + 8 + 55 + 7 + 10] ^= 0x01  # inside measurement block 2's digest
    with pytest.raises(EvidenceError) as caught:
        verify_nvidia_evidence(bytes(raw), chain=chain, trust_anchor=root, now=now)
    assert caught.value.step == "signature"


@FUZZ
@given(cut=st.integers(min_value=0, max_value=4116))
def test_truncated_evidence_is_refused(hopper: Inputs, cut: int) -> None:
    """Any strict prefix of the genuine evidence is refused."""
    evidence, chain, root, now = hopper
    with pytest.raises(VerificationError):
        verify_nvidia_evidence(evidence[:cut], chain=chain, trust_anchor=root, now=now)


@FUZZ
@given(offset=st.integers(min_value=0, max_value=4116), bit=st.integers(0, 7))
def test_bit_flipped_evidence_is_refused(hopper: Inputs, offset: int, bit: int) -> None:
    """Flipping any bit of the request, the response or the signature makes it refused."""
    evidence, chain, root, now = hopper
    raw = bytearray(evidence)
    raw[offset] ^= 1 << bit
    with pytest.raises(VerificationError):
        verify_nvidia_evidence(bytes(raw), chain=chain, trust_anchor=root, now=now)


@FUZZ
@given(data=st.binary(max_size=5000))
def test_random_evidence_is_refused(hopper: Inputs, data: bytes) -> None:
    """Random bytes are refused with a VerificationError."""
    _, chain, root, now = hopper
    with pytest.raises(VerificationError):
        verify_nvidia_evidence(data, chain=chain, trust_anchor=root, now=now)
