"""Recovery of the sealed state by the holders of the manifest's ``RecoveryKeys`` (ADR 0010).

At manifest set the data key is split for the recovery keys: one key gets the data key itself,
several keys without ``RecoveryThreshold`` get random 32-byte shares whose XOR is the data key,
and with ``RecoveryThreshold`` k the keys get Shamir shares (33 bytes) of which any k recover it.
Each share is encrypted with RSA-OAEP-SHA256 to its key. The plaintext recovery record (mode,
threshold and public keys; no secret) is kept beside the sealed state, so that a coordinator that
cannot unseal the state still knows whom to ask.

A :class:`RecoverySession` collects uploads: each is a share (plaintext, or RSA-OAEP-encrypted to
the session's ephemeral key) with an RSA PKCS#1 v1.5 SHA-256 signature by one recovery key.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from veil.coordinator import _shamir
from veil.errors import AuthorizationError, ProtocolError, StateError
from veil.manifest import Manifest

__all__ = ["RecoveryPlan", "RecoverySession", "plan_recovery"]

DATA_KEY_SIZE = 32
_OAEP = padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None)


def _public_key(pem: str) -> rsa.RSAPublicKey:
    key = serialization.load_pem_public_key(pem.encode())
    if not isinstance(key, rsa.RSAPublicKey):
        raise ProtocolError("a recovery key must be an RSA public key")
    return key


@dataclass(frozen=True)
class RecoveryPlan:
    """The record to keep beside the state and the encrypted secret of each recovery key."""

    record: dict[str, Any]
    secrets: dict[str, bytes] = field(repr=False)


def plan_recovery(manifest: Manifest, data_key: bytes) -> RecoveryPlan | None:
    """Split ``data_key`` for the manifest's recovery keys; None when it names none."""
    keys = manifest.recovery_keys
    if not keys:
        return None
    names = sorted(keys)
    threshold = manifest.config.recovery_threshold
    shares: list[bytes]
    if len(names) == 1:
        mode, needed, shares = "single", 1, [data_key]
    elif threshold == 0:
        mode, needed = "xor", len(names)
        shares = [os.urandom(DATA_KEY_SIZE) for _ in names[1:]]
        last = bytearray(data_key)
        for share in shares:
            last = bytearray(a ^ b for a, b in zip(last, share, strict=True))
        shares.append(bytes(last))
    else:
        mode, needed = "shamir", threshold
        shares = _shamir.split(data_key, shares=len(names), threshold=threshold)
    secrets = {
        name: _public_key(keys[name]).encrypt(share, _OAEP)
        for name, share in zip(names, shares, strict=True)
    }
    record = {
        "version": 1,
        "mode": mode,
        "threshold": needed,
        "keys": {name: keys[name] for name in names},
    }
    return RecoveryPlan(record=record, secrets=secrets)


class RecoverySession:
    """Collects signed recovery secrets until the data key can be rebuilt."""

    def __init__(self, record: dict[str, Any] | None) -> None:
        self._record = record
        self._shares: dict[str, bytes] = {}
        self._ephemeral = rsa.generate_private_key(public_exponent=65537, key_size=3072)
        self._keys: dict[str, rsa.RSAPublicKey] = {}
        if record is not None:
            try:
                self._mode = str(record["mode"])
                self._needed = int(record["threshold"])
                self._keys = {str(n): _public_key(str(p)) for n, p in record["keys"].items()}
            except (KeyError, TypeError, ValueError, AttributeError):
                self._record = None
        if self._record is not None and self._mode not in ("single", "xor", "shamir"):
            self._record = None

    def public_key_pem(self) -> bytes:
        """The ephemeral RSA key (PEM) to which uploads may be encrypted."""
        return self._ephemeral.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    @property
    def remaining(self) -> int:
        """How many more distinct recovery keys must upload."""
        if self._record is None:
            return 0
        return max(self._needed - len(self._shares), 0)

    def reset(self) -> None:
        """Forget every upload (after a combination that did not unlock the state)."""
        self._shares.clear()

    def submit(self, secret: bytes, signature: bytes) -> bytes | None:
        """Record one upload; return the rebuilt data key once enough keys have uploaded.

        Raises :class:`AuthorizationError` when no recovery key signed ``secret``.
        """
        if self._record is None:
            raise StateError(
                "this coordinator has no recovery record: the state was sealed without "
                "RecoveryKeys; set a new manifest in a new data directory instead"
            )
        if len(secret) > 64:
            try:
                secret = self._ephemeral.decrypt(secret, _OAEP)
            except ValueError:
                raise ProtocolError(
                    "the recovery secret is neither plain nor encrypted to this coordinator's "
                    "recovery public key"
                ) from None
        expected = DATA_KEY_SIZE + 1 if self._mode == "shamir" else DATA_KEY_SIZE
        if len(secret) != expected:
            raise ProtocolError(f"a recovery secret of this state is {expected} bytes long")
        signer = None
        for name, key in self._keys.items():
            try:
                key.verify(signature, secret, padding.PKCS1v15(), hashes.SHA256())
            except InvalidSignature:
                continue
            signer = name
            break
        if signer is None:
            raise AuthorizationError(
                "the recovery secret is not signed by any recovery key of the sealed state"
            )
        self._shares[signer] = secret
        if self.remaining > 0:
            return None
        shares = [self._shares[n] for n in sorted(self._shares)]
        if self._mode == "single":
            return shares[0]
        if self._mode == "xor":
            key_bytes = bytearray(DATA_KEY_SIZE)
            for share in shares:
                key_bytes = bytearray(a ^ b for a, b in zip(key_bytes, share, strict=True))
            return bytes(key_bytes)
        return _shamir.combine(shares[: self._needed])
