"""TF Serving messages built from the data plane: ModelSpec, SignatureDefMap, model status."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from google.protobuf import json_format
from google.protobuf.message import Message

from veil.serving._dataplane import DEFAULT_SIGNATURE, PREDICT_METHOD
from veil.serving._onnx import OnnxModel, TensorSpec
from veil.serving._proto import (
    get_model_metadata_pb2,
    get_model_status_pb2,
    meta_graph_pb2,
    model_pb2,
)
from veil.serving._repository import VersionStatus

__all__ = ["model_spec", "signature_def_map", "status_response", "to_json_dict"]


def model_spec(name: str, version: int, signature_name: str) -> model_pb2.ModelSpec:
    """The ``model_spec`` echoed in responses (resolved version)."""
    spec = model_pb2.ModelSpec(name=name, signature_name=signature_name)
    spec.version.value = version
    return spec


def signature_def_map(model: OnnxModel) -> get_model_metadata_pb2.SignatureDefMap:
    """A synthesized ``serving_default`` predict signature for an ONNX model."""
    signatures = get_model_metadata_pb2.SignatureDefMap()
    signature = signatures.signature_def[DEFAULT_SIGNATURE]
    signature.method_name = PREDICT_METHOD
    _fill(signature.inputs, model.inputs)
    _fill(signature.outputs, model.outputs)
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


def _fill(target: Any, specs: Sequence[TensorSpec]) -> None:
    for spec in specs:
        info: meta_graph_pb2.TensorInfo = target[spec.name]
        info.name = f"{spec.name}:0"
        info.dtype = spec.dtype.tf_enum  # type: ignore[assignment]  # stubs want the enum type
        if spec.shape is None:
            info.tensor_shape.unknown_rank = True
        for size in spec.shape or ():
            info.tensor_shape.dim.add(size=-1 if size is None else size)
