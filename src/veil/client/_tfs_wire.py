"""The few TF Serving messages the inference client sends, built at import in a private pool.

The client layer may not import ``veil.serving`` (its generated protos), and must not depend on
TensorFlow; these descriptors have the same field numbers, so the wire format is TF Serving's.
"""

from __future__ import annotations

from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, wrappers_pb2

__all__ = ["PredictRequest", "PredictResponse"]

_F = descriptor_pb2.FieldDescriptorProto
_PACKAGE = "veil.client.tfs"


def _field(
    message: Any, name: str, number: int, kind: int, *, repeated: bool = False, type_name: str = ""
) -> None:
    field = message.field.add(name=name, number=number, type=kind)
    field.label = _F.LABEL_REPEATED if repeated else _F.LABEL_OPTIONAL
    if type_name:
        field.type_name = type_name


def _build() -> tuple[type[Any], type[Any]]:
    file = descriptor_pb2.FileDescriptorProto(
        name="veil/client/tfs_wire.proto",
        package=_PACKAGE,
        syntax="proto3",
        dependency=["google/protobuf/wrappers.proto"],
    )
    spec = file.message_type.add(name="ModelSpec")
    _field(spec, "name", 1, _F.TYPE_STRING)
    _field(spec, "version", 2, _F.TYPE_MESSAGE, type_name=".google.protobuf.Int64Value")
    _field(spec, "signature_name", 3, _F.TYPE_STRING)
    _field(spec, "version_label", 4, _F.TYPE_STRING)
    shape = file.message_type.add(name="TensorShapeProto")
    dim = shape.nested_type.add(name="Dim")
    _field(dim, "size", 1, _F.TYPE_INT64)
    _field(dim, "name", 2, _F.TYPE_STRING)
    _field(
        shape,
        "dim",
        2,
        _F.TYPE_MESSAGE,
        repeated=True,
        type_name=f".{_PACKAGE}.TensorShapeProto.Dim",
    )
    _field(shape, "unknown_rank", 3, _F.TYPE_BOOL)
    tensor = file.message_type.add(name="TensorProto")
    _field(tensor, "dtype", 1, _F.TYPE_INT32)
    _field(tensor, "tensor_shape", 2, _F.TYPE_MESSAGE, type_name=f".{_PACKAGE}.TensorShapeProto")
    _field(tensor, "tensor_content", 4, _F.TYPE_BYTES)
    for name, number, kind in (
        ("float_val", 5, _F.TYPE_FLOAT),
        ("double_val", 6, _F.TYPE_DOUBLE),
        ("int_val", 7, _F.TYPE_INT32),
        ("string_val", 8, _F.TYPE_BYTES),
        ("int64_val", 10, _F.TYPE_INT64),
        ("bool_val", 11, _F.TYPE_BOOL),
        ("half_val", 13, _F.TYPE_INT32),
        ("uint32_val", 16, _F.TYPE_UINT32),
        ("uint64_val", 17, _F.TYPE_UINT64),
    ):
        _field(tensor, name, number, kind, repeated=True)
    for message_name, map_name, number, spec_number in (
        ("PredictRequest", "inputs", 2, 1),
        ("PredictResponse", "outputs", 1, 2),
    ):
        message = file.message_type.add(name=message_name)
        _field(
            message, "model_spec", spec_number, _F.TYPE_MESSAGE, type_name=f".{_PACKAGE}.ModelSpec"
        )
        entry_name = map_name.capitalize() + "Entry"
        entry = message.nested_type.add(name=entry_name)
        entry.options.map_entry = True
        _field(entry, "key", 1, _F.TYPE_STRING)
        _field(entry, "value", 2, _F.TYPE_MESSAGE, type_name=f".{_PACKAGE}.TensorProto")
        _field(
            message, map_name, number, _F.TYPE_MESSAGE, repeated=True,
            type_name=f".{_PACKAGE}.{message_name}.{entry_name}",
        )  # fmt: skip
    pool = descriptor_pool.DescriptorPool()
    pool.AddSerializedFile(wrappers_pb2.DESCRIPTOR.serialized_pb)
    pool.Add(file)
    request = message_factory.GetMessageClass(
        pool.FindMessageTypeByName(f"{_PACKAGE}.PredictRequest")
    )
    response = message_factory.GetMessageClass(
        pool.FindMessageTypeByName(f"{_PACKAGE}.PredictResponse")
    )
    return request, response


PredictRequest, PredictResponse = _build()
