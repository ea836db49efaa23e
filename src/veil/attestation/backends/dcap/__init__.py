"""Intel SGX / TDX DCAP quote verification: pure, pinned to the Intel SGX Root CA, at ``now``.

``verify_dcap_quote`` checks an SGX v3 or TDX v4/v5 quote against dcap-qvl-style collateral
(:class:`DcapCollateral`) and returns :class:`veil.attestation.Claims`, or raises
``veil.errors.EvidenceError`` whose ``step`` names the failed check. Appraisal (debug, TCB
status, measurements) is the caller's policy step; see docs/adr/0005-dcap-verifier.md.
"""

from veil.attestation.backends.dcap._collateral import DcapCollateral
from veil.attestation.backends.dcap._quote import (
    AuthData,
    Quote,
    QuoteHeader,
    SgxReportBody,
    TdReportBody,
    parse_quote,
)
from veil.attestation.backends.dcap._verify import verify_dcap_quote

__all__ = [
    "AuthData",
    "DcapCollateral",
    "Quote",
    "QuoteHeader",
    "SgxReportBody",
    "TdReportBody",
    "parse_quote",
    "verify_dcap_quote",
]
