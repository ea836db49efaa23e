"""The coordinator's data directory: sealed data key, sealed SQLite state, recovery record.

Files: ``sealed_key`` (the data key sealed with the TEE seal key, absent under
``SealMode: Disabled``), ``state.db`` (values sealed with the data key) and ``recovery.json``
(plaintext: which public keys may recover and how; it holds no secret). The old state is never
deleted or rewritten when it cannot be unsealed: it waits for recovery (ADR 0010).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from veil.coordinator.store._sealing import open_data_key, seal_data_key, unseal_data_key
from veil.coordinator.store._sqlite import SealedSQLiteStore
from veil.errors import StorageError

__all__ = ["ModeSealer", "StateDirectory"]

SEAL_MODES = ("ProductKey", "UniqueKey")
_PROBE_KEY = "pki/root.cert"


class ModeSealer(Protocol):
    """A TEE that derives seal keys for a seal mode (``ProductKey`` or ``UniqueKey``)."""

    def seal_key(self, mode: str = "ProductKey") -> bytes:
        """The seal key of this identity for ``mode``."""
        ...


@dataclass(frozen=True)
class _Bound:
    tee: ModeSealer
    mode: str

    def seal_key(self) -> bytes:
        return self.tee.seal_key(mode=self.mode)


class StateDirectory:
    """The sealed state directory of one coordinator."""

    def __init__(self, path: Path, tee: ModeSealer) -> None:
        self.path = Path(path)
        self._tee = tee
        self._data_key: bytes | None = None
        self._staged_key: bytes | None = None
        self.path.mkdir(parents=True, exist_ok=True, mode=0o700)

    @property
    def key_file(self) -> Path:
        """The sealed data key file."""
        return self.path / "sealed_key"

    @property
    def db_file(self) -> Path:
        """The sealed SQLite state file."""
        return self.path / "state.db"

    @property
    def data_key(self) -> bytes:
        """The data key of the opened state (raise if the state is not open)."""
        if self._data_key is None:
            raise StorageError("the sealed state is not open")
        return self._data_key

    @property
    def next_key_file(self) -> Path:
        """The sealed data key being rotated to (present only during a rotation)."""
        return self.path / "sealed_key.next"

    def open(self) -> SealedSQLiteStore:
        """Open the state, creating it on first start; raise StorageError when recovery is needed.

        A rotation interrupted after its commit left the new key in ``sealed_key.next``: it is
        used when the main key file no longer opens the state, and then takes its place.
        """
        if not self.db_file.exists() and not self.key_file.exists():
            data_key, _ = open_data_key(self.key_file, _Bound(self._tee, "ProductKey"))
            self._data_key = data_key
            return SealedSQLiteStore(self.db_file, data_key)
        last = StorageError("the sealed state cannot be opened: recovery is needed")
        for key_file in (self.key_file, self.next_key_file):
            for mode in SEAL_MODES:
                try:
                    data_key = unseal_data_key(key_file, _Bound(self._tee, mode))
                except StorageError as exc:
                    last = exc
                    continue
                try:
                    store = self.open_with(data_key)
                except StorageError as exc:
                    last = exc
                    continue
                if key_file == self.next_key_file:  # a rotation committed; finish it
                    self._promote(mode)
                else:  # a rotation that never committed: drop what it staged
                    self.next_key_file.unlink(missing_ok=True)
                    (self.path / "recovery.json.next").unlink(missing_ok=True)
                return store
        raise last

    def prepare_rotation(
        self, txn: object, mode: str, new_key: bytes, record: dict[str, Any] | None
    ) -> None:
        """Inside an open transaction of this directory's store: re-seal every row under
        ``new_key``, and stage ``sealed_key.next`` and ``recovery.json.next`` (``record``).

        :meth:`finish_rotation` after the commit puts the staged files in place; if the process
        dies in between, :meth:`open` finds the state under the staged key and promotes them.
        """
        rekey = getattr(txn, "rekey", None)
        if rekey is None:
            raise StorageError("this store cannot rotate its data key")
        if mode != "Disabled":
            seal_data_key(self.next_key_file, _Bound(self._tee, mode), new_key)
        self._write_json(self.path / "recovery.json.next", {"record": record})
        rekey(new_key)
        self._staged_key = new_key

    def finish_rotation(self, mode: str) -> None:
        """After the commit: the staged key and recovery record replace the current ones."""
        if self._staged_key is not None:
            self._data_key, self._staged_key = self._staged_key, None
        self._promote(mode)

    def _promote(self, mode: str) -> None:
        staged = self.path / "recovery.json.next"
        if staged.exists():
            record = json.loads(staged.read_text()).get("record")
            self.write_recovery_record(record)
            staged.unlink()
        if mode == "Disabled":
            self.key_file.unlink(missing_ok=True)
            self.next_key_file.unlink(missing_ok=True)
        elif self.next_key_file.exists():
            self.next_key_file.replace(self.key_file)

    def rotate_data_key(self, store: object, mode: str, record: dict[str, Any] | None) -> None:
        """Rotate the data key of ``store`` in a transaction of its own (tests, maintenance)."""
        if not isinstance(store, SealedSQLiteStore):
            return
        with store.transaction() as txn:
            self.prepare_rotation(txn, mode, os.urandom(32), record)
        self.finish_rotation(mode)

    def open_with(self, data_key: bytes) -> SealedSQLiteStore:
        """Open the existing state with a recovered data key; raise if the key does not fit it."""
        if not self.db_file.exists():
            raise StorageError("there is no sealed state to recover")
        store = SealedSQLiteStore(self.db_file, data_key)
        try:
            probe = store.get(_PROBE_KEY)
        except StorageError:
            probe = None
        if probe is None and store.row_count() > 0:
            store.close()
            raise StorageError("this data key does not open the sealed state")
        self._data_key = data_key
        return store

    def reseal(self, mode: str) -> None:
        """Seal the data key again for ``mode``; ``Disabled`` removes the key file."""
        if mode == "Disabled":
            self.key_file.unlink(missing_ok=True)
            return
        seal_data_key(self.key_file, _Bound(self._tee, mode), self.data_key)

    def write_recovery_record(self, record: dict[str, Any] | None, txn: object = None) -> None:
        """Replace ``recovery.json`` atomically (``None`` removes it; ``txn`` is not needed)."""
        path = self.path / "recovery.json"
        if record is None:
            path.unlink(missing_ok=True)
            return
        self._write_json(path, record)

    @staticmethod
    def _write_json(path: Path, doc: object) -> None:
        tmp = path.with_name(path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump(doc, fh, sort_keys=True)
            fh.flush()
            os.fsync(fh.fileno())
        tmp.replace(path)

    def read_recovery_record(self) -> dict[str, Any] | None:
        """The recovery record, or None when the state has no recovery keys."""
        path = self.path / "recovery.json"
        try:
            doc = json.loads(path.read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise StorageError(f"cannot read {path}: {exc}") from None
        if not isinstance(doc, dict):
            raise StorageError(f"{path} is not a recovery record")
        return doc
