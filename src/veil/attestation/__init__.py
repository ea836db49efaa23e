"""Attestation: evidence, claims, policies and verification at an explicit time.

The core (``verify``, ``check_claims``, ``Policy``) is pure: it takes bytes, parsed objects and
``now``. Issuers that touch devices or files live in ``veil.attestation.backends``.
"""

from veil.attestation._binding import (
    check_report_data,
    coordinator_report_data,
    marble_report_data,
)
from veil.attestation._model import REPORT_DATA_SIZE, TEE_KINDS, Claims, Evidence, TEEKind
from veil.attestation._policy import DEFAULT_TCB_STATUSES, Policy, check_claims
from veil.attestation._verify import Collateral, TrustAnchors, verify, verify_evidence
from veil.attestation.backends.simulated_platform import (
    SimulatedIdentity,
    SimulatedPlatform,
    measure,
)

__all__ = [
    "DEFAULT_TCB_STATUSES",
    "REPORT_DATA_SIZE",
    "TEE_KINDS",
    "Claims",
    "Collateral",
    "Evidence",
    "Policy",
    "SimulatedIdentity",
    "SimulatedPlatform",
    "TEEKind",
    "TrustAnchors",
    "check_claims",
    "check_report_data",
    "coordinator_report_data",
    "marble_report_data",
    "measure",
    "verify",
    "verify_evidence",
]
