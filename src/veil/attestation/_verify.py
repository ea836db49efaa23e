"""One entry point: verify evidence against a policy, trust anchors and an explicit time."""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field

from veil.attestation._binding import check_report_data
from veil.attestation._model import Claims, Evidence
from veil.attestation._policy import Policy, check_claims
from veil.attestation.backends.simulated import verify_simulated
from veil.errors import EvidenceError, PolicyError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrustAnchors:
    """Roots a verifier pins (DER). Roots shipped inside evidence are never trusted on their own.

    ``intel_root_der``: Intel SGX Root CA (SGX and TDX); ``amd_roots_der``: the AMD ARK (and
    optionally ASK/ASVK it signs); ``nvidia_root_der``: NVIDIA Device Identity CA;
    ``simulated_root_der``: the simulated platform's root.
    """

    simulated_root_der: bytes | None = None
    intel_root_der: bytes | None = None
    amd_roots_der: tuple[bytes, ...] = ()
    nvidia_root_der: bytes | None = None


@dataclass(frozen=True)
class Collateral:
    """What verification needs beyond the evidence and the roots.

    ``dcap_json``: QuoteCollateralV3 JSON (SGX/TDX); ``certs``: DER certificates that come with the
    evidence (SNP VCEK/VLEK and ASK, NVIDIA chain).
    """

    dcap_json: bytes | None = None
    certs: tuple[bytes, ...] = field(default_factory=tuple)


def _need(value: object, what: str, step: str = "chain") -> None:
    if value is None or value == ():
        raise EvidenceError(f"cannot verify: {what} is missing", step=step)


def verify_evidence(
    evidence: Evidence,
    *,
    trust_anchors: TrustAnchors,
    collateral: Collateral = Collateral(),
    now: dt.datetime,
) -> Claims:
    """Check the evidence itself (chain, collateral, signature, TCB) at ``now``; no policy."""
    if evidence.tee == "simulated":
        if trust_anchors.simulated_root_der is None:
            raise EvidenceError(
                "simulated evidence cannot be verified: no simulated root is pinned "
                "(pass the simulated platform's root certificate)",
                step="chain",
            )
        return verify_simulated(
            evidence.raw, trust_anchor_der=trust_anchors.simulated_root_der, now=now
        )
    if evidence.tee in ("sgx", "tdx"):
        from veil.attestation.backends.dcap import DcapCollateral, verify_dcap_quote

        _need(trust_anchors.intel_root_der, "the pinned Intel SGX Root CA")
        _need(collateral.dcap_json, "the DCAP collateral", step="collateral-mismatch")
        assert trust_anchors.intel_root_der is not None  # noqa: S101 - checked above
        assert collateral.dcap_json is not None  # noqa: S101 - checked above
        claims = verify_dcap_quote(
            evidence.raw,
            DcapCollateral.from_json(collateral.dcap_json),
            root_ca_der=trust_anchors.intel_root_der,
            now=now,
        )
        if claims.tee != evidence.tee:
            raise EvidenceError(
                f"the evidence is a {claims.tee} quote, not {evidence.tee}", step="parse"
            )
        return claims
    if evidence.tee == "sev-snp":
        from veil.attestation.backends.sev_snp import split_snp_evidence, verify_snp_report

        report, carried = split_snp_evidence(evidence.raw)
        certs = (*collateral.certs, *carried)
        _need(trust_anchors.amd_roots_der, "the pinned AMD ARK")
        _need(certs, "the VCEK or VLEK certificate")
        return verify_snp_report(
            report, certs=certs, trust_anchors=trust_anchors.amd_roots_der, now=now
        )
    if evidence.tee == "nvidia":
        from veil.attestation.backends.nvidia import verify_nvidia_evidence

        _need(trust_anchors.nvidia_root_der, "the pinned NVIDIA root")
        _need(collateral.certs, "the device certificate chain")
        assert trust_anchors.nvidia_root_der is not None  # noqa: S101 - checked above
        return verify_nvidia_evidence(
            evidence.raw,
            chain=collateral.certs,
            trust_anchor=trust_anchors.nvidia_root_der,
            now=now,
        )
    raise EvidenceError(f"unknown TEE {evidence.tee!r}", step="parse")


def verify(
    evidence: Evidence,
    policy: Policy,
    *,
    trust_anchors: TrustAnchors,
    expected_report_data: bytes,
    now: dt.datetime,
    collateral: Collateral = Collateral(),
) -> Claims:
    """Verify ``evidence`` and return its claims, or raise a ``VerificationError``.

    Steps: (1) the policy must allow the evidence's TEE kind at all — simulated evidence is
    refused before it is even parsed unless the policy says ``TEE: simulated``; (2) the backend
    checks chain, collateral, signature and TCB at ``now``; (3) the report data must equal
    ``expected_report_data`` (the binding to a key or certificate, ADR 0001); (4) the claims must
    satisfy the policy.
    """
    if evidence.tee != policy.tee:
        if evidence.tee == "simulated":
            raise PolicyError(
                "simulated-TEE evidence refused: this policy requires real "
                f"{policy.tee} hardware evidence (set TEE to 'simulated' explicitly to accept it)",
                claim="tee",
            )
        raise PolicyError(
            f"evidence comes from a {evidence.tee} TEE but the policy requires {policy.tee}",
            claim="tee",
        )
    claims = verify_evidence(evidence, trust_anchors=trust_anchors, collateral=collateral, now=now)
    check_report_data(claims.report_data, expected_report_data)
    check_claims(claims, policy)
    if claims.tee == "simulated":
        log.warning(
            "accepted SIMULATED-TEE evidence (no hardware protection) because the policy allows it",
            extra={"event": "attestation.simulated_accepted"},
        )
    return claims
