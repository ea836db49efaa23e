"""The store seam: two methods, so that SQLite, etcd and memory stores are interchangeable."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any, Protocol, TypeVar

T = TypeVar("T")


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


class SealedState(Protocol):
    """Where a coordinator keeps its data key and recovery record: its data directory (one
    instance) or the shared store with one sealed copy per replica (HA, ADR 0008)."""

    @property
    def data_key(self) -> bytes:
        """The data key of the opened state."""
        ...

    def read_recovery_record(self) -> dict[str, Any] | None:
        """The plaintext recovery record, or None."""
        ...

    def write_recovery_record(self, record: dict[str, Any] | None, txn: object = None) -> None:
        """Replace the recovery record (inside ``txn`` where the store supports it)."""
        ...

    def reseal(self, mode: str) -> None:
        """Seal this coordinator's copy of the data key for ``mode``."""
        ...

    def open_with(self, data_key: bytes) -> Store:
        """Open the state with a recovered data key; raise StorageError if it does not fit."""
        ...

    def prepare_rotation(
        self, txn: object, mode: str, new_key: bytes, record: dict[str, Any] | None
    ) -> None:
        """Inside ``txn``: re-seal the state under ``new_key``."""
        ...

    def finish_rotation(self, mode: str) -> None:
        """After the commit of :meth:`prepare_rotation`."""
        ...


def run_transaction(store: Store, block: Callable[[Transaction], T]) -> T:
    """Run ``block`` in a transaction of ``store``.

    Stores that detect conflicts instead of locking (etcd) re-run the block through their
    ``transact``; the block must therefore have no effect outside the transaction and must not
    take locks another replica's block could wait on. Other stores run it once.
    """
    transact: Callable[[Callable[[Transaction], T]], T] | None = getattr(store, "transact", None)
    if transact is not None:
        return transact(block)
    with store.transaction() as txn:
        return block(txn)
