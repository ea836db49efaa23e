"""Recovery helpers of the key holder: decrypt, sign, encrypt to the coordinator."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from veil.client import (
    decrypt_recovery_secret,
    encrypt_for_coordinator,
    load_recovery_key,
    sign_recovery_secret,
)
from veil.errors import ConfigurationError, VerificationError

OAEP = padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None)


@pytest.fixture(scope="module")
def key() -> rsa.RSAPrivateKey:
    """A holder's RSA key."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def test_round_trip(key: rsa.RSAPrivateKey) -> None:
    """A secret encrypted to the holder decrypts, signs verifiably and re-encrypts in transit."""
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    holder = load_recovery_key(pem)
    secret = b"\x07" * 32
    encrypted = key.public_key().encrypt(secret, OAEP)
    assert decrypt_recovery_secret(encrypted, holder) == secret
    key.public_key().verify(
        sign_recovery_secret(secret, holder), secret, padding.PKCS1v15(), hashes.SHA256()
    )
    ephemeral = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = ephemeral.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert ephemeral.decrypt(encrypt_for_coordinator(secret, public), OAEP) == secret


def test_secret_for_another_key_is_refused(key: rsa.RSAPrivateKey) -> None:
    """A secret encrypted to another holder raises VerificationError."""
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    with pytest.raises(VerificationError):
        decrypt_recovery_secret(other.public_key().encrypt(b"x" * 32, OAEP), key)


@pytest.mark.parametrize("pem", [b"", b"not a key", b"-----BEGIN PRIVATE KEY-----\nAAAA\n"])
def test_bad_key_file_is_a_configuration_error(pem: bytes) -> None:
    """A file that is not an RSA private key is refused with one sentence."""
    with pytest.raises(ConfigurationError):
        load_recovery_key(pem)


def test_garbage_coordinator_key_is_refused() -> None:
    """An ephemeral key that does not parse raises VerificationError."""
    with pytest.raises(VerificationError):
        encrypt_for_coordinator(b"x", b"garbage")
