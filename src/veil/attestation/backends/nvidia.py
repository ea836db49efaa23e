"""NVIDIA Hopper GPU evidence verification: SPDM 1.1 GET_MEASUREMENTS (pure: bytes and ``now``).

References: DMTF DSP0274 *SPDM* 1.1 §10.11 (GET_MEASUREMENTS request, MEASUREMENTS response,
measurement block and DMTF measurement field formats; L1/L2 transcript signing) and NVIDIA's
opaque-data TLVs as emitted by the Hopper GSP (type u16, length u16, value), read the way the
NVIDIA local verifier (nvtrust) reads them.

The evidence is ``request ‖ response``; the response's signature covers everything before it.

Verification steps (each failure is an ``EvidenceError`` whose ``step`` is named below):

1. ``parse``       — SPDM 1.1 request (0xE0, signature requested) and response (0x60) structures,
                     measurement blocks and opaque TLVs; the signed length comes from the structure
                     (bytes after the 96-byte signature are ignored, they are not signed).
2. ``chain``       — leaf → … → the pinned, self-signed NVIDIA Device Identity CA, ECDSA P-384,
                     each certificate valid at ``now``; the leaf carries a DICE FWID (2.23.133.5.4.1)
                     that equals the FWID in the opaque data when that is present.
3. ``signature``   — ECDSA P-384/SHA-384 over ``request ‖ response-without-signature`` with the leaf.
4. ``report-data`` — the request nonce equals ``nonce`` when the caller passes one.
"""

from __future__ import annotations

import datetime as dt
import hmac
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from veil.attestation._model import REPORT_DATA_SIZE, Claims
from veil.attestation.backends._der import (
    TAG_OCTET_STRING,
    TAG_OID,
    TAG_SEQUENCE,
    DerError,
    children,
    read_tlv,
)
from veil.errors import ConfigurationError, EvidenceError

__all__ = ["SpdmMeasurements", "parse_spdm_measurements", "verify_nvidia_evidence"]

_SPDM_11 = 0x11
_GET_MEASUREMENTS = 0xE0
_MEASUREMENTS = 0x60
_NONCE_SIZE = 32
_REQUEST_SIZE = 4 + _NONCE_SIZE + 1
_SIGNATURE_SIZE = 96
_MAX_EVIDENCE = 64 * 1024
_OID_DICE_TCB_INFO = x509.ObjectIdentifier("2.23.133.5.4.1")
_OID_SHA384_DER = bytes.fromhex("608648016503040202")

# NVIDIA opaque-data TLV types (nvtrust ``OpaqueDataParser``).
_OPAQUE_NAMES = {
    3: "driver_version",
    4: "gpu_info",
    6: "vbios_version",
    11: "nvdec0_status",
    13: "cpr_info",
    14: "board_id",
    15: "chip_sku",
    16: "chip_sku_mod",
    17: "project",
    18: "project_sku",
    19: "project_sku_mod",
    20: "fwid",
    21: "protected_pcie_status",
}
_OPAQUE_TEXT = {"driver_version", "chip_sku", "chip_sku_mod", "project", "project_sku"}
_OPAQUE_FLAG = {"nvdec0_status", "protected_pcie_status"}


def _fail(step: str, message: str) -> EvidenceError:
    return EvidenceError(f"NVIDIA evidence refused at step '{step}': {message}", step=step)


@dataclass(frozen=True)
class SpdmMeasurements:
    """A parsed GET_MEASUREMENTS exchange: what is signed, the signature and the payload."""

    signed: bytes
    signature: bytes
    nonce: bytes
    responder_nonce: bytes
    measurements: Mapping[int, bytes]
    opaque: Mapping[int, bytes]


def _le(data: bytes) -> int:
    return int.from_bytes(data, "little")


def _take(data: bytes, offset: int, size: int) -> tuple[bytes, int]:
    if size < 0 or offset + size > len(data):
        raise _fail("parse", "the SPDM message is truncated")
    return data[offset : offset + size], offset + size


def _blocks(record: bytes, count: int) -> dict[int, bytes]:
    """DSP0274 Table 45/46: Index u8, Spec u8, Size u16, then a DMTF field (type u8, size u16)."""
    out: dict[int, bytes] = {}
    offset = 0
    while offset < len(record):
        header, offset = _take(record, offset, 4)
        body, offset = _take(record, offset, _le(header[2:4]))
        if header[1] != 0x01 or len(body) < 3 or _le(body[1:3]) != len(body) - 3:
            raise _fail("parse", f"measurement block {header[0]} is not a DMTF measurement")
        if header[0] in out:
            raise _fail("parse", f"measurement block {header[0]} appears twice")
        out[header[0]] = body[3:]
    if len(out) != count:
        raise _fail("parse", f"the response announces {count} blocks but holds {len(out)}")
    return out


def _tlvs(opaque: bytes) -> dict[int, bytes]:
    out: dict[int, bytes] = {}
    offset = 0
    while offset < len(opaque):
        header, offset = _take(opaque, offset, 4)
        value, offset = _take(opaque, offset, _le(header[2:4]))
        out.setdefault(_le(header[0:2]), value)
    return out


def parse_spdm_measurements(evidence: bytes) -> SpdmMeasurements:
    """Step 1 (DSP0274 1.1 §10.11): split ``request ‖ response`` or raise ``parse``."""
    if len(evidence) > _MAX_EVIDENCE:
        raise _fail("parse", f"evidence is larger than {_MAX_EVIDENCE} bytes")
    data = bytes(evidence)
    request, offset = _take(data, 0, _REQUEST_SIZE)
    if request[0] != _SPDM_11 or request[1] != _GET_MEASUREMENTS or not request[2] & 0x01:
        raise _fail("parse", "the request is not an SPDM 1.1 GET_MEASUREMENTS with a signature")
    header, offset = _take(data, offset, 8)
    if header[0] != _SPDM_11 or header[1] != _MEASUREMENTS:
        raise _fail("parse", "the response is not an SPDM 1.1 MEASUREMENTS message")
    record, offset = _take(data, offset, _le(header[5:8]))
    responder_nonce, offset = _take(data, offset, _NONCE_SIZE)
    opaque_len, offset = _take(data, offset, 2)
    opaque, offset = _take(data, offset, _le(opaque_len))
    signature, end = _take(data, offset, _SIGNATURE_SIZE)
    del end  # bytes after the signature are not signed and not read (one real blob has one)
    return SpdmMeasurements(
        signed=data[:offset],
        signature=signature,
        nonce=request[4 : 4 + _NONCE_SIZE],
        responder_nonce=responder_nonce,
        measurements=_blocks(record, header[4]),
        opaque=_tlvs(opaque),
    )


def _load(der: bytes, what: str) -> x509.Certificate:
    try:
        return x509.load_der_x509_certificate(der)
    except ValueError:
        raise _fail("chain", f"{what} is not a DER X.509 certificate") from None


def _signed_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    key = issuer.public_key()
    if cert.issuer != issuer.subject or not isinstance(key, ec.EllipticCurvePublicKey):
        return False
    if not isinstance(cert.signature_hash_algorithm, hashes.SHA384):
        return False
    try:
        key.verify(cert.signature, cert.tbs_certificate_bytes, ec.ECDSA(hashes.SHA384()))
    except InvalidSignature:
        return False
    return True


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return True  # GH100 BROM/FMC device certificates omit BasicConstraints


def _fwid(cert: x509.Certificate) -> bytes | None:
    """The SHA-384 FWID in the leaf's DICE TcbInfo (TCG DICE Attestation Architecture §6.1.1)."""
    try:
        value = cert.extensions.get_extension_for_oid(_OID_DICE_TCB_INFO).value
    except x509.ExtensionNotFound:
        return None
    if not isinstance(value, x509.UnrecognizedExtension):
        return None
    try:
        pending = [read_tlv(value.value)]
        while pending:
            tlv = pending.pop(0)
            if not tlv.tag & 0x20:  # primitive
                continue
            parts = children(tlv.value)
            if (
                tlv.tag == TAG_SEQUENCE
                and len(parts) == 2
                and parts[0].tag == TAG_OID
                and parts[0].value == _OID_SHA384_DER
                and parts[1].tag == TAG_OCTET_STRING
            ):
                return parts[1].value
            pending.extend(parts)
    except DerError:
        return None
    return None


def _verify_chain(
    chain: Sequence[bytes], trust_anchor: bytes, now: dt.datetime
) -> tuple[x509.Certificate, bytes]:
    """Step 2: leaf → intermediates → pinned root, ECDSA P-384/SHA-384, valid at ``now``."""
    try:
        root = x509.load_der_x509_certificate(trust_anchor)
    except ValueError:
        raise ConfigurationError("the NVIDIA trust anchor is not a DER certificate") from None
    if root.subject != root.issuer or not _signed_by(root, root):
        raise ConfigurationError("the NVIDIA trust anchor is not a self-signed root certificate")
    certs = [_load(der, f"chain certificate #{i}") for i, der in enumerate(chain)]
    if certs and certs[-1] == root:
        certs = certs[:-1]  # the chain may end with the root; only the pinned copy is trusted
    if not certs:
        raise _fail("chain", "the chain holds no device certificate, only (at most) the root")
    path = [*certs, root]
    for index, cert in enumerate(certs):
        if not _signed_by(cert, path[index + 1]):
            raise _fail(
                "chain", f"certificate #{index} is not signed by the next one towards the root"
            )
        if index > 0 and not _is_ca(cert):
            raise _fail("chain", f"certificate #{index} is not a CA but issues #{index - 1}")
    for cert in path:
        if not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc:
            raise _fail("chain", f"a chain certificate is not valid at {now}")
    leaf = certs[0]
    leaf_key = leaf.public_key()
    if not isinstance(leaf_key, ec.EllipticCurvePublicKey) or leaf_key.curve.name != "secp384r1":
        raise _fail("chain", "the leaf key is not an ECDSA P-384 key")
    fwid = _fwid(leaf)
    if fwid is None:
        raise _fail("chain", "the leaf is not an attestation key: it carries no DICE FWID")
    return leaf, fwid


def _vbios(raw: bytes) -> str:
    if len(raw) < 5:
        raise _fail("parse", "the VBIOS version field is too short")
    return ".".join(f"{raw[i]:02x}" for i in (3, 2, 1, 0, 4))


def _opaque_fields(opaque: Mapping[int, bytes]) -> dict[str, object]:
    out: dict[str, object] = {}
    for kind, name in _OPAQUE_NAMES.items():
        raw = opaque.get(kind)
        if raw is None:
            continue
        if name == "vbios_version":
            out[name] = _vbios(raw)
        elif name in _OPAQUE_TEXT:
            out[name] = raw.split(b"\x00", 1)[0].decode("ascii", "replace")
        elif name in _OPAQUE_FLAG:
            out[name] = raw.decode("ascii", "replace")
        else:
            out[name] = raw.hex()
    return out


def verify_nvidia_evidence(
    evidence: bytes,
    *,
    chain: Sequence[bytes],
    trust_anchor: bytes,
    now: dt.datetime,
    nonce: bytes | None = None,
) -> Claims:
    """Verify NVIDIA GPU SPDM evidence and return its claims, or raise.

    ``chain`` is the device certificate chain as DER, leaf first (it may end with the root);
    ``trust_anchor`` is the DER of the pinned NVIDIA Device Identity CA. When ``nonce`` is given
    the request nonce must equal it. ``report_data`` in the claims is the 32-byte nonce padded
    with zeros to 64 bytes, so a SHA-256 binding (ADR 0001) compares like other TEEs'.
    """
    if now.tzinfo is None:
        raise ConfigurationError("now must be a timezone-aware datetime")
    parsed = parse_spdm_measurements(evidence)  # 1. parse
    leaf, fwid = _verify_chain(chain, trust_anchor, now)  # 2. chain
    opaque = _opaque_fields(parsed.opaque)
    if "fwid" in opaque and opaque["fwid"] != fwid.hex():
        raise _fail("chain", "the FWID in the evidence differs from the leaf certificate's")
    key = leaf.public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey):  # pragma: no cover - checked in step 2
        raise _fail("chain", "the leaf key is not an EC key")
    r = int.from_bytes(parsed.signature[:48], "big")
    s = int.from_bytes(parsed.signature[48:], "big")
    try:  # 3. signature
        key.verify(encode_dss_signature(r, s), parsed.signed, ec.ECDSA(hashes.SHA384()))
    except InvalidSignature:
        raise _fail("signature", "the SPDM signature does not verify with the leaf key") from None
    if nonce is not None and not hmac.compare_digest(parsed.nonce, nonce):  # 4. report-data
        raise _fail("report-data", "the SPDM request nonce is not the expected one (replay?)")
    fields: dict[str, object] = {
        "nonce": parsed.nonce.hex(),
        "responder_nonce": parsed.responder_nonce.hex(),
        "fwid": fwid.hex(),
        "measurement_blocks": len(parsed.measurements),
        "measurements": {str(i): m.hex() for i, m in sorted(parsed.measurements.items())},
    }
    fields.update({k: v for k, v in opaque.items() if k != "fwid"})
    return Claims(
        tee="nvidia",
        unique_id=fwid,
        signer_id=b"",
        product_id=0,
        security_version=0,
        debug=False,
        report_data=parsed.nonce.ljust(REPORT_DATA_SIZE, b"\x00"),
        tcb_status="UpToDate",
        advisories=(),
        fields=fields,
    )
