"""An in-memory store (``SealMode: Disabled`` and tests)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager


class _MemoryTxn:
    def __init__(self, data: dict[str, bytes]) -> None:
        self._data = data
        self._writes: dict[str, bytes | None] = {}

    def get(self, key: str) -> bytes | None:
        if key in self._writes:
            return self._writes[key]
        return self._data.get(key)

    def put(self, key: str, value: bytes) -> None:
        self._writes[key] = bytes(value)

    def delete(self, key: str) -> None:
        self._writes[key] = None

    def keys(self, prefix: str) -> list[str]:
        present = {k for k in self._data if k.startswith(prefix)}
        for k, v in self._writes.items():
            if k.startswith(prefix):
                (present.add if v is not None else present.discard)(k)
        return sorted(present)

    def commit(self) -> None:
        for k, v in self._writes.items():
            if v is None:
                self._data.pop(k, None)
            else:
                self._data[k] = v


class MemoryStore:
    """A real, serializable in-memory store."""

    def __init__(self) -> None:
        self._data: dict[str, bytes] = {}
        self._lock = threading.RLock()

    def get(self, key: str) -> bytes | None:
        """The committed value of ``key``."""
        with self._lock:
            return self._data.get(key)

    @contextmanager
    def transaction(self) -> Iterator[_MemoryTxn]:
        """A transaction holding the store's lock until it commits or aborts."""
        with self._lock:
            txn = _MemoryTxn(self._data)
            yield txn
            txn.commit()
