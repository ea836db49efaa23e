"""Public helpers for tests and demos: the digits model, in-memory stores, the simulated TEE."""

from veil.attestation import SimulatedIdentity, SimulatedPlatform
from veil.coordinator.store import MemoryStore
from veil.testing._digits import DigitsModel, plaintext_accuracy, train_digits_model

__all__ = [
    "DigitsModel",
    "MemoryStore",
    "SimulatedIdentity",
    "SimulatedPlatform",
    "plaintext_accuracy",
    "train_digits_model",
]
