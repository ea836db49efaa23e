"""Client SDK for stakeholders: verify the coordinator and the manifest, upload secrets, update,
read the verified update log and recover a sealed coordinator."""

from veil.client._coordinator import (
    CoordinatorClient,
    VerifiedCoordinator,
    insecure_coordinator_root,
    verify_coordinator,
)
from veil.client._inference import InferenceClient
from veil.client._recovery import (
    decrypt_recovery_secret,
    encrypt_for_coordinator,
    load_recovery_key,
    sign_recovery_secret,
)

__all__ = [
    "CoordinatorClient",
    "InferenceClient",
    "VerifiedCoordinator",
    "decrypt_recovery_secret",
    "encrypt_for_coordinator",
    "insecure_coordinator_root",
    "load_recovery_key",
    "sign_recovery_secret",
    "verify_coordinator",
]
