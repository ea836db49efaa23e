"""One entry point: verify evidence against a policy, trust anchors and an explicit time."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from veil.attestation._binding import check_report_data
from veil.attestation._model import Claims, Evidence
from veil.attestation._policy import Policy, check_claims
from veil.attestation.backends.simulated import verify_simulated
from veil.errors import EvidenceError, PolicyError


@dataclass(frozen=True)
class TrustAnchors:
    """Roots a verifier pins. ``simulated_root_der`` pins the simulated root."""

    simulated_root_der: bytes | None = None


def verify(
    evidence: Evidence,
    policy: Policy,
    *,
    trust_anchors: TrustAnchors,
    expected_report_data: bytes,
    now: dt.datetime,
) -> Claims:
    """Verify ``evidence`` and return its claims, or raise a ``VerificationError``.

    Steps: (1) the policy must allow the evidence's TEE kind at all — simulated evidence is
    refused before it is even parsed unless the policy says ``TEE: simulated``; (2) the backend
    checks chain, signature and claims at ``now``; (3) the report data must equal
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
    if evidence.tee == "simulated":
        if trust_anchors.simulated_root_der is None:
            raise EvidenceError(
                "simulated evidence cannot be verified: no simulated root is pinned "
                "(pass the simulated platform's root certificate)",
                step="chain",
            )
        claims = verify_simulated(
            evidence.raw, trust_anchor_der=trust_anchors.simulated_root_der, now=now
        )
    else:
        raise EvidenceError(
            f"{evidence.tee} evidence verification is not available in this build of veil",
            step="backend",
        )
    check_report_data(claims.report_data, expected_report_data)
    check_claims(claims, policy)
    return claims
