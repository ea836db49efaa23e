"""The data key of a replicated coordinator: one sealed copy per replica, kept in etcd (ADR 0008).

Plaintext metadata beside the sealed values (``{prefix}meta/``), none of it secret:

- ``replicas/{id}``: the replica's key API address and its copy of the data key, sealed with its
  own TEE seal key (``_sealing``'s format, base64);
- ``keycheck``: HMAC-SHA256(data key, label), so a candidate key is checked before use;
- ``recovery``: the recovery record (who may recover and how), written in the transaction that
  sets or replaces the manifest;
- ``sealmode``: the manifest's ``SealMode``, a hint for requesters of the key API.

The replica id lives in ``replica-id`` in the replica's own data directory: an empty directory is a
new replica, which must obtain the key from a live peer (or from the recovery key holders).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import uuid
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from veil.coordinator.store._etcd import EtcdStore
from veil.coordinator.store._statedir import SEAL_MODES, ModeSealer
from veil.errors import StorageError

__all__ = ["ReplicaState"]

_KEYCHECK_LABEL = b"veil-data-key-check/v1"
_PROBE_KEY = "pki/root.cert"
_AAD = b"veil-replica-data-key/v1"


def key_check(data_key: bytes) -> bytes:
    """The public check value of a data key (it reveals nothing about the key)."""
    return hmac.new(data_key, _KEYCHECK_LABEL, hashlib.sha256).digest()


class ReplicaState:
    """One replica's view of the shared state's data key (implements ``SealedState``)."""

    def __init__(self, directory: Path, store: EtcdStore, tee: ModeSealer) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.store = store
        self._tee = tee
        self._data_key: bytes | None = None
        id_file = self.directory / "replica-id"
        if not id_file.exists():
            tmp = id_file.with_suffix(".tmp")
            tmp.write_text(str(uuid.uuid4()))
            tmp.replace(id_file)
        self.replica_id = id_file.read_text().strip()

    # -- the data key ----------------------------------------------------------------------------
    @property
    def data_key(self) -> bytes:
        """The data key (raise if this replica has none yet)."""
        if self._data_key is None:
            raise StorageError("this replica has no data key yet")
        return self._data_key

    def fits(self, data_key: bytes) -> bool:
        """Whether ``data_key`` is the state's data key: it matches the published check value
        and authenticates a sealed value (the check value alone is not authenticated)."""
        check = self.store.get_meta("keycheck")
        if check is None or not hmac.compare_digest(check, key_check(data_key)):
            return False
        return self.store.opens(data_key, _PROBE_KEY)

    def create(self) -> bool:
        """First replica on an empty store: create the data key; False if another one won."""
        data_key = AESGCM.generate_key(bit_length=256)
        if not self.store.put_meta("keycheck", key_check(data_key), only_if_absent=True):
            return False
        self._use(data_key)
        self.reseal("ProductKey")
        return True

    def unseal_own_copy(self) -> bool:
        """Open this replica's own sealed copy; False when it has none or it does not unseal."""
        record = self._record()
        sealed = record.get("sealed_key")
        if not isinstance(sealed, str):
            return False
        blob = base64.b64decode(sealed)
        for mode in SEAL_MODES:
            try:
                key = AESGCM(self._tee.seal_key(mode=mode)).decrypt(blob[:12], blob[12:], _AAD)
            except (InvalidTag, ValueError):
                continue
            if self.fits(key):
                self._use(key)
                return True
        return False

    def accept(self, data_key: bytes) -> None:
        """Use a key obtained from a peer (after checking it) and keep a sealed copy of it."""
        if not self.fits(data_key):
            raise StorageError("the data key received does not open this state")
        self._use(data_key)
        self.reseal(self.seal_mode_hint())

    def _use(self, data_key: bytes) -> None:
        self._data_key = data_key
        self.store.unlock(data_key)

    def seal_mode_hint(self) -> str:
        """The manifest's seal mode as last published (``ProductKey`` before any)."""
        mode = (self.store.get_meta("sealmode") or b"ProductKey").decode()
        return mode if mode in (*SEAL_MODES, "Disabled") else "ProductKey"

    # -- registration ----------------------------------------------------------------------------
    def _record(self) -> dict[str, Any]:
        raw = self.store.get_meta(f"replicas/{self.replica_id}")
        doc = json.loads(raw) if raw else {}
        return doc if isinstance(doc, dict) else {}

    def register(self, key_addr: str) -> None:
        """Publish this replica's key API address (peers find each other through it)."""
        doc = self._record()
        doc["key_addr"] = key_addr
        self.store.put_meta(f"replicas/{self.replica_id}", json.dumps(doc).encode())

    def peer_addresses(self) -> list[str]:
        """Key API addresses other replicas registered."""
        found = []
        for name, raw in self.store.list_meta("replicas/").items():
            if name == f"replicas/{self.replica_id}":
                continue
            try:
                addr = json.loads(raw).get("key_addr")
            except (ValueError, AttributeError):
                continue
            if isinstance(addr, str) and addr:
                found.append(addr)
        return found

    # -- SealedState -------------------------------------------------------------------------------
    def reseal(self, mode: str) -> None:
        """Seal this replica's copy for ``mode`` (``Disabled``: keep none) and publish the mode."""
        doc = self._record()
        if mode == "Disabled":
            doc.pop("sealed_key", None)
        else:
            nonce = os.urandom(12)
            sealed = nonce + AESGCM(self._tee.seal_key(mode=mode)).encrypt(
                nonce, self.data_key, _AAD
            )
            doc["sealed_key"] = base64.b64encode(sealed).decode()
        self.store.put_meta(f"replicas/{self.replica_id}", json.dumps(doc).encode())
        self.store.put_meta("sealmode", mode.encode())

    def read_recovery_record(self) -> dict[str, Any] | None:
        """The recovery record kept in the store."""
        raw = self.store.get_meta("recovery")
        doc = json.loads(raw) if raw else None
        return doc if isinstance(doc, dict) else None

    def write_recovery_record(self, record: dict[str, Any] | None, txn: object = None) -> None:
        """Write the recovery record inside ``txn`` (so it commits with the manifest)."""
        value = json.dumps(record, sort_keys=True).encode() if record else b"null"
        put_meta = getattr(txn, "put_meta", None)
        if put_meta is not None:
            put_meta("recovery", value)
        else:
            self.store.put_meta("recovery", value)

    def open_with(self, data_key: bytes) -> EtcdStore:
        """Recovery: use ``data_key`` if it is the state's key."""
        if not self.fits(data_key):
            raise StorageError("this data key does not open the shared state")
        self._use(data_key)
        return self.store

    def prepare_rotation(
        self, txn: object, mode: str, new_key: bytes, record: dict[str, Any] | None
    ) -> None:
        """Refused: re-sealing the shared state while other replicas serve is not supported."""
        raise StorageError(
            "changing RecoveryKeys is not supported on the etcd store (every replica would need "
            "the new data key at once); keep the RecoveryKeys, or migrate through a new manifest"
        )

    def finish_rotation(self, mode: str) -> None:
        """Nothing to finish (rotation is refused)."""
