"""Client SDK for stakeholders: verify the coordinator and the manifest, upload secrets."""

from veil.client._coordinator import CoordinatorClient, VerifiedCoordinator, verify_coordinator

__all__ = ["CoordinatorClient", "VerifiedCoordinator", "verify_coordinator"]
