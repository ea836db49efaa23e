"""HTTP adapters of the coordinator: the client API (``/api/v2``) and the marble mesh API."""

from veil.coordinator.api._client_api import client_api
from veil.coordinator.api._mesh_api import mesh_api
from veil.coordinator.api._openapi import openapi_document
from veil.coordinator.api._ops import ops_app

__all__ = ["client_api", "mesh_api", "openapi_document", "ops_app"]
