"""verify() accepts only genuine, bound, policy-matching evidence; each attack fails its own step."""

from __future__ import annotations

import base64
import datetime as dt
import json
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from veil.attestation import (
    Evidence,
    Policy,
    SimulatedIdentity,
    SimulatedPlatform,
    TrustAnchors,
    verify,
)
from veil.attestation.backends.simulated import verify_simulated
from veil.errors import ConfigurationError, EvidenceError, PolicyError

from .conftest import REPORT_DATA, UNIQUE_ID

Envelope = dict[str, object]


def _envelope(evidence: Evidence) -> Envelope:
    doc = json.loads(evidence.raw)
    assert isinstance(doc, dict)
    return doc


def _pack(envelope: Envelope) -> Evidence:
    return Evidence(tee="simulated", raw=json.dumps(envelope).encode())


@pytest.fixture
def sign_body(platform: SimulatedPlatform) -> Callable[[bytes], Evidence]:
    """Factory: evidence over an arbitrary body, signed by the fixture platform's genuine AK."""
    ak_pem = (platform.directory / "attestation-key.pem").read_text(encoding="ascii")
    key = serialization.load_pem_private_key(
        (platform.directory / "attestation-key.key").read_bytes(), None
    )
    assert isinstance(key, ec.EllipticCurvePrivateKey)

    def sign(body: bytes) -> Evidence:
        signature = key.sign(body, ec.ECDSA(hashes.SHA256()))
        return _pack(
            {
                "format": "veil-simulated-evidence/v1",
                "body": base64.b64encode(body).decode(),
                "signature": base64.b64encode(signature).decode(),
                "certificates": [ak_pem],
            }
        )

    return sign


@pytest.fixture
def claims_doc() -> dict[str, object]:
    """A valid claims body for UNIQUE_ID and REPORT_DATA, to modify."""
    return {
        "unique_id": UNIQUE_ID.hex(),
        "signer_id": "11" * 32,
        "product_id": 1,
        "security_version": 1,
        "debug": False,
        "report_data": REPORT_DATA.hex(),
    }


def test_genuine_evidence_verifies_and_returns_its_claims(
    evidence: Evidence,
    anchors: TrustAnchors,
    make_policy: Callable[..., Policy],
    identity: SimulatedIdentity,
    now: dt.datetime,
) -> None:
    """Evidence from the pinned platform, bound to the expected data and matching the policy, passes."""
    claims = verify(
        evidence, make_policy(), trust_anchors=anchors, expected_report_data=REPORT_DATA, now=now
    )
    assert claims.tee == "simulated"
    assert claims.unique_id == UNIQUE_ID
    assert claims.signer_id == identity.signer_id
    assert claims.product_id == identity.product_id
    assert claims.security_version == identity.security_version
    assert claims.debug is False
    assert claims.report_data == REPORT_DATA


def test_evidence_replayed_for_other_report_data_is_refused_at_report_data(
    evidence: Evidence, anchors: TrustAnchors, make_policy: Callable[..., Policy], now: dt.datetime
) -> None:
    """Genuine evidence bound to one key cannot be replayed for another key."""
    other = b"another key digest".ljust(64, b"\x00")
    with pytest.raises(EvidenceError) as info:
        verify(evidence, make_policy(), trust_anchors=anchors, expected_report_data=other, now=now)
    assert info.value.step == "report-data"


def test_evidence_of_another_measurement_is_refused_by_policy(
    platform: SimulatedPlatform,
    anchors: TrustAnchors,
    make_policy: Callable[..., Policy],
    now: dt.datetime,
) -> None:
    """A modified build (another UniqueID) fails the policy even with genuine evidence."""
    evidence = platform.issue(SimulatedIdentity(unique_id=bytes(32)), REPORT_DATA)
    with pytest.raises(PolicyError) as info:
        verify(
            evidence,
            make_policy(),
            trust_anchors=anchors,
            expected_report_data=REPORT_DATA,
            now=now,
        )
    assert info.value.claim == "unique_id"


def test_debug_evidence_is_refused_by_a_production_policy(
    platform: SimulatedPlatform,
    anchors: TrustAnchors,
    make_policy: Callable[..., Policy],
    now: dt.datetime,
) -> None:
    """A debug enclave of the right measurement is not accepted by a production policy."""
    evidence = platform.issue(SimulatedIdentity(unique_id=UNIQUE_ID, debug=True), REPORT_DATA)
    with pytest.raises(PolicyError) as info:
        verify(
            evidence,
            make_policy(),
            trust_anchors=anchors,
            expected_report_data=REPORT_DATA,
            now=now,
        )
    assert info.value.claim == "debug"


@pytest.mark.parametrize("tee", ["sgx", "tdx", "sev-snp"])
def test_simulated_evidence_is_refused_by_hardware_policies_before_parsing(
    tee: str, anchors: TrustAnchors, make_policy: Callable[..., Policy], now: dt.datetime
) -> None:
    """Simulated evidence against a hardware policy is refused on its TEE tag, without parsing."""
    garbage = Evidence(tee="simulated", raw=b"not even evidence")
    with pytest.raises(PolicyError, match="simulated-TEE evidence refused") as info:
        verify(
            garbage,
            make_policy(tee=tee),
            trust_anchors=anchors,
            expected_report_data=REPORT_DATA,
            now=now,
        )
    assert info.value.claim == "tee"


def test_genuine_simulated_evidence_is_refused_by_an_sgx_policy(
    evidence: Evidence, anchors: TrustAnchors, make_policy: Callable[..., Policy], now: dt.datetime
) -> None:
    """Even perfectly valid simulated evidence never falls back into an SGX policy."""
    with pytest.raises(PolicyError) as info:
        verify(
            evidence,
            make_policy(tee="sgx"),
            trust_anchors=anchors,
            expected_report_data=REPORT_DATA,
            now=now,
        )
    assert info.value.claim == "tee"


def test_simulated_evidence_relabelled_as_sgx_is_not_verified_as_simulated(
    evidence: Evidence, anchors: TrustAnchors, make_policy: Callable[..., Policy], now: dt.datetime
) -> None:
    """Tagging simulated bytes as SGX sends them to the SGX backend, which refuses them."""
    relabelled = Evidence(tee="sgx", raw=evidence.raw)
    with pytest.raises(EvidenceError) as info:
        verify(
            relabelled,
            make_policy(tee="sgx"),
            trust_anchors=anchors,
            expected_report_data=REPORT_DATA,
            now=now,
        )
    assert info.value.step == "chain"  # no Intel root pinned: never the simulated path


def test_hardware_evidence_is_refused_by_a_simulated_policy(
    evidence: Evidence, anchors: TrustAnchors, make_policy: Callable[..., Policy], now: dt.datetime
) -> None:
    """A policy naming the simulated TEE does not accept evidence tagged as another TEE."""
    with pytest.raises(PolicyError) as info:
        verify(
            Evidence(tee="tdx", raw=evidence.raw),
            make_policy(),
            trust_anchors=anchors,
            expected_report_data=REPORT_DATA,
            now=now,
        )
    assert info.value.claim == "tee"


def test_simulated_evidence_without_a_pinned_root_is_refused(
    evidence: Evidence, make_policy: Callable[..., Policy], now: dt.datetime
) -> None:
    """With no simulated root pinned there is nothing to chain to, so verification fails."""
    with pytest.raises(EvidenceError, match="no simulated root is pinned") as info:
        verify(
            evidence,
            make_policy(),
            trust_anchors=TrustAnchors(),
            expected_report_data=REPORT_DATA,
            now=now,
        )
    assert info.value.step == "chain"


def test_evidence_of_another_simulated_platform_is_refused_at_chain(
    make_platform: Callable[[], SimulatedPlatform],
    identity: SimulatedIdentity,
    anchors: TrustAnchors,
    make_policy: Callable[..., Policy],
    now: dt.datetime,
) -> None:
    """Evidence signed by a platform whose root is not pinned fails the chain step."""
    intruder = make_platform()
    evidence = intruder.issue(identity, REPORT_DATA)
    with pytest.raises(EvidenceError) as info:
        verify(
            evidence,
            make_policy(),
            trust_anchors=anchors,
            expected_report_data=REPORT_DATA,
            now=now,
        )
    assert info.value.step == "chain"


def test_evidence_after_the_attestation_key_expired_is_refused_at_chain(
    evidence: Evidence, anchors: TrustAnchors, make_policy: Callable[..., Policy], now: dt.datetime
) -> None:
    """Verification at a time outside the attestation key certificate's validity fails."""
    later = now + dt.timedelta(days=3651)
    with pytest.raises(EvidenceError) as info:
        verify(
            evidence,
            make_policy(),
            trust_anchors=anchors,
            expected_report_data=REPORT_DATA,
            now=later,
        )
    assert info.value.step == "chain"


def test_tampered_evidence_body_is_refused_at_signature(
    evidence: Evidence, anchors: TrustAnchors, make_policy: Callable[..., Policy], now: dt.datetime
) -> None:
    """Changing any signed claim (here the report data) breaks the attestation key signature."""
    envelope = _envelope(evidence)
    body = json.loads(base64.b64decode(str(envelope["body"])))
    forged = b"attacker key digest".ljust(64, b"\x00")
    body["report_data"] = forged.hex()
    envelope["body"] = base64.b64encode(json.dumps(body, sort_keys=True).encode()).decode()
    with pytest.raises(EvidenceError) as info:
        verify(
            _pack(envelope),
            make_policy(),
            trust_anchors=anchors,
            expected_report_data=forged,
            now=now,
        )
    assert info.value.step == "signature"


def test_evidence_with_a_signature_of_other_evidence_is_refused_at_signature(
    platform: SimulatedPlatform,
    identity: SimulatedIdentity,
    evidence: Evidence,
    anchors: TrustAnchors,
    make_policy: Callable[..., Policy],
    now: dt.datetime,
) -> None:
    """A well-formed signature that does not cover this body is refused."""
    other = _envelope(platform.issue(identity, bytes(64)))
    envelope = _envelope(evidence)
    envelope["signature"] = other["signature"]
    with pytest.raises(EvidenceError) as info:
        verify(
            _pack(envelope),
            make_policy(),
            trust_anchors=anchors,
            expected_report_data=REPORT_DATA,
            now=now,
        )
    assert info.value.step == "signature"


def test_evidence_with_a_flipped_signature_byte_is_refused_at_signature(
    evidence: Evidence, anchors: TrustAnchors, make_policy: Callable[..., Policy], now: dt.datetime
) -> None:
    """Flipping one bit of the signature makes the evidence unverifiable."""
    envelope = _envelope(evidence)
    signature = bytearray(base64.b64decode(str(envelope["signature"])))
    signature[-1] ^= 0x01
    envelope["signature"] = base64.b64encode(bytes(signature)).decode()
    with pytest.raises(EvidenceError) as info:
        verify(
            _pack(envelope),
            make_policy(),
            trust_anchors=anchors,
            expected_report_data=REPORT_DATA,
            now=now,
        )
    assert info.value.step == "signature"


def test_evidence_whose_ak_certificate_is_swapped_for_another_platforms_is_refused(
    make_platform: Callable[[], SimulatedPlatform],
    evidence: Evidence,
    anchors: TrustAnchors,
    make_policy: Callable[..., Policy],
    now: dt.datetime,
) -> None:
    """Presenting another platform's attestation key certificate does not pass the chain."""
    intruder = make_platform()
    envelope = _envelope(evidence)
    envelope["certificates"] = [
        (intruder.directory / "attestation-key.pem").read_text(encoding="ascii")
    ]
    with pytest.raises(EvidenceError) as info:
        verify(
            _pack(envelope),
            make_policy(),
            trust_anchors=anchors,
            expected_report_data=REPORT_DATA,
            now=now,
        )
    assert info.value.step == "chain"


def test_pinning_the_attestation_key_instead_of_the_root_does_not_help_an_intruder(
    make_platform: Callable[[], SimulatedPlatform],
    identity: SimulatedIdentity,
    make_policy: Callable[..., Policy],
    now: dt.datetime,
) -> None:
    """A self-made root pinned by a verifier only accepts evidence from its own platform."""
    honest, intruder = make_platform(), make_platform()
    evidence = honest.issue(identity, REPORT_DATA)
    with pytest.raises(EvidenceError) as info:
        verify(
            evidence,
            make_policy(),
            trust_anchors=TrustAnchors(simulated_root_der=intruder.root_der),
            expected_report_data=REPORT_DATA,
            now=now,
        )
    assert info.value.step == "chain"


# -- the simulated backend's parsing ---------------------------------------------------------


@pytest.mark.parametrize(
    ("mutate", "step"),
    [
        (lambda env: env.update(format="veil-simulated-evidence/v0"), "parse"),
        (lambda env: env.update(body="***"), "parse"),
        (lambda env: env.update(signature=5), "parse"),
        (lambda env: env.update(certificates=[]), "parse"),
        (lambda env: env.update(certificates=env["certificates"] * 2), "parse"),
        (lambda env: env.update(certificates=["not a pem"]), "chain"),
    ],
    ids=["format", "body-not-base64", "signature-not-string", "no-cert", "two-certs", "bad-pem"],
)
def test_malformed_envelopes_are_refused_at_their_step(
    evidence: Evidence,
    platform: SimulatedPlatform,
    now: dt.datetime,
    mutate: Callable[[Envelope], None],
    step: str,
) -> None:
    """A malformed envelope raises EvidenceError naming the step that refused it."""
    envelope = _envelope(evidence)
    mutate(envelope)
    with pytest.raises(EvidenceError) as info:
        verify_simulated(json.dumps(envelope).encode(), trust_anchor_der=platform.root_der, now=now)
    assert info.value.step == step


@pytest.mark.parametrize(
    "raw",
    [b"\xff\xfe", b"[]", b"[" * 60_000, b"x" * (64 * 1024 + 1)],
    ids=["not-utf8", "not-object", "deeply-nested", "too-large"],
)
def test_unparseable_evidence_is_refused_at_parse(
    raw: bytes, platform: SimulatedPlatform, now: dt.datetime
) -> None:
    """Bytes that are not a bounded JSON envelope are refused before any crypto."""
    with pytest.raises(EvidenceError) as info:
        verify_simulated(raw, trust_anchor_der=platform.root_der, now=now)
    assert info.value.step == "parse"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("unique_id", None),
        ("unique_id", "ab"),
        ("signer_id", "zz" * 32),
        ("report_data", "00" * 32),
        ("product_id", -1),
        ("security_version", True),
        ("debug", "false"),
    ],
    ids=[
        "missing-unique-id",
        "short-unique-id",
        "signer-not-hex",
        "short-report-data",
        "negative-product",
        "bool-security-version",
        "debug-not-bool",
    ],
)
def test_signed_but_malformed_claims_are_refused_at_claims(
    sign_body: Callable[[bytes], Evidence],
    claims_doc: dict[str, object],
    platform: SimulatedPlatform,
    now: dt.datetime,
    field: str,
    value: object,
) -> None:
    """Genuinely signed claims that are missing or mistyped are still refused."""
    if value is None:
        del claims_doc[field]
    else:
        claims_doc[field] = value
    evidence = sign_body(json.dumps(claims_doc).encode())
    with pytest.raises(EvidenceError) as info:
        verify_simulated(evidence.raw, trust_anchor_der=platform.root_der, now=now)
    assert info.value.step == "claims"


@pytest.mark.parametrize(
    "body", [b"not json", b"[1]", b"[" * 40_000], ids=["not-json", "not-object", "deeply-nested"]
)
def test_signed_body_that_is_not_a_claims_object_is_refused_at_claims(
    sign_body: Callable[[bytes], Evidence],
    platform: SimulatedPlatform,
    now: dt.datetime,
    body: bytes,
) -> None:
    """A signed body must be a JSON object of claims."""
    with pytest.raises(EvidenceError) as info:
        verify_simulated(sign_body(body).raw, trust_anchor_der=platform.root_der, now=now)
    assert info.value.step == "claims"


def test_evidence_signed_with_the_genuine_ak_over_a_custom_body_verifies(
    sign_body: Callable[[bytes], Evidence],
    claims_doc: dict[str, object],
    platform: SimulatedPlatform,
    now: dt.datetime,
) -> None:
    """The claims helper produces evidence the backend accepts (control for the tests above)."""
    claims = verify_simulated(
        sign_body(json.dumps(claims_doc).encode()).raw, trust_anchor_der=platform.root_der, now=now
    )
    assert claims.unique_id == UNIQUE_ID


def test_not_a_platform_directory_is_a_configuration_error(tmp_path: Path) -> None:
    """Opening a directory without platform files raises ConfigurationError with the fix."""
    with pytest.raises(ConfigurationError, match="simulated-platform init"):
        SimulatedPlatform(tmp_path)
