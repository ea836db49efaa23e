"""The default store: one SQLite file whose values are sealed with AES-256-GCM.

Every value is encrypted under the data key with a random nonce and the key name as associated
data, so a value cannot be moved to another key and nothing is readable without the data key.
Transactions use SQLite's ``BEGIN IMMEDIATE`` (serializable across processes) and WAL mode.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from veil.errors import StorageError

_SCHEMA = "CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value BLOB NOT NULL)"


class _SQLiteTxn:
    def __init__(self, conn: sqlite3.Connection, aead: AESGCM) -> None:
        self._conn = conn
        self._aead = aead
        self.rekeyed: AESGCM | None = None

    def rekey(self, new_key: bytes) -> None:
        """Re-seal every value under ``new_key`` inside this transaction (the store switches
        to the new key only if the transaction commits)."""
        new_aead = AESGCM(new_key)
        for key in self.keys(""):
            value = self.get(key)
            if value is not None:
                _SQLiteTxn(self._conn, new_aead).put(key, value)
        self._aead = new_aead
        self.rekeyed = new_aead

    def _open(self, key: str, blob: bytes) -> bytes:
        try:
            return self._aead.decrypt(blob[:12], blob[12:], key.encode())
        except InvalidTag:
            raise StorageError(
                f"sealed value {key!r} failed authentication: the store was modified"
            ) from None

    def get(self, key: str) -> bytes | None:
        row = self._conn.execute("SELECT value FROM kv WHERE key = ?", (key,)).fetchone()
        return None if row is None else self._open(key, row[0])

    def put(self, key: str, value: bytes) -> None:
        nonce = os.urandom(12)
        blob = nonce + self._aead.encrypt(nonce, value, key.encode())
        self._conn.execute(
            "INSERT INTO kv (key, value) VALUES (?, ?) "
            "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (key, blob),
        )

    def delete(self, key: str) -> None:
        self._conn.execute("DELETE FROM kv WHERE key = ?", (key,))

    def keys(self, prefix: str) -> list[str]:
        rows = self._conn.execute(
            "SELECT key FROM kv WHERE substr(key, 1, ?) = ? ORDER BY key", (len(prefix), prefix)
        ).fetchall()
        return [r[0] for r in rows]


class SealedSQLiteStore:
    """A sealed SQLite key/value store (the single-instance default)."""

    def __init__(self, path: Path, data_key: bytes) -> None:
        self.path = Path(path)
        self._aead = AESGCM(data_key)
        self._lock = threading.RLock()
        try:
            self._conn = sqlite3.connect(
                self.path, isolation_level=None, check_same_thread=False, timeout=30
            )
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=FULL")
            self._conn.execute(_SCHEMA)
        except sqlite3.Error as exc:
            raise StorageError(f"cannot open the state database {path}: {exc}") from None
        self.path.chmod(0o600)

    def get(self, key: str) -> bytes | None:
        """The committed value of ``key``."""
        with self._lock:
            return _SQLiteTxn(self._conn, self._aead).get(key)

    @contextmanager
    def transaction(self) -> Iterator[_SQLiteTxn]:
        """``BEGIN IMMEDIATE`` … ``COMMIT``; rolled back if the block raises."""
        with self._lock:
            try:
                self._conn.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise StorageError(f"cannot start a transaction: {exc}") from None
            txn = _SQLiteTxn(self._conn, self._aead)
            try:
                yield txn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            try:
                self._conn.execute("COMMIT")
            except sqlite3.Error as exc:
                raise StorageError(f"cannot commit: {exc}") from None
            if txn.rekeyed is not None:
                self._aead = txn.rekeyed

    def row_count(self) -> int:
        """How many values the store holds (no decryption)."""
        with self._lock:
            (count,) = self._conn.execute("SELECT count(*) FROM kv").fetchone()
            return int(count)

    def rekey(self, new_key: bytes) -> None:
        """Re-seal every value under ``new_key`` in one transaction (all or nothing)."""
        with self.transaction() as txn:
            txn.rekey(new_key)

    def close(self) -> None:
        """Close the database."""
        with self._lock:
            self._conn.close()
