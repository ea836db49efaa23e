"""TF Serving messages built from the data plane: ModelSpec, SignatureDefMap, model status."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from google.protobuf import json_format
from google.protobuf.message import Message

from veil.serving._proto import get_model_metadata_pb2, get_model_status_pb2, model_pb2
from veil.serving._repository import VersionStatus
from veil.serving._runtime import Servable

__all__ = ["model_spec", "signature_def_map", "status_response", "to_json_dict"]


def model_spec(name: str, version: int, signature_name: str) -> model_pb2.ModelSpec:
    """The ``model_spec`` echoed in responses (resolved version)."""
    spec = model_pb2.ModelSpec(name=name, signature_name=signature_name)
    spec.version.value = version
    return spec


def signature_def_map(model: Servable) -> get_model_metadata_pb2.SignatureDefMap:
    """The model's SignatureDefMap message."""
    signatures = get_model_metadata_pb2.SignatureDefMap()
    signatures.ParseFromString(model.signature_def_map())
    return signatures


def status_response(
    statuses: Sequence[VersionStatus],
) -> get_model_status_pb2.GetModelStatusResponse:
    """GetModelStatusResponse for the given versions."""
    response = get_model_status_pb2.GetModelStatusResponse()
    for status in statuses:
        response.model_version_status.add(
            version=status.version,
            state=status.state.value,
            status=get_model_status_pb2.StatusProto(
                error_code=status.error_code,
                error_message=status.error_message,
            ),
        )
    return response


def to_json_dict(message: Message) -> dict[str, Any]:
    """Proto3 JSON as TF Serving's REST API prints it (snake_case, defaults, int64 as strings)."""
    return json_format.MessageToDict(
        message, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
    )
