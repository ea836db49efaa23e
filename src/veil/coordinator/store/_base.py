"""The store seam: two methods, so that SQLite, etcd and memory stores are interchangeable."""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Protocol


class Transaction(Protocol):
    """Reads and writes that commit atomically, or not at all."""

    def get(self, key: str) -> bytes | None:
        """The value of ``key`` as seen by this transaction."""
        ...

    def put(self, key: str, value: bytes) -> None:
        """Set ``key``; visible to others only after commit."""
        ...

    def delete(self, key: str) -> None:
        """Remove ``key`` if present."""
        ...

    def keys(self, prefix: str) -> list[str]:
        """All keys that start with ``prefix``, sorted."""
        ...


class Store(Protocol):
    """Coordinator state. ``transaction()`` is serializable: concurrent ones never interleave."""

    def get(self, key: str) -> bytes | None:
        """The committed value of ``key``."""
        ...

    def transaction(self) -> AbstractContextManager[Transaction]:
        """Open a transaction that commits when the block exits normally."""
        ...
