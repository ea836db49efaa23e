"""Self-signed certificates and CSRs for users and for marbles' ephemeral keys."""

from __future__ import annotations

import datetime as dt
import ipaddress
from collections.abc import Sequence

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


def generate_key() -> ec.EllipticCurvePrivateKey:
    """A fresh ECDSA P-256 key (marble TLS keys, user keys)."""
    return ec.generate_private_key(ec.SECP256R1())


def private_key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    """PKCS#8 PEM of a private key."""
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def self_signed_user_certificate(
    key: ec.EllipticCurvePrivateKey,
    common_name: str,
    *,
    now: dt.datetime,
    valid_for: dt.timedelta = dt.timedelta(days=365),
) -> x509.Certificate:
    """A self-signed client certificate for a manifest user (``veil user new``)."""
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + valid_for)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .sign(key, hashes.SHA256())
    )


def build_csr(
    key: ec.EllipticCurvePrivateKey, *, common_name: str, dns_names: Sequence[str]
) -> bytes:
    """A DER CSR for ``key`` with DNS names and loopback IPs (a marble's activation request)."""
    sans: list[x509.GeneralName] = [x509.DNSName(d) for d in dns_names]
    sans.append(x509.IPAddress(ipaddress.ip_address("127.0.0.1")))
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .sign(key, hashes.SHA256())
    )
    return csr.public_bytes(serialization.Encoding.DER)


def csr_dns_names(csr: x509.CertificateSigningRequest) -> list[str]:
    """DNS names requested in a CSR (empty if none)."""
    try:
        sans = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    return [str(n) for n in sans.get_values_for_type(x509.DNSName)]
