"""Our verifier and dcap-qvl 0.7.0 agree on every DCAP vector (status, advisories, failing step)."""

from __future__ import annotations

import pytest

from veil.attestation.backends.dcap import verify_dcap_quote
from veil.errors import EvidenceError

from ._vectors import DcapVector

dcap_qvl = pytest.importorskip("dcap_qvl", reason="dcap-qvl==0.7.0 is the reference verifier")

# dcap-qvl error text -> the step at which our verifier must refuse the same input; first match.
_STEP_OF_ERROR = (
    ("No matching TCB level found", "tcb"),
    ("ISV enclave report signature is invalid", "signature"),
    ("Signature is invalid for tcb_info", "collateral-signature"),
    ("Signature is invalid for qe_identity", "collateral-signature"),
    ("issue date is in the future", "time"),
    ("expired", "time"),
    ("CrlExpired", "time"),
    ("Failed to verify certificate chain", "chain"),
    ("Unsupported QE Identity id/version", "collateral-mismatch"),
)
# dcap-qvl hard-wires these appraisal checks; we report the claim and leave them to policy.
_POLICY_ONLY = {
    "Debug mode is enabled": lambda fields: fields["debug"] is True,
    "Invalid MR service TD": lambda fields: int(fields["mr_service_td"], 16) != 0,
    "SEPT_VE_DISABLE is not enabled": lambda fields: fields["sept_ve_disable"] is False,
}


def test_same_result_as_dcap_qvl(dcap_vector: DcapVector) -> None:
    """dcap-qvl accepts with our status and advisories, or rejects where we reject the same way;
    where it rejects only for debug / MRSERVICETD / SEPT_VE_DISABLE we accept and report that."""
    collateral = dcap_qvl.QuoteCollateralV3.from_json(dcap_vector.collateral_text.decode())
    try:
        report = dcap_qvl.verify_with_root_ca(
            dcap_vector.quote,
            collateral,
            dcap_vector.root_der,
            dcap_vector.entry["verify_at_unix"],
        )
    except ValueError as error:
        message = str(error)
        policy = [check for text, check in _POLICY_ONLY.items() if text in message]
        if policy:
            claims = verify_dcap_quote(
                dcap_vector.quote,
                dcap_vector.collateral,
                root_ca_der=dcap_vector.root_der,
                now=dcap_vector.now,
            )
            assert all(check(claims.fields) for check in policy)
            return
        step = next(step for text, step in _STEP_OF_ERROR if text in message)
        with pytest.raises(EvidenceError) as caught:
            verify_dcap_quote(
                dcap_vector.quote,
                dcap_vector.collateral,
                root_ca_der=dcap_vector.root_der,
                now=dcap_vector.now,
            )
        assert caught.value.step == step, message
        return
    claims = verify_dcap_quote(
        dcap_vector.quote,
        dcap_vector.collateral,
        root_ca_der=dcap_vector.root_der,
        now=dcap_vector.now,
    )
    assert claims.tcb_status == report.status
    assert list(claims.advisories) == list(report.advisory_ids)
