"""Coordinator state stores: a key/value interface with atomic transactions, sealed at rest."""

from veil.coordinator.store._base import SealedState, Store, Transaction, run_transaction
from veil.coordinator.store._memory import MemoryStore
from veil.coordinator.store._sealing import DataKeySealer, open_data_key, seal_data_key
from veil.coordinator.store._sqlite import SealedSQLiteStore
from veil.coordinator.store._statedir import ModeSealer, StateDirectory

__all__ = [
    "DataKeySealer",
    "MemoryStore",
    "ModeSealer",
    "SealedSQLiteStore",
    "SealedState",
    "StateDirectory",
    "Store",
    "Transaction",
    "open_data_key",
    "run_transaction",
    "seal_data_key",
]
