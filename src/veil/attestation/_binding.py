"""Report-data binding: what a workload puts into the 64 bytes of its evidence (ADR 0001)."""

from __future__ import annotations

import hashlib
import hmac

from veil.attestation._model import REPORT_DATA_SIZE
from veil.errors import EvidenceError

_COORDINATOR_LABEL = b"veil-coordinator-root/v1\x00"
_MARBLE_LABEL = b"veil-marble-key/v1\x00"


def coordinator_report_data(root_cert_der: bytes, nonce: bytes = b"") -> bytes:
    """Report data of coordinator evidence: SHA-256(label ‖ root certificate DER ‖ nonce)."""
    digest = hashlib.sha256(_COORDINATOR_LABEL + root_cert_der + nonce).digest()
    return digest.ljust(REPORT_DATA_SIZE, b"\x00")


def marble_report_data(public_key_spki_der: bytes) -> bytes:
    """Report data of marble evidence: SHA-256(label ‖ SubjectPublicKeyInfo DER of the CSR key)."""
    digest = hashlib.sha256(_MARBLE_LABEL + public_key_spki_der).digest()
    return digest.ljust(REPORT_DATA_SIZE, b"\x00")


def check_report_data(actual: bytes, expected: bytes) -> None:
    """Raise unless the evidence's report data equals what the verifier computed."""
    if len(expected) != REPORT_DATA_SIZE or not hmac.compare_digest(actual, expected):
        raise EvidenceError(
            "the evidence is not bound to this key or certificate (report data differs): "
            "it was made for another key, or replayed",
            step="report-data",
        )
