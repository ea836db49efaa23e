"""Generation and (de)serialisation of manifest secrets (MarbleRun semantics)."""

from __future__ import annotations

import base64
import datetime as dt
import json
import os

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from veil.manifest import SecretSpec, SecretValue
from veil.pki import CertifiedKey

_CURVES: dict[int, ec.EllipticCurve] = {
    224: ec.SECP224R1(),
    256: ec.SECP256R1(),
    384: ec.SECP384R1(),
    521: ec.SECP521R1(),
}


def encode_secret(value: SecretValue) -> bytes:
    """Serialise a secret for the sealed store."""
    doc = {
        k: base64.b64encode(v).decode()
        for k, v in (
            ("cert", value.cert_der),
            ("public", value.public_der),
            ("private", value.private_der),
            ("key", value.key),
        )
        if v is not None
    }
    return json.dumps(doc, sort_keys=True).encode()


def decode_secret(blob: bytes) -> SecretValue:
    """Inverse of :func:`encode_secret`."""
    doc = json.loads(blob)

    def field(name: str) -> bytes | None:
        v = doc.get(name)
        return None if v is None else base64.b64decode(v)

    return SecretValue(
        cert_der=field("cert"),
        public_der=field("public"),
        private_der=field("private"),
        key=field("key"),
    )


def derive_unique_key(
    root_secret: bytes, *, uuid: str, name: str, marble_type: str, size: int
) -> bytes:
    """Per-marble symmetric key: HKDF-SHA256(root secret, salt = UUID ‖ name, info = type)."""
    return HKDF(
        algorithm=hashes.SHA256(),
        length=size // 8,
        salt=uuid.encode() + name.encode(),
        info=marble_type.encode(),
    ).derive(root_secret)


def generate_secret(
    name: str, spec: SecretSpec, *, issuer: CertifiedKey, now: dt.datetime
) -> SecretValue:
    """A fresh value for a generated (not user-defined) secret."""
    if spec.type == "symmetric-key":
        return SecretValue(key=os.urandom(spec.size // 8))
    key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey
    if spec.type == "cert-ecdsa":
        key = ec.generate_private_key(_CURVES.get(spec.size or 256, ec.SECP256R1()))
    elif spec.type == "cert-rsa":
        key = rsa.generate_private_key(public_exponent=65537, key_size=spec.size or 2048)
    elif spec.type == "cert-ed25519":
        key = ed25519.Ed25519PrivateKey.generate()
    else:
        raise ValueError(f"secret {name!r} of type {spec.type} cannot be generated")
    cn = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "veil Generated Certificate")])
    days = spec.valid_for or 365
    cert = (
        x509.CertificateBuilder()
        .subject_name(cn)
        .issuer_name(issuer.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .sign(issuer.key, hashes.SHA384())
    )
    return SecretValue(
        cert_der=cert.public_bytes(serialization.Encoding.DER),
        public_der=key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
        private_der=key.private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
    )
