"""``tensorflow.TensorProto`` ↔ numpy: accept tensor_content and typed ``*_val`` fields."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from veil.errors import ProtocolError
from veil.serving._dtypes import DType, by_numpy, by_tf
from veil.serving._proto import tensor_pb2, types_pb2

__all__ = ["array_from_proto", "array_to_proto"]

Array = np.ndarray[Any, Any]

# dtype number → (typed field, numpy type the field's values arrive as)
_FIELDS: dict[int, tuple[str, type[np.generic]]] = {
    1: ("float_val", np.float32),
    2: ("double_val", np.float64),
    3: ("int_val", np.int64),
    4: ("int_val", np.int64),
    5: ("int_val", np.int64),
    6: ("int_val", np.int64),
    7: ("string_val", np.object_),
    9: ("int64_val", np.int64),
    10: ("bool_val", np.bool_),
    17: ("int_val", np.int64),
    19: ("half_val", np.int64),
    22: ("uint32_val", np.uint64),
    23: ("uint64_val", np.uint64),
}


#: Largest decoded request tensor and rank accepted (TF Serving's practical limits).
MAX_TENSOR_BYTES = 64 * 1024 * 1024
MAX_DIMS = 64


def array_from_proto(name: str, proto: tensor_pb2.TensorProto) -> Array:
    """Decode a request tensor; ProtocolError if its dtype, shape or values are inconsistent."""
    dtype = by_tf(proto.dtype)
    if dtype is None:
        type_name = types_pb2.DataType.Name(proto.dtype) if proto.dtype in _names() else proto.dtype
        raise ProtocolError(f"Input {name}: tensor dtype {type_name} is not supported.")
    if proto.tensor_shape.unknown_rank:
        raise ProtocolError(f"Input {name}: tensors must have a known shape.")
    if len(proto.tensor_shape.dim) > MAX_DIMS:
        raise ProtocolError(
            f"Input {name}: {len(proto.tensor_shape.dim)} dimensions; at most {MAX_DIMS} are "
            "supported."
        )
    shape = tuple(dim.size for dim in proto.tensor_shape.dim)
    if any(size < 0 for size in shape):
        raise ProtocolError(f"Input {name}: shape {list(shape)} has a negative dimension.")
    count = math.prod(shape)
    # Refuse before allocating: one broadcast value must not expand into gigabytes.
    if count * max(dtype.numpy.itemsize, 1) > MAX_TENSOR_BYTES or any(
        size > MAX_TENSOR_BYTES for size in shape
    ):
        raise ProtocolError(
            f"Input {name}: shape {list(shape)} decodes to more than {MAX_TENSOR_BYTES} bytes."
        )
    if proto.tensor_content:
        return _from_content(name, proto.tensor_content, dtype, shape, count)
    field, wire_type = _FIELDS[dtype.tf_enum]
    values = getattr(proto, field)
    if len(values) not in (count, 1) and not (count == 0 and not values):
        raise ProtocolError(
            f"Input {name}: {len(values)} values in {field} do not fill shape {list(shape)}."
        )
    if dtype.is_string:
        flat = np.empty(len(values), dtype=object)
        flat[:] = list(values)
    else:
        flat = _checked(name, np.asarray(values, dtype=wire_type), dtype)
    if len(flat) == 1 and count != 1:
        return np.full(shape, flat[0], dtype=flat.dtype)
    return flat.reshape(shape)


def array_to_proto(array: Array) -> tensor_pb2.TensorProto:
    """Encode an output tensor with typed ``*_val`` fields, as TF Serving does by default."""
    dtype = by_numpy(array.dtype)
    if dtype is None:
        raise ProtocolError(f"Output dtype {array.dtype} cannot be sent as a TensorProto.")
    proto = tensor_pb2.TensorProto(dtype=types_pb2.DataType.Name(dtype.tf_enum))
    for size in array.shape:
        proto.tensor_shape.dim.add(size=size)
    field = getattr(proto, _FIELDS[dtype.tf_enum][0])
    flat = array.ravel()
    if dtype.is_string:
        field.extend(item.encode() if isinstance(item, str) else bytes(item) for item in flat)
    elif dtype.tf_enum == 19:
        field.extend(flat.view(np.uint16).tolist())
    else:
        field.extend(flat.tolist())
    return proto


def _from_content(
    name: str, content: bytes, dtype: DType, shape: tuple[int, ...], count: int
) -> Array:
    if dtype.is_string:
        raise ProtocolError(f"Input {name}: string tensors cannot use tensor_content.")
    wire = dtype.numpy.newbyteorder("<")
    if len(content) != count * wire.itemsize:
        raise ProtocolError(
            f"Input {name}: tensor_content has {len(content)} bytes but shape {list(shape)} of "
            f"{dtype.tf_name} needs {count * wire.itemsize}."
        )
    return np.frombuffer(content, dtype=wire).astype(dtype.numpy, copy=False).reshape(shape)


def _checked(name: str, values: Array, dtype: DType) -> Array:
    if dtype.tf_enum == 19:
        return values.astype(np.uint16).view(np.float16)
    if dtype.numpy.kind in "iu" and values.size:
        info = np.iinfo(dtype.numpy.type)  # type: ignore[type-var]
        if values.min() < info.min or values.max() > info.max:
            raise ProtocolError(f"Input {name}: values out of range for {dtype.tf_name}.")
    return values.astype(dtype.numpy, copy=False)


def _names() -> set[int]:
    return set(types_pb2.DataType.values())
