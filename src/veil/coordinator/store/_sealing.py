"""The data key of the sealed store, itself sealed with a key only the same TEE identity derives.

Layout of the ``sealed_key`` file: ``b"VEILSK1" ‖ nonce (12) ‖ AES-256-GCM(seal key, data key)``
with associated data ``b"veil-sealed-data-key/v1"``. See ADR 0003.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from veil.errors import StorageError

_MAGIC = b"VEILSK1"
_AAD = b"veil-sealed-data-key/v1"


class DataKeySealer(Protocol):
    """Gives the 32-byte seal key of the running TEE identity."""

    def seal_key(self) -> bytes:
        """The seal key; the same identity on the same platform always gets the same key."""
        ...


def open_data_key(path: Path, sealer: DataKeySealer) -> tuple[bytes, bool]:
    """Return ``(data key, created)``: unseal the existing key file or create a new one.

    Raises :class:`StorageError` when a key file exists but cannot be unsealed (another TEE
    identity, another platform, or a modified file): the coordinator then enters recovery.
    """
    if path.exists():
        seal_key = sealer.seal_key()
        blob = path.read_bytes()
        if not blob.startswith(_MAGIC) or len(blob) != len(_MAGIC) + 12 + 32 + 16:
            raise StorageError(f"{path} is not a sealed data key file")
        nonce = blob[len(_MAGIC) : len(_MAGIC) + 12]
        try:
            return AESGCM(seal_key).decrypt(nonce, blob[len(_MAGIC) + 12 :], _AAD), False
        except InvalidTag:
            raise StorageError(
                "the sealed state cannot be unsealed by this TEE identity: recovery is needed"
            ) from None
    data_key = AESGCM.generate_key(bit_length=256)
    seal_data_key(path, sealer, data_key)
    return data_key, True


def unseal_data_key(path: Path, sealer: DataKeySealer) -> bytes:
    """Unseal an existing key file; raise :class:`StorageError` if it is absent or foreign."""
    if not path.exists():
        raise StorageError(f"{path} does not exist: recovery is needed")
    return open_data_key(path, sealer)[0]


def seal_data_key(path: Path, sealer: DataKeySealer, data_key: bytes) -> None:
    """Write ``data_key`` sealed with ``sealer``'s key to ``path`` atomically (mode 0600)."""
    nonce = os.urandom(12)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(_MAGIC + nonce + AESGCM(sealer.seal_key()).encrypt(nonce, data_key, _AAD))
        fh.flush()
        os.fsync(fh.fileno())
    tmp.replace(path)
