"""Coordinator PKI: root CA, rotating intermediate (cross-signed as the marble root), marble leaves.

All functions take an explicit ``now``. Keys are ECDSA P-384 (CA) as in MarbleRun; marble leaf
certificates certify the public key of the marble's CSR, so the coordinator never holds a marble's
private key.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID, ObjectIdentifier

from veil.errors import ProtocolError, VerificationError

#: Extension carrying the marble type (MarbleRun uses the same OID).
MARBLE_TYPE_OID = ObjectIdentifier("1.3.9903.2.1")
CA_VALIDITY = dt.timedelta(days=3650)
MARBLE_VALIDITY = dt.timedelta(days=365)
MAX_CSR_SIZE = 16 * 1024
_BACKDATE = dt.timedelta(minutes=5)


@dataclass(frozen=True)
class CertifiedKey:
    """A certificate with its private key (held only by the coordinator, for its own CAs)."""

    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    @property
    def cert_der(self) -> bytes:
        """DER of the certificate."""
        return self.cert.public_bytes(serialization.Encoding.DER)

    @property
    def cert_pem(self) -> bytes:
        """PEM of the certificate."""
        return self.cert.public_bytes(serialization.Encoding.PEM)

    def key_pem(self) -> bytes:
        """PKCS#8 PEM of the private key (for sealing into the coordinator's store only)."""
        return self.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    @classmethod
    def from_pem(cls, cert_pem: bytes, key_pem: bytes) -> CertifiedKey:
        """Load a certificate and its PKCS#8 key."""
        key = serialization.load_pem_private_key(key_pem, None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise ProtocolError("coordinator CA keys must be ECDSA")
        return cls(x509.load_pem_x509_certificate(cert_pem), key)


def _name(cn: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "veil"),
            x509.NameAttribute(NameOID.COMMON_NAME, cn),
        ]
    )


def _ca_builder(
    subject: x509.Name, issuer: x509.Name, public_key: ec.EllipticCurvePublicKey, now: dt.datetime
) -> x509.CertificateBuilder:
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _BACKDATE)
        .not_valid_after(now + CA_VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
    )


def _server_sans(dns_names: Sequence[str]) -> x509.SubjectAlternativeName:
    names: list[x509.GeneralName] = [x509.DNSName(d) for d in dns_names]
    names += [
        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
        x509.IPAddress(ipaddress.ip_address("::1")),
    ]
    return x509.SubjectAlternativeName(names)


def create_root(now: dt.datetime, *, dns_names: Sequence[str] = ("localhost",)) -> CertifiedKey:
    """A new coordinator root CA. It is also the TLS certificate of the client API."""
    key = ec.generate_private_key(ec.SECP384R1())
    name = _name("veil Coordinator")
    cert = (
        _ca_builder(name, name, key.public_key(), now)
        .add_extension(_server_sans(dns_names), critical=False)
        .sign(key, hashes.SHA384())
    )
    return CertifiedKey(cert, key)


def create_intermediate(root: CertifiedKey, now: dt.datetime) -> tuple[CertifiedKey, CertifiedKey]:
    """A new intermediate CA signed by the root, and the same key self-signed as the marble root.

    Outsiders chain marble certificates to the coordinator root through the intermediate; marbles
    see the self-signed marble root as a terminating root (MarbleRun's cross-signing).
    """
    key = ec.generate_private_key(ec.SECP384R1())
    name = _name("veil Coordinator - Intermediate CA")
    intermediate = (
        _ca_builder(name, root.cert.subject, key.public_key(), now)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(root.key.public_key()),
            critical=False,
        )
        .sign(root.key, hashes.SHA384())
    )
    marble_root = _ca_builder(name, name, key.public_key(), now).sign(key, hashes.SHA384())
    return CertifiedKey(intermediate, key), CertifiedKey(marble_root, key)


def load_csr(csr_der: bytes) -> x509.CertificateSigningRequest:
    """Parse a DER CSR and check its self-signature (proof of possession of the key)."""
    if len(csr_der) > MAX_CSR_SIZE:
        raise ProtocolError(f"the CSR is larger than {MAX_CSR_SIZE} bytes")
    try:
        csr = x509.load_der_x509_csr(csr_der)
    except ValueError:
        raise ProtocolError("the CSR is not a DER PKCS#10 request") from None
    if not csr.is_signature_valid:
        raise VerificationError("the CSR signature is invalid: no proof of possession of the key")
    if not isinstance(csr.public_key(), ec.EllipticCurvePublicKey):
        raise ProtocolError("the CSR key must be ECDSA")
    return csr


def spki_der(public_key: ec.EllipticCurvePublicKey) -> bytes:
    """SubjectPublicKeyInfo DER of a public key (what marble evidence binds)."""
    return public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def issue_marble_certificate(
    csr: x509.CertificateSigningRequest,
    issuer: CertifiedKey,
    *,
    marble_uuid: str,
    marble_type: str,
    dns_names: Sequence[str],
    now: dt.datetime,
) -> x509.Certificate:
    """Certify the CSR's own public key as marble ``marble_uuid`` of type ``marble_type``."""
    public_key = csr.public_key()
    if not isinstance(public_key, ec.EllipticCurvePublicKey):
        raise ProtocolError("the CSR key must be ECDSA")
    return (
        x509.CertificateBuilder()
        .subject_name(_name(marble_uuid))
        .issuer_name(issuer.cert.subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _BACKDATE)
        .not_valid_after(now + MARBLE_VALIDITY)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .add_extension(_server_sans(dns_names), critical=False)
        .add_extension(
            x509.UnrecognizedExtension(MARBLE_TYPE_OID, marble_type.encode()), critical=False
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.key.public_key()),
            critical=False,
        )
        .sign(issuer.key, hashes.SHA384())
    )


def issue_server_certificate(
    issuer: CertifiedKey, *, common_name: str, dns_names: Sequence[str], now: dt.datetime
) -> CertifiedKey:
    """A TLS server certificate (e.g. the coordinator's mesh API) signed by ``issuer``."""
    key = ec.generate_private_key(ec.SECP384R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(issuer.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _BACKDATE)
        .not_valid_after(now + MARBLE_VALIDITY)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(_server_sans(dns_names), critical=False)
        .sign(issuer.key, hashes.SHA384())
    )
    return CertifiedKey(cert, key)


def marble_identity(cert: x509.Certificate) -> tuple[str, str]:
    """(uuid, marble type) of a marble certificate issued by :func:`issue_marble_certificate`."""
    try:
        ext = cert.extensions.get_extension_for_oid(MARBLE_TYPE_OID).value
    except x509.ExtensionNotFound:
        raise VerificationError("the certificate is not a marble certificate") from None
    cn = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if not cn or not isinstance(ext, x509.UnrecognizedExtension):
        raise VerificationError("the certificate is not a marble certificate")
    return str(cn[0].value), ext.value.decode("utf-8", "replace")


def verify_issued_by(cert: x509.Certificate, issuer: x509.Certificate, now: dt.datetime) -> None:
    """Raise unless ``cert`` is signed by ``issuer`` and valid at ``now``."""
    try:
        cert.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature):
        raise VerificationError("the certificate was not issued by the expected CA") from None
    if not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc:
        raise VerificationError("the certificate is not valid at this time")
