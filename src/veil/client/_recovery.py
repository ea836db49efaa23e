"""Recovery helpers for key holders: decrypt the recovery secret, sign it, encrypt it in transit.

The recovery secret from ``POST /api/v2/manifest`` is RSA-OAEP-SHA256-encrypted to the holder's
key. The holder decrypts it, signs it (RSA PKCS#1 v1.5, SHA-256) and, so that a TLS-terminating
proxy cannot read it, encrypts it to the ephemeral key of the coordinator in recovery mode.
"""

from __future__ import annotations

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from veil.errors import ConfigurationError, VerificationError

__all__ = [
    "decrypt_recovery_secret",
    "encrypt_for_coordinator",
    "load_recovery_key",
    "sign_recovery_secret",
]

_OAEP = padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None)


def load_recovery_key(private_key_pem: bytes) -> rsa.RSAPrivateKey:
    """Load the holder's RSA private key (PEM, unencrypted)."""
    try:
        key = serialization.load_pem_private_key(private_key_pem, None)
    except (ValueError, TypeError):
        raise ConfigurationError("the recovery key is not an unencrypted PEM private key") from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ConfigurationError("the recovery key must be an RSA private key")
    return key


def decrypt_recovery_secret(encrypted: bytes, key: rsa.RSAPrivateKey) -> bytes:
    """The plaintext recovery secret; raise if it was not encrypted to ``key``."""
    try:
        return key.decrypt(encrypted, _OAEP)
    except ValueError:
        raise VerificationError(
            "the recovery secret was not encrypted to this recovery key"
        ) from None


def sign_recovery_secret(secret: bytes, key: rsa.RSAPrivateKey) -> bytes:
    """RSA PKCS#1 v1.5 SHA-256 signature over the plaintext secret."""
    return key.sign(secret, padding.PKCS1v15(), hashes.SHA256())


def encrypt_for_coordinator(secret: bytes, public_key_pem: bytes) -> bytes:
    """Encrypt ``secret`` to the coordinator's ephemeral recovery key (RSA-OAEP-SHA256)."""
    try:
        key = serialization.load_pem_public_key(public_key_pem)
    except ValueError:
        raise VerificationError("the coordinator's recovery key does not parse") from None
    if not isinstance(key, rsa.RSAPublicKey):
        raise VerificationError("the coordinator's recovery key is not RSA")
    return key.encrypt(secret, _OAEP)
