"""SignatureDefMaps: synthesized for ONNX models, read from a SavedModel's ``saved_model.pb``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from google.protobuf.message import DecodeError

from veil.errors import ConfigurationError
from veil.serving._dtypes import by_tf
from veil.serving._onnx import TensorSpec
from veil.serving._proto import get_model_metadata_pb2, meta_graph_pb2, saved_model_pb2
from veil.serving._runtime import Signature

__all__ = ["read_saved_model_signatures", "signature_def_map"]

SERVE_TAG = "serve"


def signature_def_map(signatures: Mapping[str, Signature]) -> bytes:
    """A serialized SignatureDefMap for ``signatures`` (TensorInfo names ``<alias>:0``)."""
    result = get_model_metadata_pb2.SignatureDefMap()
    for key, signature in signatures.items():
        target = result.signature_def[key]
        target.method_name = signature.method_name
        _fill(target.inputs, signature.inputs)
        _fill(target.outputs, signature.outputs)
    return result.SerializeToString()


def read_saved_model_signatures(
    saved_model_pb: bytes, *, label: str
) -> tuple[dict[str, Signature], bytes]:
    """The signatures of the ``serve`` meta graph and its SignatureDefMap, read without TF."""
    saved = saved_model_pb2.SavedModel()
    try:
        saved.ParseFromString(saved_model_pb)
    except DecodeError:
        raise ConfigurationError(f"{label}: saved_model.pb is not a SavedModel.") from None
    for graph in saved.meta_graphs:
        if SERVE_TAG in graph.meta_info_def.tags:
            break
    else:
        raise ConfigurationError(f"{label}: the SavedModel has no meta graph tagged 'serve'.")
    signatures = {}
    for key, definition in graph.signature_def.items():
        signatures[key] = Signature(
            key,
            definition.method_name,
            tuple(_spec(alias, info) for alias, info in sorted(definition.inputs.items())),
            tuple(_spec(alias, info) for alias, info in sorted(definition.outputs.items())),
        )
    result = get_model_metadata_pb2.SignatureDefMap()
    for key, definition in graph.signature_def.items():
        result.signature_def[key].ParseFromString(definition.SerializeToString())
    return signatures, result.SerializeToString()


def _spec(alias: str, info: meta_graph_pb2.TensorInfo) -> TensorSpec:
    dtype = by_tf(info.dtype)
    if dtype is None:
        dtype = by_tf(7)  # unsupported types are passed through as bytes
    assert dtype is not None  # noqa: S101 - DT_STRING is in the table
    shape = (
        None
        if info.tensor_shape.unknown_rank or not info.HasField("tensor_shape")
        else tuple(None if d.size < 0 else d.size for d in info.tensor_shape.dim)
    )
    return TensorSpec(name=alias, dtype=dtype, shape=shape, tensor_name=info.name)


def _fill(target: Any, specs: Sequence[TensorSpec]) -> None:
    for spec in specs:
        info: meta_graph_pb2.TensorInfo = target[spec.name]
        info.name = spec.graph_name
        info.dtype = spec.dtype.tf_enum  # type: ignore[assignment]  # stubs want the enum type
        if spec.shape is None:
            info.tensor_shape.unknown_rank = True
        for size in spec.shape or ():
            info.tensor_shape.dim.add(size=-1 if size is None else size)
