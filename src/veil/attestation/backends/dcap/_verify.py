"""Verify an Intel SGX / TDX DCAP quote against collateral, a pinned root and an explicit time.

The steps follow Intel, *SGX DCAP ECDSA Quote Library API* (appendix "Quote Format"), the TDX
DCAP Quoting Library API, the *SGX PCK Certificate and CRL Profile* and the *PCS API v4* collateral
models, in the order of Intel's quote verification library: PCK chain and collateral first, then
the QE report, the quote signature and the TCB level. No I/O, no clock: ``now`` is an input.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import types
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from veil.attestation._model import Claims
from veil.attestation.backends.dcap._chain import (
    Chain,
    check_crl,
    check_issued_by,
    check_not_revoked,
    check_valid_at,
    load_chain,
    p256_key,
    verify_p256,
)
from veil.attestation.backends.dcap._collateral import (
    DcapCollateral,
    QeIdentity,
    TcbInfo,
    parse_qe_identity,
    parse_tcb_info,
)
from veil.attestation.backends.dcap._pck import PckExtension, parse_pck_extension
from veil.attestation.backends.dcap._quote import Quote, SgxReportBody, parse_quote
from veil.attestation.backends.dcap._tcb import (
    TcbResult,
    converge,
    match_platform_tcb,
    match_qe_identity,
)
from veil.errors import ConfigurationError, EvidenceError

__all__ = ["verify_dcap_quote"]

_QE_IDS = {"sgx": "QE", "tdx": "TD_QE"}
_TCB_IDS = {"sgx": "SGX", "tdx": "TDX"}


@dataclass(frozen=True)
class _Anchor:
    """The pinned root, its verified CRL and the verification time, passed to every step."""

    root: x509.Certificate
    root_crl: x509.CertificateRevocationList
    now: dt.datetime


def _utc(now: dt.datetime) -> dt.datetime:
    if now.tzinfo is None or now.utcoffset() is None:
        raise ConfigurationError("'now' must be a timezone-aware datetime (use datetime.UTC)")
    return now.astimezone(dt.UTC)


def _pem(text: str) -> bytes:
    try:
        return text.encode("ascii")
    except UnicodeEncodeError:
        raise EvidenceError("a collateral issuer chain is not ASCII PEM", step="chain") from None


def _mismatch(message: str) -> EvidenceError:
    return EvidenceError(
        f"collateral does not belong to this quote: {message}", step="collateral-mismatch"
    )


def _window(issued: dt.datetime, next_update: dt.datetime, now: dt.datetime, what: str) -> None:
    """issueDate <= now < nextUpdate (the validity window is half-open)."""
    if now < issued:
        raise EvidenceError(
            f"the {what} is not valid yet: issued {issued.isoformat()}, now {now.isoformat()}",
            step="time",
        )
    if now >= next_update:
        raise EvidenceError(
            f"the {what} expired at {next_update.isoformat()} (now {now.isoformat()}); "
            "fetch fresh collateral",
            step="time",
        )


def _verify_chain(chain: Chain, anchor: _Anchor, *, length: int, what: str) -> None:
    """Each certificate is signed by the next and valid at ``now``, and the CA just below the
    root is not on the root CA CRL. The leaf's own revocation is checked by the caller."""
    certificates = chain.certificates
    if len(certificates) != length:
        raise EvidenceError(f"{what} must have a chain of {length} certificates", step="chain")
    for index, certificate in enumerate(certificates[:-1]):
        name = what if index == 0 else f"the CA certificate above {what}"
        check_issued_by(certificate, certificates[index + 1], anchor.now, name)
    check_not_revoked(certificates[-2], anchor.root_crl, f"the CA certificate of {what}")
    check_valid_at(anchor.root, anchor.now, "the pinned Intel SGX Root CA")


def _signed_collateral(
    chain: Chain, text: str, signature: bytes, anchor: _Anchor, *, what: str
) -> None:
    """Issuer chain to the pinned root, then the signature over the exact JSON bytes."""
    _verify_chain(chain, anchor, length=2, what=f"the {what} signing certificate")
    try:
        message = text.encode("utf-8")
    except UnicodeEncodeError:
        raise EvidenceError(f"the {what} is not valid UTF-8", step="parse") from None
    if not verify_p256(p256_key(chain.leaf, f"the {what} signer"), signature, message):
        raise EvidenceError(
            f"the {what} signature is invalid: the collateral was altered or is not Intel's",
            step="collateral-signature",
        )


def _pck_chain(
    collateral: DcapCollateral, crl_chain: Chain, pck_chain: Chain, anchor: _Anchor
) -> PckExtension:
    """Step 3: PCK CA and its CRL, then the PCK certificate signed, valid and not revoked."""
    _verify_chain(crl_chain, anchor, length=2, what="the PCK CRL issuer")
    pck_crl = check_crl(collateral.pck_crl, crl_chain.leaf, anchor.now, "PCK CRL")
    _verify_chain(pck_chain, anchor, length=3, what="the PCK certificate")
    if pck_chain.leaf.issuer != crl_chain.leaf.subject:
        raise _mismatch("the PCK CRL is for another PCK CA (platform vs processor)")
    check_not_revoked(pck_chain.leaf, pck_crl, "the PCK certificate")
    return parse_pck_extension(pck_chain.leaf)


def _tcb_collateral(
    quote: Quote,
    collateral: DcapCollateral,
    chains: tuple[Chain, Chain],
    pck: PckExtension,
    anchor: _Anchor,
) -> tuple[TcbInfo, QeIdentity]:
    """Step 4: TCB info and QE identity signed by Intel, current, and for this quote."""
    tcb_chain, qe_chain = chains
    _signed_collateral(
        tcb_chain, collateral.tcb_info, collateral.tcb_info_signature, anchor, what="TCB info"
    )
    _signed_collateral(
        qe_chain,
        collateral.qe_identity,
        collateral.qe_identity_signature,
        anchor,
        what="QE identity",
    )
    tcb_info = parse_tcb_info(collateral.tcb_info)
    qe_identity = parse_qe_identity(collateral.qe_identity)
    _window(tcb_info.issue_date, tcb_info.next_update, anchor.now, "TCB info")
    _window(qe_identity.issue_date, qe_identity.next_update, anchor.now, "QE identity")
    tee = quote.tee.upper()
    if tcb_info.id != _TCB_IDS[quote.tee]:
        raise _mismatch(f"{tcb_info.id} TCB info for a {tee} quote")
    if qe_identity.id != _QE_IDS[quote.tee] or qe_identity.version != 2:
        raise _mismatch(f"QE identity {qe_identity.id} v{qe_identity.version} for a {tee} quote")
    if tcb_info.fmspc != pck.fmspc:
        raise _mismatch(f"TCB info FMSPC {tcb_info.fmspc.hex()} != PCK FMSPC {pck.fmspc.hex()}")
    if tcb_info.pce_id != pck.pce_id:
        raise _mismatch(f"TCB info PCEID {tcb_info.pce_id.hex()} != PCK PCEID {pck.pce_id.hex()}")
    return tcb_info, qe_identity


def _qe_report(quote: Quote, pck_leaf: x509.Certificate, qe_identity: QeIdentity) -> TcbResult:
    """Step 5: QE report signed by the PCK key, binding the attestation key, matching identity."""
    auth = quote.auth
    if not verify_p256(
        p256_key(pck_leaf, "the PCK certificate"), auth.qe_report_signature, auth.qe_report.raw
    ):
        raise EvidenceError("the QE report is not signed by the PCK key", step="qe-report")
    binding = hashlib.sha256(auth.attestation_key + auth.qe_auth_data).digest() + bytes(32)
    if auth.qe_report.report_data != binding:
        raise EvidenceError("the QE report does not bind the attestation key", step="qe-report")
    return match_qe_identity(auth.qe_report, qe_identity)


def _quote_signature(quote: Quote) -> None:
    """Step 6: ECDSA-P256-SHA256 by the attestation key over header and body."""
    try:
        key = ec.EllipticCurvePublicKey.from_encoded_point(
            ec.SECP256R1(), b"\x04" + quote.auth.attestation_key
        )
    except ValueError:
        raise EvidenceError("the attestation key is not a P-256 point", step="signature") from None
    if not verify_p256(key, quote.auth.signature, quote.signed):
        raise EvidenceError(
            "the quote signature is invalid: the quote was altered", step="signature"
        )


def _claims(quote: Quote, result: TcbResult) -> Claims:
    body = quote.body
    if isinstance(body, SgxReportBody):
        unique_id, signer_id, product_id, svn = (
            body.mr_enclave,
            body.mr_signer,
            body.isv_prod_id,
            body.isv_svn,
        )
    else:  # TDX has no signer, product or security version of its own: MRTD identifies the TD.
        unique_id, signer_id, product_id, svn = body.mr_td, b"", 0, 0
    return Claims(
        tee=quote.tee,
        unique_id=unique_id,
        signer_id=signer_id,
        product_id=product_id,
        security_version=svn,
        debug=body.debug,
        report_data=body.report_data,
        tcb_status=result.status,
        advisories=result.advisories,
        fields=types.MappingProxyType(_fields(quote)),
    )


def _fields(quote: Quote) -> dict[str, object]:
    body = quote.body
    if isinstance(body, SgxReportBody):
        return {
            "mrenclave": body.mr_enclave.hex(),
            "mrsigner": body.mr_signer.hex(),
            "isv_prod_id": body.isv_prod_id,
            "isv_svn": body.isv_svn,
            "debug": body.debug,
            "mode64": body.mode64,
            "attributes": body.attributes.hex(),
            "cpu_svn": body.cpu_svn.hex(),
            "misc_select": body.misc_select,
            "report_data": body.report_data.hex(),
        }
    fields: dict[str, object] = {
        "mr_td": body.mr_td.hex(),
        **{f"rtmr{index}": rtmr.hex() for index, rtmr in enumerate(body.rtmrs)},
        "mr_config_id": body.mr_config_id.hex(),
        "mr_owner": body.mr_owner.hex(),
        "mr_owner_config": body.mr_owner_config.hex(),
        "report_data": body.report_data.hex(),
        "td_attributes": body.td_attributes.hex(),
        "debug": body.debug,
        "sept_ve_disable": body.sept_ve_disable,
        "tee_tcb_svn": body.tee_tcb_svn.hex(),
        "mr_seam": body.mr_seam.hex(),
        "mr_signer_seam": body.mr_signer_seam.hex(),
        "seam_attributes": body.seam_attributes.hex(),
        "xfam": body.xfam.hex(),
    }
    if body.tee_tcb_svn2 is not None and body.mr_service_td is not None:
        fields["tee_tcb_svn2"] = body.tee_tcb_svn2.hex()
        fields["mr_service_td"] = body.mr_service_td.hex()
    return fields


def verify_dcap_quote(
    quote: bytes, collateral: DcapCollateral, *, root_ca_der: bytes, now: dt.datetime
) -> Claims:
    """Verify an SGX v3 / TDX v4-v5 quote at ``now``; return its claims or raise.

    Every failure is ``EvidenceError`` whose ``step`` names the failed check. No appraisal policy
    is applied: debug enclaves and TDs, a non-zero MRSERVICETD and a missing SEPT_VE_DISABLE are
    reported in the claims for the caller's policy, not refused here (ADR 0005).
    """
    now = _utc(now)
    try:
        root = x509.load_der_x509_certificate(root_ca_der)
    except ValueError:
        raise ConfigurationError("the pinned Intel SGX Root CA is not a DER certificate") from None

    # 1. Parse the quote (ECDSA Quote Library API, appendix "Quote Format"; TDX DCAP Quoting
    #    Library API, "Quote Format" v4/v5): strict lengths; the collateral is already typed.
    parsed = parse_quote(quote)

    # 2. Pinned root: the PCK chain in the quote and the three collateral issuer chains must end
    #    with exactly `root_ca_der`; a root shipped in evidence or collateral is never trusted.
    pck_chain = load_chain(parsed.auth.pck_chain_pem, root_der=root_ca_der, what="the PCK chain")
    crl_chain, tcb_chain, qe_chain = (
        load_chain(_pem(pem), root_der=root_ca_der, what=what)
        for pem, what in (
            (collateral.pck_crl_issuer_chain, "the PCK CRL issuer chain"),
            (collateral.tcb_info_issuer_chain, "the TCB info issuer chain"),
            (collateral.qe_identity_issuer_chain, "the QE identity issuer chain"),
        )
    )

    # 3. CRLs and PCK chain (SGX PCK Certificate and CRL Profile; RFC 5280 5, 6.3): root CA CRL
    #    signed by the root, PCK CRL by the PCK CA that issued the PCK certificate, both current
    #    (thisUpdate <= now < nextUpdate, else `time`); PCK <- PCK CA <- root signed, valid at
    #    `now`, not revoked (`chain`).
    root_crl = check_crl(collateral.root_ca_crl, root, now, "Intel SGX Root CA CRL")
    check_not_revoked(root, root_crl, "the pinned Intel SGX Root CA")
    anchor = _Anchor(root=root, root_crl=root_crl, now=now)
    pck = _pck_chain(collateral, crl_chain, pck_chain, anchor)

    # 4. TCB info and QE identity (PCS API v4, "TCB Info V3", "Enclave Identity V2"): issuer chain
    #    to the root, signature over the exact JSON bytes (`collateral-signature`), issueDate <=
    #    now < nextUpdate (`time`), id / FMSPC / PCEID for this quote (`collateral-mismatch`).
    tcb_info, qe_identity = _tcb_collateral(parsed, collateral, (tcb_chain, qe_chain), pck, anchor)

    # 5. QE report (Quote Format, "QE Report Certification Data"): PCK signature, REPORTDATA =
    #    SHA-256(attestation key || QE auth data) || 0^32 (`qe-report`); QE identity (`qe-identity`).
    qe_status = _qe_report(parsed, pck_chain.leaf, qe_identity)

    # 6. Quote signature (Quote Format, "Quote Signature Data") over header and body.
    _quote_signature(parsed)

    # 7. TCB level (QVL TcbLevelCheck / TdxModuleCheck): first tcbLevel met by the PCK TCB
    #    components and PCESVN (TDX: and TEE_TCB_SVN, then the TDX module identity), converged
    #    with the QE status; none met, or Revoked, is `tcb`.
    result = converge(match_platform_tcb(tcb_info, pck, parsed.body), qe_status)
    if result.status == "Revoked":
        raise EvidenceError("the platform or quoting enclave TCB is revoked", step="tcb")
    return _claims(parsed, result)
