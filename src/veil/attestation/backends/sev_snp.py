"""AMD SEV-SNP attestation report verification (pure: bytes and an explicit ``now``).

References: AMD *SEV Secure Nested Paging Firmware ABI Specification* (pub. 56860, rev 1.55,
§7.3 Table 22 "ATTESTATION_REPORT Structure", Chapter 10 "Signature formats": ECDSA P-384 R/S
little-endian, zero-extended to 72 bytes) and AMD *Versioned Chip Endorsement Key (VCEK)
Certificate and KDS Interface Specification* (pub. 57230: ARK → ASK/ASVK → VCEK/VLEK, RSA-PSS
SHA-384 signatures, TCB and hwID extensions under 1.3.6.1.4.1.3704.1).

Verification steps (each failure is an ``EvidenceError`` whose ``step`` is named below):

1. ``parse``     — length 0x4A0, VERSION 2..5, SIGNATURE_ALGO 1, a signing key (VCEK or VLEK).
2. ``chain``     — the pinned ARK is self-signed; the ASK/ASVK is signed by the ARK; the VCEK/VLEK
                   is signed by that ASK/ASVK; every certificate is valid at ``now``.
3. ``signature`` — ECDSA P-384/SHA-384 over report bytes [0x000, 0x2A0) with the VCEK/VLEK key.
4. ``tcb``       — the VCEK hwID equals CHIP_ID (VCEK and unmasked only) and the VCEK SPL
                   extensions equal REPORTED_TCB's components.
"""

from __future__ import annotations

import datetime as dt
import uuid
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.utils import CryptographyDeprecationWarning
from cryptography.x509.oid import NameOID, SignatureAlgorithmOID

from veil.attestation._model import Claims
from veil.attestation.backends._der import TAG_OCTET_STRING, DerError, read_single, read_uint
from veil.errors import ConfigurationError, EvidenceError

__all__ = [
    "REPORT_SIZE",
    "SIGNED_SIZE",
    "SnpReport",
    "load_der_certificate",
    "parse_snp_report",
    "snp_fields",
    "split_snp_evidence",
    "verify_snp_report",
]

REPORT_SIZE = 0x4A0
SIGNED_SIZE = 0x2A0
_SIG_COMPONENT = 72
_ECDSA_P384_SHA384 = 1
_MIN_VERSION, _MAX_VERSION = 2, 5
_SIGNING_KEY_VCEK, _SIGNING_KEY_VLEK = 0, 1
_POLICY_DEBUG = 1 << 19
_TURIN_FAMILY = 0x1A

_AMD = "1.3.6.1.4.1.3704.1"
_OID_HWID = x509.ObjectIdentifier(f"{_AMD}.4")
_OID_BL_SPL = x509.ObjectIdentifier(f"{_AMD}.3.1")
_OID_TEE_SPL = x509.ObjectIdentifier(f"{_AMD}.3.2")
_OID_SNP_SPL = x509.ObjectIdentifier(f"{_AMD}.3.3")
_OID_UCODE_SPL = x509.ObjectIdentifier(f"{_AMD}.3.8")
_OID_FMC_SPL = x509.ObjectIdentifier(f"{_AMD}.3.9")


def _fail(step: str, message: str) -> EvidenceError:
    return EvidenceError(f"SEV-SNP report refused at step '{step}': {message}", step=step)


@dataclass(frozen=True)
class SnpReport:
    """The fields of an ATTESTATION_REPORT (ABI spec Table 22) that verification and claims use."""

    raw: bytes
    version: int
    guest_svn: int
    policy: int
    family_id: bytes
    image_id: bytes
    vmpl: int
    signature_algo: int
    current_tcb: bytes
    platform_info: int
    author_key_en: bool
    mask_chip_id: bool
    signing_key: int
    report_data: bytes
    measurement: bytes
    host_data: bytes
    id_key_digest: bytes
    author_key_digest: bytes
    report_id: bytes
    report_id_ma: bytes
    reported_tcb: bytes
    cpuid_family: int
    chip_id: bytes
    committed_tcb: bytes
    launch_tcb: bytes
    signature_r: int
    signature_s: int

    @property
    def debug(self) -> bool:
        """POLICY bit 19: the guest owner allowed debugging (ABI spec Table 9)."""
        return bool(self.policy & _POLICY_DEBUG)

    @property
    def is_turin(self) -> bool:
        """Report v3+ with CPUID family 0x1A uses the Turin TCB_VERSION layout."""
        return self.version >= 3 and self.cpuid_family == _TURIN_FAMILY

    def tcb_components(self) -> dict[str, int]:
        """REPORTED_TCB split into SPLs (TCB_VERSION, ABI spec Table 3; Turin adds FMC)."""
        t = self.reported_tcb
        if self.is_turin:
            return {"fmc": t[0], "bl": t[1], "tee": t[2], "snp": t[3], "ucode": t[7]}
        return {"bl": t[0], "tee": t[1], "snp": t[6], "ucode": t[7]}


def _u32(raw: bytes, offset: int) -> int:
    return int.from_bytes(raw[offset : offset + 4], "little")


def _u64(raw: bytes, offset: int) -> int:
    return int.from_bytes(raw[offset : offset + 8], "little")


def parse_snp_report(report: bytes) -> SnpReport:
    """Step 1 (ABI spec §7.3 Table 22): split the report into typed fields or raise ``parse``."""
    if len(report) != REPORT_SIZE:
        raise _fail("parse", f"a report is exactly {REPORT_SIZE} bytes, got {len(report)}")
    raw = bytes(report)
    version = _u32(raw, 0x000)
    if not _MIN_VERSION <= version <= _MAX_VERSION:
        raise _fail("parse", f"report version {version} is not supported (2 to 5)")
    algo = _u32(raw, 0x034)
    if algo != _ECDSA_P384_SHA384:
        raise _fail("parse", f"signature algorithm {algo} is not ECDSA P-384 with SHA-384")
    key_info = _u32(raw, 0x048)
    signing_key = (key_info >> 2) & 0x7
    if signing_key not in (_SIGNING_KEY_VCEK, _SIGNING_KEY_VLEK):
        raise _fail("parse", f"report is not signed by a VCEK or VLEK (SIGNING_KEY={signing_key})")
    # The signature area is R ‖ S, each a 48-byte P-384 value zero-extended to 72 bytes, then
    # reserved zeros (ABI spec Ch. 10). None of it is signed, so anything else there is refused.
    if any(raw[0x2A0 + 48 : 0x2E8]) or any(raw[0x2E8 + 48 : 0x330]) or any(raw[0x330:]):
        raise _fail("parse", "the unsigned padding of the signature area is not zero")
    return SnpReport(
        raw=raw,
        version=version,
        guest_svn=_u32(raw, 0x004),
        policy=_u64(raw, 0x008),
        family_id=raw[0x010:0x020],
        image_id=raw[0x020:0x030],
        vmpl=_u32(raw, 0x030),
        signature_algo=algo,
        current_tcb=raw[0x038:0x040],
        platform_info=_u64(raw, 0x040),
        author_key_en=bool(key_info & 0x1),
        mask_chip_id=bool(key_info & 0x2),
        signing_key=signing_key,
        report_data=raw[0x050:0x090],
        measurement=raw[0x090:0x0C0],
        host_data=raw[0x0C0:0x0E0],
        id_key_digest=raw[0x0E0:0x110],
        author_key_digest=raw[0x110:0x140],
        report_id=raw[0x140:0x160],
        report_id_ma=raw[0x160:0x180],
        reported_tcb=raw[0x180:0x188],
        cpuid_family=raw[0x188],
        chip_id=raw[0x1A0:0x1E0],
        committed_tcb=raw[0x1E0:0x1E8],
        launch_tcb=raw[0x1F0:0x1F8],
        signature_r=int.from_bytes(raw[0x2A0 : 0x2A0 + _SIG_COMPONENT], "little"),
        signature_s=int.from_bytes(raw[0x2E8 : 0x2E8 + _SIG_COMPONENT], "little"),
    )


# GHCB spec (pub. 56421) §4.1.8.1, "SNP Extended Guest Request": certificate table GUIDs.
_CERT_GUIDS = {
    "63da758d-e664-4564-adc5-f4b93be8accd": "vcek",
    "a8074bc2-a25a-483e-aae6-39c045a0b8a1": "vlek",
    "4ab7b379-bbac-4fe4-a02f-05aef327c782": "ask",
    "c0b406a4-a803-4952-9743-3fb6014cd0ae": "ark",
}
_GUIDS_RAW = {
    raw: name
    for text, name in _CERT_GUIDS.items()
    for raw in (uuid.UUID(text).bytes, uuid.UUID(text).bytes_le)
}
_CERT_ENTRY = 24


def split_snp_evidence(raw: bytes) -> tuple[bytes, list[bytes]]:
    """Split configfs-tsm SNP evidence ``report ‖ auxblob`` into the report and its certificates.

    ``auxblob`` is the GHCB certificate table: entries of GUID (16 bytes), offset (u32) and
    length (u32) relative to the table, ended by an all-zero entry. Certificates with unknown
    GUIDs are skipped; the ARK, if present, is returned too but is never trusted by
    :func:`verify_snp_report` (only the pinned ARK is). Raises ``EvidenceError`` (``parse``).
    """
    report, table = raw[:REPORT_SIZE], raw[REPORT_SIZE:]
    certs: list[bytes] = []
    offset = 0
    while table:
        entry = table[offset : offset + _CERT_ENTRY]
        if len(entry) < _CERT_ENTRY:
            raise _fail("parse", "the certificate table is not terminated by a zero entry")
        if not any(entry):
            break
        start = int.from_bytes(entry[16:20], "little")
        length = int.from_bytes(entry[20:24], "little")
        if start + length > len(table) or start < offset + _CERT_ENTRY:
            raise _fail("parse", "a certificate table entry points outside the table")
        if entry[:16] in _GUIDS_RAW:
            certs.append(table[start : start + length])
        offset += _CERT_ENTRY
    return report, certs


def load_der_certificate(der: bytes) -> x509.Certificate:
    """Load one DER certificate; ``ValueError`` if it is not one.

    AMD KDS issues VCEKs whose serial number DER-encodes as negative; ``cryptography`` warns about
    that (and will refuse it some day). The warning is silenced here only, for exactly that
    category, because every real VCEK triggers it (ADR 0006).
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CryptographyDeprecationWarning)
        cert = x509.load_der_x509_certificate(der)
        _ = cert.serial_number
    return cert


def _common_name(cert: x509.Certificate) -> str:
    names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    value = names[0].value if names else ""
    return value if isinstance(value, str) else value.decode("utf-8", "replace")


def _rsa_pss_signed_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    """VCEK spec §2.2: AMD certificates are RSASSA-PSS, SHA-384, MGF1-SHA-384, 48-byte salt."""
    key = issuer.public_key()
    if not isinstance(key, rsa.RSAPublicKey):
        return False
    if cert.signature_algorithm_oid != SignatureAlgorithmOID.RSASSA_PSS:
        return False
    if cert.issuer != issuer.subject:
        return False
    try:
        key.verify(
            cert.signature,
            cert.tbs_certificate_bytes,
            padding.PSS(mgf=padding.MGF1(hashes.SHA384()), salt_length=48),
            hashes.SHA384(),
        )
    except InvalidSignature:
        return False
    return True


def _valid_at(cert: x509.Certificate, now: dt.datetime) -> bool:
    return cert.not_valid_before_utc <= now <= cert.not_valid_after_utc


def _load_all(ders: Sequence[bytes], what: str, error: type[Exception]) -> list[x509.Certificate]:
    out: list[x509.Certificate] = []
    for index, der in enumerate(ders):
        try:
            out.append(load_der_certificate(der))
        except ValueError:
            message = f"{what} #{index} is not a DER X.509 certificate"
            if error is ConfigurationError:
                raise ConfigurationError(f"{message}; pin the AMD ARK as DER") from None
            raise _fail("chain", message) from None
    return out


def _verify_chain(
    certs: Sequence[bytes], trust_anchors: Sequence[bytes], signing_key: int, now: dt.datetime
) -> x509.Certificate:
    """Step 2 (VCEK spec §2): ARK (pinned, self-signed) → ASK/ASVK → VCEK/VLEK at ``now``."""
    anchors = _load_all(trust_anchors, "trust anchor", ConfigurationError)
    # 2a. Only self-signed ARKs among the pinned certificates are trusted as roots.
    arks = [c for c in anchors if c.subject == c.issuer and _rsa_pss_signed_by(c, c)]
    if not arks:
        raise ConfigurationError(
            "no self-signed AMD ARK among the trust anchors; pin the ARK certificate (DER)"
        )
    given = _load_all(certs, "certificate", EvidenceError)
    # 2b. The endorsement key is the one EC P-384 certificate given with the evidence.
    leaves = [c for c in given if isinstance(c.public_key(), ec.EllipticCurvePublicKey)]
    if len(leaves) != 1:
        raise _fail("chain", f"expected exactly one VCEK/VLEK certificate, got {len(leaves)}")
    leaf = leaves[0]
    leaf_key = leaf.public_key()
    if not isinstance(leaf_key, ec.EllipticCurvePublicKey) or leaf_key.curve.name != "secp384r1":
        raise _fail("chain", "the VCEK/VLEK key is not an ECDSA P-384 key")
    expected_cn = "SEV-VLEK" if signing_key == _SIGNING_KEY_VLEK else "SEV-VCEK"
    if _common_name(leaf) != expected_cn:
        raise _fail(
            "chain", f"the report is signed by a {expected_cn} but the certificate is not one"
        )
    # 2c. An intermediate (ASK/ASVK, from the pinned bundle or the evidence) counts only when an
    #     ARK signs it; the leaf must be signed by such an intermediate.
    intermediates = [c for c in anchors + given if c not in arks and c is not leaf]
    for ark in arks:
        for ask in intermediates:
            if not (_rsa_pss_signed_by(ask, ark) and _rsa_pss_signed_by(leaf, ask)):
                continue
            # 2d. Every certificate on the path is valid at ``now``.
            for cert in (ark, ask, leaf):
                if not _valid_at(cert, now):
                    raise _fail(
                        "chain", f"certificate {_common_name(cert)!r} is not valid at {now}"
                    )
            return leaf
    raise _fail(
        "chain",
        f"certificate {_common_name(leaf)!r} does not chain to the pinned ARK through an ASK/ASVK",
    )


def _verify_signature(report: SnpReport, leaf: x509.Certificate) -> None:
    """Step 3 (ABI spec Ch. 10): ECDSA P-384/SHA-384 over [0, 0x2A0), R/S little-endian."""
    key = leaf.public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey):  # pragma: no cover - checked in step 2
        raise _fail("signature", "the VCEK/VLEK key is not an EC key")
    try:
        key.verify(
            encode_dss_signature(report.signature_r, report.signature_s),
            report.raw[:SIGNED_SIZE],
            ec.ECDSA(hashes.SHA384()),
        )
    except InvalidSignature:
        raise _fail(
            "signature", "the report signature does not verify with the VCEK/VLEK"
        ) from None


def _extension(cert: x509.Certificate, oid: x509.ObjectIdentifier) -> bytes | None:
    try:
        value = cert.extensions.get_extension_for_oid(oid).value
    except x509.ExtensionNotFound:
        return None
    return value.value if isinstance(value, x509.UnrecognizedExtension) else None


def _hwid(cert: x509.Certificate) -> bytes:
    """The hwID extension: an OCTET STRING (current KDS) or the raw 64 bytes (older VCEKs)."""
    raw = _extension(cert, _OID_HWID)
    if raw is None:
        raise _fail("tcb", "the VCEK has no hwID extension")
    if len(raw) == 64:
        return raw
    try:
        return read_single(raw, TAG_OCTET_STRING)
    except DerError:
        raise _fail("tcb", "the VCEK hwID extension is malformed") from None


def _verify_tcb(report: SnpReport, leaf: x509.Certificate) -> None:
    """Step 4 (VCEK spec Table 8): hwID == CHIP_ID and SPL extensions == REPORTED_TCB."""
    vcek_unmasked = report.signing_key == _SIGNING_KEY_VCEK and not report.mask_chip_id
    if vcek_unmasked and _hwid(leaf) != report.chip_id:
        raise _fail("tcb", "the VCEK hwID does not equal the report's CHIP_ID")
    oids = {"bl": _OID_BL_SPL, "tee": _OID_TEE_SPL, "snp": _OID_SNP_SPL, "ucode": _OID_UCODE_SPL}
    if report.is_turin:
        oids["fmc"] = _OID_FMC_SPL
    for name, value in report.tcb_components().items():
        raw = _extension(leaf, oids[name])
        if raw is None:
            raise _fail("tcb", f"the certificate has no {name} SPL extension")
        try:
            spl = read_uint(raw)
        except DerError:
            raise _fail("tcb", f"the certificate's {name} SPL extension is malformed") from None
        if spl != value:
            raise _fail("tcb", f"REPORTED_TCB {name} SPL is {value} but the certificate says {spl}")


def snp_fields(report: SnpReport) -> Mapping[str, object]:
    """TEE-specific claims, named as in the test-vector index (bytes as lowercase hex)."""
    tcb = report.tcb_components()
    return {
        "report_version": report.version,
        "guest_svn": report.guest_svn,
        "policy": report.policy,
        "policy_hex": hex(report.policy),
        "debug": report.debug,
        "family_id": report.family_id.hex(),
        "image_id": report.image_id.hex(),
        "vmpl": report.vmpl,
        "signature_algo": report.signature_algo,
        "signing_key": report.signing_key,
        "mask_chip_id": report.mask_chip_id,
        "author_key_en": report.author_key_en,
        "measurement": report.measurement.hex(),
        "report_data": report.report_data.hex(),
        "host_data": report.host_data.hex(),
        "id_key_digest": report.id_key_digest.hex(),
        "author_key_digest": report.author_key_digest.hex(),
        "report_id": report.report_id.hex(),
        "report_id_ma": report.report_id_ma.hex(),
        "chip_id": report.chip_id.hex(),
        "reported_tcb": report.reported_tcb.hex(),
        "reported_tcb_decoded": {
            k: tcb[k] for k in ("fmc", "bl", "tee", "snp", "ucode") if k in tcb
        },
        "current_tcb": report.current_tcb.hex(),
        "committed_tcb": report.committed_tcb.hex(),
        "launch_tcb": report.launch_tcb.hex(),
        "platform_info": report.platform_info,
    }


def verify_snp_report(
    report: bytes,
    *,
    certs: Sequence[bytes],
    trust_anchors: Sequence[bytes],
    now: dt.datetime,
) -> Claims:
    """Verify an SEV-SNP ATTESTATION_REPORT and return its claims, or raise.

    ``certs`` are the DER certificates that came with the evidence (the VCEK or VLEK, optionally
    the ASK/ASVK); ``trust_anchors`` are pinned DER certificates (the ARK, possibly with the ASK
    and ASVK — those are trusted only because the ARK signs them). ``now`` must be aware.
    Raises ``EvidenceError`` (``step`` = parse, chain, signature or tcb) for bad evidence and
    ``ConfigurationError`` when the trust anchors hold no self-signed ARK.
    """
    if now.tzinfo is None:
        raise ConfigurationError("now must be a timezone-aware datetime")
    parsed = parse_snp_report(report)  # 1. parse
    leaf = _verify_chain(certs, trust_anchors, parsed.signing_key, now)  # 2. chain
    _verify_signature(parsed, leaf)  # 3. signature
    _verify_tcb(parsed, leaf)  # 4. tcb
    return Claims(
        tee="sev-snp",
        unique_id=parsed.measurement,
        signer_id=parsed.author_key_digest if parsed.author_key_en else b"",
        product_id=0,
        security_version=0,
        debug=parsed.debug,
        report_data=parsed.report_data,
        tcb_status="UpToDate",
        advisories=(),
        fields=snp_fields(parsed),
    )
