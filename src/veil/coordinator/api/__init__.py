"""HTTP adapters of the coordinator: the client API (``/api/v2``) and the marble mesh API."""

from veil.coordinator.api._client_api import client_api
from veil.coordinator.api._mesh_api import mesh_api

__all__ = ["client_api", "mesh_api"]
