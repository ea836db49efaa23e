"""Every shared SGX/TDX vector gets its expected verdict, step, claims and TCB status."""

from __future__ import annotations

import datetime as dt

import pytest

from veil.attestation import Claims
from veil.attestation.backends.dcap import verify_dcap_quote
from veil.errors import EvidenceError

from ._vectors import DcapVector, dcap_vectors


def _verify(vector: DcapVector, now: dt.datetime | None = None) -> Claims:
    return verify_dcap_quote(
        vector.quote, vector.collateral, root_ca_der=vector.root_der, now=now or vector.now
    )


def test_vector_verdict_and_step(dcap_vector: DcapVector) -> None:
    """Accepts (and policy-only rejects) verify; every other reject fails at its reject_stage."""
    if dcap_vector.accepts_cryptographically:
        _verify(dcap_vector)
    else:
        with pytest.raises(EvidenceError) as caught:
            _verify(dcap_vector)
        assert caught.value.step == dcap_vector.entry["reject_stage"]


def test_tcb_status_and_advisories(accept_vector: DcapVector) -> None:
    """An accept vector reports exactly the expected Intel TCB status and advisory IDs."""
    claims = _verify(accept_vector)
    assert claims.tcb_status == accept_vector.entry["expect_tcb_status"]
    assert list(claims.advisories) == accept_vector.entry["expect_advisories"]


def test_claims_equal_index_identity(accepting_vector: DcapVector) -> None:
    """Claims and their fields equal the identity values index.json records for the vector."""
    entry = accepting_vector.entry
    claims = _verify(accepting_vector)
    assert claims.tee == entry["tee"]
    for key in entry["identity_keys"]:
        assert claims.fields[key] == entry[key], key
    assert claims.debug is entry["debug"]
    assert claims.report_data.hex() == entry["report_data"]
    if entry["tee"] == "sgx":
        assert claims.unique_id.hex() == entry["mrenclave"]
        assert claims.signer_id.hex() == entry["mrsigner"]
        assert (claims.product_id, claims.security_version) == (
            entry["isv_prod_id"],
            entry["isv_svn"],
        )
    else:
        assert claims.unique_id.hex() == entry["mr_td"]
        assert (claims.signer_id, claims.product_id, claims.security_version) == (b"", 0, 0)


def test_debug_vectors_accept_and_report_debug() -> None:
    """The policy-rejected debug vectors verify here and say debug=True for the policy step."""
    debug = [v for v in dcap_vectors() if v.entry["reject_stage"] == "policy"]
    assert {v.id for v in debug} == {"trustee-sgx-v3-occlum-debug", "trustee-tdx-v4-debug"}
    for vector in debug:
        claims = _verify(vector)
        assert claims.debug is True
        assert claims.fields["debug"] is True


def test_rejected_one_second_before_window(accepting_vector: DcapVector) -> None:
    """One second before the collateral window opens, verification fails at step 'time'."""
    start, _ = accepting_vector.window
    with pytest.raises(EvidenceError) as caught:
        _verify(accepting_vector, start - dt.timedelta(seconds=1))
    assert caught.value.step == "time"


def test_rejected_exactly_at_window_end(accepting_vector: DcapVector) -> None:
    """At the (exclusive) end of the collateral window, verification fails at step 'time'."""
    _, end = accepting_vector.window
    with pytest.raises(EvidenceError) as caught:
        _verify(accepting_vector, end)
    assert caught.value.step == "time"


def test_accepted_at_both_window_edges(accepting_vector: DcapVector) -> None:
    """The window is half-open: its first second and its last second both verify."""
    start, end = accepting_vector.window
    _verify(accepting_vector, start)
    _verify(accepting_vector, end - dt.timedelta(seconds=1))
