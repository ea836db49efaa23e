"""Strict parsing of Intel DCAP quotes: SGX v3, TDX v4 and TDX v5 (TD 1.0 and TD 1.5 bodies).

Layouts follow Intel, *SGX DCAP ECDSA Quote Library API*, appendix "Quote Format" (v3 header,
ISV enclave report body, quote signature data, QE certification data) and Intel, *TDX DCAP Quoting
Library API*, appendix "Quote Format" (v4 header, TD quote body, v5 body descriptor, TD report 1.5).
All integers are little-endian. Bytes after the quote (``signed length + 4 + signature data
length``) are not part of it: no signature covers them and they are ignored.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Literal

from veil.errors import EvidenceError

__all__ = [
    "INTEL_QE_VENDOR_ID",
    "AuthData",
    "Quote",
    "QuoteHeader",
    "SgxReportBody",
    "TdReportBody",
    "parse_quote",
]

INTEL_QE_VENDOR_ID = bytes.fromhex("939a7233f79c4ca9940a0db3957f0607")
HEADER_SIZE = 48
SGX_REPORT_SIZE = 384
TD10_REPORT_SIZE = 584
TD15_REPORT_SIZE = 648
ECDSA_P256 = 2
TEE_SGX = 0x00000000
TEE_TDX = 0x00000081
CERT_PCK_CHAIN = 5
CERT_QE_REPORT = 6
_V5_BODY_SIZES = {2: TD10_REPORT_SIZE, 3: TD15_REPORT_SIZE}


def _fail(message: str) -> EvidenceError:
    return EvidenceError(f"DCAP quote is malformed: {message}", step="parse")


@dataclass(frozen=True)
class QuoteHeader:
    """The 48-byte quote header (Quote Format, "Quote Header")."""

    version: int
    attestation_key_type: int
    tee_type: int
    qe_svn: int
    pce_svn: int
    qe_vendor_id: bytes
    user_data: bytes


@dataclass(frozen=True)
class SgxReportBody:
    """An SGX REPORTBODY (SDM Vol. 3D, "REPORT"): the ISV enclave report and the QE report."""

    raw: bytes
    cpu_svn: bytes
    misc_select: int
    isv_ext_prod_id: bytes
    attributes: bytes
    mr_enclave: bytes
    mr_signer: bytes
    config_id: bytes
    isv_prod_id: int
    isv_svn: int
    config_svn: int
    isv_family_id: bytes
    report_data: bytes

    @property
    def debug(self) -> bool:
        """ATTRIBUTES.FLAGS bit 1 (DEBUG)."""
        return bool(self.attributes[0] & 0x02)

    @property
    def mode64(self) -> bool:
        """ATTRIBUTES.FLAGS bit 2 (MODE64BIT)."""
        return bool(self.attributes[0] & 0x04)


@dataclass(frozen=True)
class TdReportBody:
    """A TD quote body (TD report 1.0; 1.5 adds TEE_TCB_SVN2 and MRSERVICETD)."""

    raw: bytes
    tee_tcb_svn: bytes
    mr_seam: bytes
    mr_signer_seam: bytes
    seam_attributes: bytes
    td_attributes: bytes
    xfam: bytes
    mr_td: bytes
    mr_config_id: bytes
    mr_owner: bytes
    mr_owner_config: bytes
    rtmrs: tuple[bytes, bytes, bytes, bytes]
    report_data: bytes
    tee_tcb_svn2: bytes | None
    mr_service_td: bytes | None

    @property
    def debug(self) -> bool:
        """TD_ATTRIBUTES bit 0 (DEBUG)."""
        return bool(self.td_attributes[0] & 0x01)

    @property
    def sept_ve_disable(self) -> bool:
        """TD_ATTRIBUTES bit 28 (SEPT_VE_DISABLE)."""
        return bool(self.td_attributes[3] & 0x10)


@dataclass(frozen=True)
class AuthData:
    """The ECDSA signature data with the QE report certification data, flattened."""

    signature: bytes
    attestation_key: bytes
    qe_report: SgxReportBody
    qe_report_signature: bytes
    qe_auth_data: bytes
    pck_chain_pem: bytes


@dataclass(frozen=True)
class Quote:
    """A parsed DCAP quote. ``signed`` is the header and body, the bytes the quote signature covers."""

    header: QuoteHeader
    tee: Literal["sgx", "tdx"]
    body: SgxReportBody | TdReportBody
    signed: bytes
    auth: AuthData
    size: int


class _Reader:
    """Reads a bounded region of bytes front to back; every overrun is a parse error."""

    def __init__(self, data: bytes, what: str) -> None:
        self._data = data
        self._offset = 0
        self._what = what

    def take(self, size: int, field: str) -> bytes:
        end = self._offset + size
        if end > len(self._data):
            raise _fail(f"{self._what} ends inside {field}")
        chunk = self._data[self._offset : end]
        self._offset = end
        return chunk

    def u16(self, field: str) -> int:
        return int.from_bytes(self.take(2, field), "little")

    def u32(self, field: str) -> int:
        return int.from_bytes(self.take(4, field), "little")

    def finish(self) -> None:
        if self._offset != len(self._data):
            raise _fail(f"{self._what} has {len(self._data) - self._offset} unexpected bytes")


def _sgx_body(raw: bytes) -> SgxReportBody:
    misc_select, isv_prod_id, isv_svn, config_svn = (
        struct.unpack_from("<I", raw, 16)[0],
        *struct.unpack_from("<HHH", raw, 256),
    )
    return SgxReportBody(
        raw=raw,
        cpu_svn=raw[0:16],
        misc_select=misc_select,
        isv_ext_prod_id=raw[32:48],
        attributes=raw[48:64],
        mr_enclave=raw[64:96],
        mr_signer=raw[128:160],
        config_id=raw[192:256],
        isv_prod_id=isv_prod_id,
        isv_svn=isv_svn,
        config_svn=config_svn,
        isv_family_id=raw[304:320],
        report_data=raw[320:384],
    )


def _td_body(raw: bytes) -> TdReportBody:
    td15 = len(raw) == TD15_REPORT_SIZE
    return TdReportBody(
        raw=raw,
        tee_tcb_svn=raw[0:16],
        mr_seam=raw[16:64],
        mr_signer_seam=raw[64:112],
        seam_attributes=raw[112:120],
        td_attributes=raw[120:128],
        xfam=raw[128:136],
        mr_td=raw[136:184],
        mr_config_id=raw[184:232],
        mr_owner=raw[232:280],
        mr_owner_config=raw[280:328],
        rtmrs=(raw[328:376], raw[376:424], raw[424:472], raw[472:520]),
        report_data=raw[520:584],
        tee_tcb_svn2=raw[584:600] if td15 else None,
        mr_service_td=raw[600:648] if td15 else None,
    )


def _header(data: bytes) -> QuoteHeader:
    version, key_type, tee_type, qe_svn, pce_svn = struct.unpack_from("<HHIHH", data, 0)
    return QuoteHeader(
        version=version,
        attestation_key_type=key_type,
        tee_type=tee_type,
        qe_svn=qe_svn,
        pce_svn=pce_svn,
        qe_vendor_id=data[12:28],
        user_data=data[28:48],
    )


def _qe_certification(reader: _Reader) -> tuple[SgxReportBody, bytes, bytes, bytes]:
    """QE report, its signature, QE auth data and the PEM PCK chain (certification type 5)."""
    qe_report = _sgx_body(reader.take(SGX_REPORT_SIZE, "the QE report"))
    qe_report_signature = reader.take(64, "the QE report signature")
    qe_auth_data = reader.take(reader.u16("the QE auth data size"), "the QE auth data")
    cert_type = reader.u16("the certification data type")
    if cert_type != CERT_PCK_CHAIN:
        raise _fail(f"certification data type {cert_type} is not supported (need 5: PCK chain)")
    pck_chain_pem = reader.take(reader.u32("the certification data size"), "the PCK chain")
    reader.finish()
    return qe_report, qe_report_signature, qe_auth_data, pck_chain_pem


def parse_quote(data: bytes) -> Quote:
    """Parse an SGX v3, TDX v4 or TDX v5 ECDSA-P256 quote, or raise ``EvidenceError(step="parse")``.

    Every length inside the quote must add up exactly; bytes after the quote are ignored.
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        raise _fail("a quote must be bytes")
    data = bytes(data)
    if len(data) < HEADER_SIZE:
        raise _fail(f"{len(data)} bytes is shorter than the {HEADER_SIZE}-byte header")
    header = _header(data)
    if header.attestation_key_type != ECDSA_P256:
        raise _fail(f"attestation key type {header.attestation_key_type} is not ECDSA-256 (2)")
    if header.qe_vendor_id != INTEL_QE_VENDOR_ID:
        raise _fail("the QE vendor ID is not Intel's quoting enclave")
    reader = _Reader(data, "the quote")
    reader.take(HEADER_SIZE, "the header")
    tee: Literal["sgx", "tdx"]
    body: SgxReportBody | TdReportBody
    if header.version == 3:
        if header.tee_type != TEE_SGX:
            raise _fail("a version 3 quote must have the (reserved) TEE type 0")
        tee, body = "sgx", _sgx_body(reader.take(SGX_REPORT_SIZE, "the enclave report"))
    elif header.version == 4:
        if header.tee_type != TEE_TDX:
            raise _fail(f"a version 4 quote with TEE type {header.tee_type:#x} is not supported")
        tee, body = "tdx", _td_body(reader.take(TD10_REPORT_SIZE, "the TD report"))
    elif header.version == 5:
        if header.tee_type != TEE_TDX:
            raise _fail(f"a version 5 quote with TEE type {header.tee_type:#x} is not supported")
        body_type = reader.u16("the body type")
        body_size = reader.u32("the body size")
        if _V5_BODY_SIZES.get(body_type) != body_size:
            raise _fail(f"body type {body_type} of {body_size} bytes is not a TD 1.0/1.5 report")
        tee, body = "tdx", _td_body(reader.take(body_size, "the TD report"))
    else:
        raise _fail(f"quote version {header.version} is not supported (3, 4 or 5)")
    signed_size = HEADER_SIZE + len(body.raw) + (6 if header.version == 5 else 0)
    signature_data = reader.take(reader.u32("the signature data size"), "the signature data")
    sig = _Reader(signature_data, "the signature data")
    signature = sig.take(64, "the quote signature")
    attestation_key = sig.take(64, "the attestation key")
    if header.version == 3:
        qe_report, qe_report_signature, qe_auth_data, pck_chain_pem = _qe_certification(sig)
    else:
        cert_type = sig.u16("the certification data type")
        if cert_type != CERT_QE_REPORT:
            raise _fail(f"certification data type {cert_type} is not 6 (QE report)")
        nested = sig.take(sig.u32("the certification data size"), "the QE report data")
        sig.finish()
        qe_report, qe_report_signature, qe_auth_data, pck_chain_pem = _qe_certification(
            _Reader(nested, "the QE report certification data")
        )
    return Quote(
        header=header,
        tee=tee,
        body=body,
        signed=data[:signed_size],
        auth=AuthData(
            signature=signature,
            attestation_key=attestation_key,
            qe_report=qe_report,
            qe_report_signature=qe_report_signature,
            qe_auth_data=qe_auth_data,
            pck_chain_pem=pck_chain_pem,
        ),
        size=signed_size + 4 + len(signature_data),
    )
