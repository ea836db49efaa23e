"""Each tampered input fails at its own numbered step; time and anchors are explicit inputs."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from veil.attestation.backends.dcap import DcapCollateral, verify_dcap_quote
from veil.errors import ConfigurationError, EvidenceError

from ._tamper import flip, with_root_der_bit_flipped
from ._vectors import DcapVector, dcap_vectors, vector

SGX = "dcapqvl-sgx-v3"
TDX = "dcapqvl-tdx-v4"
# Signature data starts after header + body + u32: SGX v3 at 436, TDX v4 at 636. In the TDX
# quote the QE report certification data (type 6) adds 6 bytes before the QE report.
_OFFSETS = {
    SGX: {"signature": 436, "key": 500, "qe_report": 564, "qe_sig": 948, "auth": 1014},
    TDX: {"signature": 636, "key": 700, "qe_report": 770, "qe_sig": 1154, "auth": 1220},
}


def _step(
    quote: bytes,
    collateral: DcapCollateral,
    base: DcapVector,
    *,
    now: dt.datetime | None = None,
    root: bytes | None = None,
) -> str:
    with pytest.raises(EvidenceError) as caught:
        verify_dcap_quote(quote, collateral, root_ca_der=root or base.root_der, now=now or base.now)
    return caught.value.step


@pytest.mark.parametrize("vector_id", [SGX, TDX])
@pytest.mark.parametrize(
    ("field", "step"),
    [
        ("signature", "signature"),
        ("key", "qe-report"),
        ("qe_report", "qe-report"),
        ("qe_sig", "qe-report"),
        ("auth", "qe-report"),
    ],
)
def test_flipped_signature_data_fails_its_step(vector_id: str, field: str, step: str) -> None:
    """A bit flipped in the quote signature, attestation key, QE report, its signature or the QE
    auth data fails at the step that covers it."""
    base = vector(vector_id)
    tampered = flip(base.quote, 8 * _OFFSETS[vector_id][field] + 3)
    assert _step(tampered, base.collateral, base) == step


@pytest.mark.parametrize("vector_id", [SGX, TDX])
def test_flipped_root_copy_in_quote_is_refused_at_chain(vector_id: str) -> None:
    """The root inside the quote must equal the pinned root byte for byte."""
    base = vector(vector_id)
    tampered = with_root_der_bit_flipped(base.quote, 8 * 300)
    assert _step(tampered, base.collateral, base) == "chain"


@pytest.mark.parametrize(
    "field", ["pck_crl_issuer_chain", "tcb_info_issuer_chain", "qe_identity_issuer_chain"]
)
def test_flipped_root_copy_in_collateral_is_refused_at_chain(field: str) -> None:
    """A collateral issuer chain must end with exactly the pinned root too."""
    base = vector(TDX)
    chain = getattr(base.collateral, field).encode()
    tampered = with_root_der_bit_flipped(chain, 8 * 200 + 1).decode()
    collateral = dataclasses.replace(base.collateral, **{field: tampered})
    assert _step(base.quote, collateral, base) == "chain"


def _self_signed_root() -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Intel SGX Root CA")])
    now = dt.datetime(2020, 1, 1, tzinfo=dt.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=36500))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return certificate.public_bytes(Encoding.DER)


def test_other_pinned_root_is_refused_at_chain() -> None:
    """Genuine evidence does not verify against a root other than Intel's (same name, other key)."""
    base = vector(SGX)
    assert _step(base.quote, base.collateral, base, root=_self_signed_root()) == "chain"


def test_non_canonical_pem_is_refused_at_chain() -> None:
    """Issuer chains are canonical 64-column PEM; other spellings of the same DER are refused."""
    base = vector(TDX)
    chain = base.collateral.tcb_info_issuer_chain.replace("\n", "\r\n")
    collateral = dataclasses.replace(base.collateral, tcb_info_issuer_chain=chain)
    assert _step(base.quote, collateral, base) == "chain"


def test_flipped_qe_identity_signature_fails_collateral_signature() -> None:
    """The QE identity signature covers its exact bytes."""
    base = vector(SGX)
    signature = flip(base.collateral.qe_identity_signature, 77)
    collateral = dataclasses.replace(base.collateral, qe_identity_signature=signature)
    assert _step(base.quote, collateral, base) == "collateral-signature"


def test_reformatted_tcb_info_fails_collateral_signature() -> None:
    """Re-serialised TCB info JSON (same meaning, other bytes) no longer verifies."""
    base = vector(SGX)
    collateral = dataclasses.replace(base.collateral, tcb_info=base.collateral.tcb_info + " ")
    assert _step(base.quote, collateral, base) == "collateral-signature"


def test_tdx_quote_with_sgx_collateral_is_a_mismatch() -> None:
    """SGX collateral for a TDX quote (other PCK CA, QE id, FMSPC) is a collateral mismatch."""
    tdx, sgx = vector(TDX), vector(SGX)
    assert _step(tdx.quote, sgx.collateral, tdx, now=sgx.now) == "collateral-mismatch"


def test_collateral_of_other_fmspc_is_a_mismatch() -> None:
    """TDX collateral of another FMSPC, with the same PCK CA, is a collateral mismatch."""
    base, other = vector(TDX), vector("gotdxguest-tdx-v5")
    assert _step(base.quote, other.collateral, base, now=other.now) == "collateral-mismatch"


def test_pck_crl_of_other_ca_is_a_mismatch() -> None:
    """A PCK CRL issued by the other PCK CA does not vouch for this PCK certificate."""
    sgx, tdx = vector(SGX), vector(TDX)
    collateral = dataclasses.replace(
        sgx.collateral,
        pck_crl=tdx.collateral.pck_crl,
        pck_crl_issuer_chain=tdx.collateral.pck_crl_issuer_chain,
    )
    assert _step(sgx.quote, collateral, sgx) == "collateral-mismatch"


def test_swapped_crls_fail_at_crl() -> None:
    """The root CA CRL must be issued by the root: a PCK CRL in its place is refused."""
    base = vector(TDX)
    collateral = dataclasses.replace(base.collateral, root_ca_crl=base.collateral.pck_crl)
    assert _step(base.quote, collateral, base) == "crl"


def test_naive_now_is_a_configuration_error() -> None:
    """``now`` must carry a time zone; a naive datetime is the caller's bug, not evidence."""
    base = vector(SGX)
    with pytest.raises(ConfigurationError):
        verify_dcap_quote(
            base.quote, base.collateral, root_ca_der=base.root_der, now=dt.datetime(2025, 7, 4)
        )


def test_unparseable_pinned_root_is_a_configuration_error() -> None:
    """A pinned root that is not DER is a local configuration error."""
    base = vector(SGX)
    with pytest.raises(ConfigurationError):
        verify_dcap_quote(base.quote, base.collateral, root_ca_der=b"not der", now=base.now)


def test_now_in_another_time_zone_is_the_same_instant() -> None:
    """``now`` is an instant: the same moment in UTC+2 verifies exactly like UTC."""
    base = vector(SGX)
    local = base.now.astimezone(dt.timezone(dt.timedelta(hours=2)))
    claims = verify_dcap_quote(base.quote, base.collateral, root_ca_der=base.root_der, now=local)
    assert claims.tcb_status == base.entry["expect_tcb_status"]


def test_certificate_expiry_far_in_the_future_is_refused() -> None:
    """Long after every certificate and CRL expired, verification still fails (at 'time')."""
    base = vector(SGX)
    later = dt.datetime(2051, 1, 1, tzinfo=dt.UTC)
    assert _step(base.quote, base.collateral, base, now=later) == "time"


def test_trailing_bytes_after_the_quote_do_not_change_the_result() -> None:
    """Bytes after the quote are not signed and not part of it: the claims are the same."""
    base = vector(SGX)
    plain = verify_dcap_quote(base.quote, base.collateral, root_ca_der=base.root_der, now=base.now)
    padded = verify_dcap_quote(
        base.quote + b"trailer", base.collateral, root_ca_der=base.root_der, now=base.now
    )
    assert padded == plain


def test_every_vector_pins_the_intel_root(vectors: Path) -> None:
    """All DCAP vectors name the Intel SGX Root CA whose SHA-256 index.json records."""
    for dcap_vector in dcap_vectors():
        anchor = (vectors / dcap_vector.entry["trust_anchor"]).read_bytes()
        assert hashlib.sha256(anchor).hexdigest() == dcap_vector.entry["trust_anchor_sha256"]
        assert anchor == dcap_vector.root_der
