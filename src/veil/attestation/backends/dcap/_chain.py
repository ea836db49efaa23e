"""X.509 for DCAP: strict PEM chains, the pinned Intel SGX Root CA, signatures, validity and CRLs.

Intel, *SGX PCK Certificate and CRL Profile Specification*: Intel SGX Root CA signs the PCK
Platform/Processor CA, the TCB Signing certificate and its own CRL; the PCK CA signs PCK leaf
certificates and the PCK CRL. Validity and revocation follow RFC 5280 sections 4.1.2.5 and 6.3.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import re
import warnings
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, utils

from veil.attestation.backends.dcap._der import signature_bits_unpadded
from veil.errors import EvidenceError

__all__ = [
    "Chain",
    "check_crl",
    "check_issued_by",
    "check_not_revoked",
    "check_valid_at",
    "load_chain",
    "p256_key",
    "verify_p256",
]

_BEGIN = b"-----BEGIN CERTIFICATE-----\n"
_END = b"-----END CERTIFICATE-----\n"
_BLOCK = re.compile(re.escape(_BEGIN) + rb"([A-Za-z0-9+/=\n]*?)" + re.escape(_END))
_MAX_CERTIFICATES = 4
# What cryptography raises (or warns) for malformed DER: parsing is lazy for some fields.
_PARSE_ERRORS = (
    ValueError,
    TypeError,
    UserWarning,
    UnsupportedAlgorithm,
    x509.InvalidVersion,
    x509.DuplicateExtension,
    x509.UnsupportedGeneralNameType,
)


def _fail(step: str, message: str) -> EvidenceError:
    return EvidenceError(message, step=step)


def _canonical_pem(der: bytes) -> bytes:
    text = base64.b64encode(der)
    lines = [text[index : index + 64] for index in range(0, len(text), 64)]
    return _BEGIN + b"\n".join(lines) + b"\n" + _END


def _split_pem(data: bytes, what: str) -> list[bytes]:
    """DER of each certificate in a concatenation of canonical PEM blocks (64-column base64).

    One trailing NUL is allowed (Intel's quoting enclave writes one). Anything else — other
    whitespace, comments, non-canonical base64 — is refused so that every byte of the chain is
    either checked or rejected.
    """
    if data.endswith(b"\x00"):
        data = data[:-1]
    ders: list[bytes] = []
    offset = 0
    while offset < len(data):
        match = _BLOCK.match(data, offset)
        if match is None:
            raise _fail("chain", f"{what} is not a sequence of PEM certificates")
        try:
            der = base64.b64decode(match.group(1).replace(b"\n", b""), validate=True)
        except (binascii.Error, ValueError):
            raise _fail("chain", f"{what} holds invalid base64") from None
        if _canonical_pem(der) != match.group(0):
            raise _fail("chain", f"{what} is not canonical PEM")
        ders.append(der)
        offset = match.end()
    if not 2 <= len(ders) <= _MAX_CERTIFICATES:
        raise _fail("chain", f"{what} must hold 2 to {_MAX_CERTIFICATES} certificates")
    return ders


@dataclass(frozen=True)
class Chain:
    """A certificate chain, leaf first, whose last certificate is the pinned root."""

    certificates: tuple[x509.Certificate, ...]

    @property
    def leaf(self) -> x509.Certificate:
        """The end-entity certificate."""
        return self.certificates[0]

    @property
    def issuer_of_leaf(self) -> x509.Certificate:
        """The certificate that signed the leaf."""
        return self.certificates[1]


def load_chain(pem: bytes, *, root_der: bytes, what: str) -> Chain:
    """Parse ``pem`` and check that it ends with exactly the pinned root (step 2)."""
    ders = _split_pem(pem, what)
    if ders[-1] != root_der:
        raise _fail("chain", f"{what} does not end with the pinned Intel SGX Root CA")
    if root_der in ders[:-1]:
        raise _fail("chain", f"{what} repeats the root certificate")
    return Chain(tuple(_certificate(der, what) for der in ders))


def _certificate(der: bytes, what: str) -> x509.Certificate:
    """Parse a certificate and every field verification reads, so that no lazy parse fails later."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # cryptography warns about some malformed names
            certificate = x509.load_der_x509_certificate(der)
            _ = (certificate.version, certificate.issuer, certificate.subject)
            _ = (certificate.extensions, certificate.not_valid_before_utc)
            _ = (certificate.not_valid_after_utc, certificate.serial_number)
            _ = certificate.signature_hash_algorithm
    except _PARSE_ERRORS:
        raise _fail("chain", f"{what} holds a certificate that cannot be parsed") from None
    if not signature_bits_unpadded(der):
        raise _fail("chain", f"{what} holds a certificate with a malformed signature")
    return certificate


def p256_key(certificate: x509.Certificate, what: str) -> ec.EllipticCurvePublicKey:
    """The certificate's public key, which must be ECDSA P-256."""
    try:
        key = certificate.public_key()
    except (ValueError, UnsupportedAlgorithm):
        raise _fail("chain", f"the public key of {what} cannot be read") from None
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp256r1":
        raise _fail("chain", f"the key of {what} is not ECDSA P-256")
    return key


def verify_p256(key: ec.EllipticCurvePublicKey, signature: bytes, message: bytes) -> bool:
    """Whether raw ``r‖s`` (32 + 32 bytes, big-endian) is an ECDSA-P256-SHA256 signature."""
    if len(signature) != 64:
        return False
    r, s = int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
    if r <= 0 or s <= 0:
        return False
    try:
        key.verify(utils.encode_dss_signature(r, s), message, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        return False
    return True


def check_valid_at(certificate: x509.Certificate, now: dt.datetime, what: str) -> None:
    """RFC 5280 4.1.2.5: notBefore <= now <= notAfter."""
    if not certificate.not_valid_before_utc <= now <= certificate.not_valid_after_utc:
        raise _fail(
            "chain",
            f"{what} is not valid at {now.isoformat()} (valid "
            f"{certificate.not_valid_before_utc.isoformat()} to "
            f"{certificate.not_valid_after_utc.isoformat()})",
        )


def check_issued_by(
    certificate: x509.Certificate, issuer: x509.Certificate, now: dt.datetime, what: str
) -> None:
    """``issuer`` is a CA that signed ``certificate``; both are valid at ``now``."""
    try:
        constraints = issuer.extensions.get_extension_for_class(x509.BasicConstraints).value
    except (x509.ExtensionNotFound, ValueError):
        raise _fail("chain", f"the issuer of {what} is not marked as a CA") from None
    if not constraints.ca:
        raise _fail("chain", f"the issuer of {what} is not a CA")
    p256_key(issuer, f"the issuer of {what}")
    try:
        certificate.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm):
        raise _fail("chain", f"{what} is not signed by its issuer") from None
    check_valid_at(certificate, now, what)
    check_valid_at(issuer, now, f"the issuer of {what}")


def check_crl(
    crl_der: bytes, issuer: x509.Certificate, now: dt.datetime, what: str
) -> x509.CertificateRevocationList:
    """Parse a CRL signed by ``issuer`` and current at ``now`` (thisUpdate <= now < nextUpdate)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            crl = x509.load_der_x509_crl(crl_der)
            _ = (crl.issuer, crl.last_update_utc, crl.next_update_utc, crl.extensions)
            _ = [(entry.serial_number, entry.extensions) for entry in crl]
            _ = crl.signature_hash_algorithm
    except _PARSE_ERRORS:
        raise _fail("crl", f"the {what} cannot be parsed") from None
    if not signature_bits_unpadded(crl_der):
        raise _fail("crl", f"the {what} has a malformed signature")
    if crl.issuer != issuer.subject:
        raise _fail("crl", f"the {what} is not issued by {issuer.subject.rfc4514_string()}")
    try:
        valid = crl.is_signature_valid(p256_key(issuer, f"the issuer of the {what}"))
    except (ValueError, TypeError, UnsupportedAlgorithm):
        valid = False
    if not valid:
        raise _fail("crl", f"the signature of the {what} is invalid")
    next_update = crl.next_update_utc
    if next_update is None:
        raise _fail("crl", f"the {what} has no nextUpdate")
    if not crl.last_update_utc <= now < next_update:
        raise _fail(
            "time",
            f"the {what} is not current at {now.isoformat()} (thisUpdate "
            f"{crl.last_update_utc.isoformat()}, nextUpdate {next_update.isoformat()}); "
            "fetch fresh collateral",
        )
    return crl


def check_not_revoked(
    certificate: x509.Certificate, crl: x509.CertificateRevocationList, what: str
) -> None:
    """RFC 5280 6.3: ``certificate`` (issued by the CRL issuer) is not listed."""
    if crl.get_revoked_certificate_by_serial_number(certificate.serial_number) is not None:
        raise _fail("chain", f"{what} is revoked")
