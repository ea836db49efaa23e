"""TF Serving JSON tensors (``instances`` / ``inputs``) ↔ numpy, as util/json_tensor.cc does."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import orjson

from veil.errors import ProtocolError
from veil.serving._dtypes import DType
from veil.serving._onnx import TensorSpec

__all__ = ["array_from_json", "columnar_inputs", "dumps", "json_value", "loads", "row_inputs"]

Array = np.ndarray[Any, Any]
_MAX_DEPTH = 64  # numpy's maximum number of dimensions
_ALLOWED_KINDS = {"f": "fiu", "i": "iu", "u": "iu", "b": "b"}


def loads(body: bytes) -> Any:
    """Parse a request body; accepts TF's bare NaN/Infinity tokens; ProtocolError when invalid."""
    if not body.strip():
        raise ProtocolError("JSON Parse error: The document is empty")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        if b"NaN" in body or b"Infinity" in body:
            try:
                return json.loads(body)
            except (ValueError, RecursionError):
                pass
        raise ProtocolError(f"JSON Parse error: Invalid value. at offset: {exc.pos}") from None


def dumps(document: Any, *, arrays: Iterable[Array] = ()) -> bytes:
    """Serialize a response holding ``arrays``; non-finite floats become bare NaN / Infinity.

    orjson would write them as null, so documents with non-finite values take the slower
    standard-library path, as TF Serving's writer does.
    """
    if all(a.dtype.kind != "f" or np.isfinite(a).all() for a in arrays):
        return orjson.dumps(document, option=orjson.OPT_SERIALIZE_NUMPY, default=_default)
    return json.dumps(_builtin(document), allow_nan=True, separators=(",", ":")).encode()


def row_inputs(instances: Any, specs: Sequence[TensorSpec]) -> dict[str, Array]:
    """Row format: ``instances`` is a list of values (one input) or of objects keyed by input."""
    if not isinstance(instances, list):
        raise ProtocolError("Expecting 'instances' to be an list/array")
    if not instances:
        raise ProtocolError("No values in 'instances' array")
    named = [isinstance(item, dict) and not _is_b64(item) for item in instances]
    if all(named):
        names = {spec.name for spec in specs}
        for index, item in enumerate(instances):
            if set(item) != names:
                raise ProtocolError(
                    f"Failed to process element: {index} of 'instances' list. JSON object has keys "
                    f"{{{','.join(sorted(item))}}} but the signature needs "
                    f"{{{','.join(sorted(names))}}}."
                )
        return {
            spec.name: array_from_json([item[spec.name] for item in instances], spec, "instances")
            for spec in specs
        }
    if any(named):
        index = named.index(not named[0])
        raise ProtocolError(
            f"Expecting all items of 'instances' to be of one kind; item {index} differs."
        )
    if len(specs) != 1:
        raise ProtocolError(
            "instances is a plain list, but expecting list of objects as multiple input tensors "
            "required as per tensorinfo_map"
        )
    return {specs[0].name: array_from_json(instances, specs[0], "instances")}


def columnar_inputs(inputs: Any, specs: Sequence[TensorSpec]) -> dict[str, Array]:
    """Columnar format: ``inputs`` is a value (one input) or an object keyed by input name."""
    if isinstance(inputs, dict) and not _is_b64(inputs):
        for spec in specs:
            if spec.name not in inputs:
                raise ProtocolError(f"Missing named input: {spec.name} in 'inputs' object.")
        extra = sorted(set(inputs) - {spec.name for spec in specs})
        if extra:
            raise ProtocolError(f"Unknown named input: {extra[0]} in 'inputs' object.")
        return {spec.name: array_from_json(inputs[spec.name], spec, "inputs") for spec in specs}
    if len(specs) != 1:
        raise ProtocolError(
            "inputs is a plain value/list, but expecting an object as multiple input tensors "
            "required as per tensorinfo_map"
        )
    return {specs[0].name: array_from_json(inputs, specs[0], "inputs")}


def array_from_json(value: Any, spec: TensorSpec, where: str) -> Array:
    """A nested JSON list as a numpy array of ``spec``'s dtype; ProtocolError on wrong types."""
    dtype = spec.dtype
    if dtype.is_string:
        return _strings(value, where)
    try:
        array = np.asarray(value)
    except ValueError:
        raise ProtocolError(
            f"Input {spec.name} in '{where}' is ragged or too deeply nested; every row must have "
            "the same shape."
        ) from None
    if array.size and array.dtype.kind not in _ALLOWED_KINDS[dtype.numpy.kind]:
        raise ProtocolError(_type_error(value, dtype))
    if array.size and dtype.numpy.kind in "iu":
        info = np.iinfo(dtype.numpy.type)  # type: ignore[type-var]
        if array.min() < info.min or array.max() > info.max:
            raise ProtocolError(f"Input {spec.name} has values out of range for {dtype.tf_name}.")
    return array.astype(dtype.numpy, copy=False)


def json_value(name: str, array: Array) -> Any:
    """An output tensor as a JSON-serializable value (numpy arrays are serialized by orjson)."""
    if array.dtype.kind in "OUS":
        as_b64 = name.endswith("_bytes")
        return _map_leaves(array.tolist(), lambda leaf: _string_out(leaf, as_b64=as_b64))
    return np.ascontiguousarray(array) if array.ndim else array.item()


def _strings(value: Any, where: str) -> Array:
    def convert(item: Any, depth: int) -> Any:
        if depth > _MAX_DEPTH:
            raise ProtocolError(f"Input in '{where}' is nested too deeply.")
        if isinstance(item, list):
            return [convert(element, depth + 1) for element in item]
        if isinstance(item, str):
            return item
        if _is_b64(item):
            try:
                return base64.b64decode(item["b64"], validate=True)
            except (binascii.Error, TypeError):
                raise ProtocolError("Unable to base64 decode a 'b64' value.") from None
        raise ProtocolError(_leaf_error(item, "string"))

    try:
        return np.array(convert(value, 0), dtype=object)
    except ValueError:
        raise ProtocolError(f"A string input in '{where}' is ragged.") from None


def _type_error(value: Any, dtype: DType) -> str:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, list):
            stack.extend(reversed(item))
            continue
        if _json_type_ok(item, dtype.numpy.kind):
            continue
        return _leaf_error(item, dtype.tf_name)
    return f"Input values are not of expected type: {dtype.tf_name}"


def _json_type_ok(item: Any, kind: str) -> bool:
    if isinstance(item, bool):
        return kind == "b"
    if isinstance(item, int):
        return kind in "fiu"
    return isinstance(item, float) and kind == "f"


def _leaf_error(item: Any, expected: str) -> str:
    kinds = {str: "String", bool: "Bool", int: "Number", float: "Number", dict: "Object"}
    kind = kinds.get(type(item), "Null" if item is None else type(item).__name__)
    shown = orjson.dumps(item).decode()[:200]
    return f"JSON Value: {shown} Type: {kind} is not of expected type: {expected}"


def _is_b64(item: Any) -> bool:
    return isinstance(item, dict) and len(item) == 1 and "b64" in item


def _string_out(leaf: Any, *, as_b64: bool) -> Any:
    raw = leaf.encode() if isinstance(leaf, str) else bytes(leaf)
    if as_b64:
        return {"b64": base64.b64encode(raw).decode()}
    return leaf if isinstance(leaf, str) else raw.decode("utf-8", errors="replace")


def _map_leaves(value: Any, function: Any) -> Any:
    if isinstance(value, list):
        return [_map_leaves(item, function) for item in value]
    return function(value)


def _default(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(type(value).__name__)


def _builtin(value: Any) -> Any:
    if isinstance(value, np.ndarray | np.generic):
        return value.tolist()
    if isinstance(value, Mapping):
        return {key: _builtin(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_builtin(item) for item in value]
    return value
