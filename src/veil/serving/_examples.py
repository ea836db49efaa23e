"""Classify and regress: tf.Example inputs (JSON ``examples`` or the gRPC ``Input``) and results.

Follows TF Serving's classifier.cc / regressor.cc: the signature's ``inputs`` tensor receives the
serialized Examples; a classify signature has ``classes`` and/or ``scores`` outputs, a regress
signature one ``outputs`` output with one value per example.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from veil.errors import ProtocolError
from veil.serving._proto import example_pb2, input_pb2

__all__ = ["Classification", "examples_from_input", "examples_from_json", "to_results"]

Array = np.ndarray[Any, Any]

CLASSIFY_INPUTS = "inputs"
CLASSIFY_CLASSES = "classes"
CLASSIFY_SCORES = "scores"
REGRESS_INPUTS = "inputs"
REGRESS_OUTPUTS = "outputs"


@dataclass(frozen=True)
class Classification:
    """Per example: (label, score) pairs."""

    classes: list[list[tuple[str, float]]]


def examples_from_json(document: dict[str, Any]) -> list[bytes]:
    """Serialized Examples from ``{"examples": [...], "context"?: {...}}``."""
    examples = document.get("examples")
    if not isinstance(examples, list):
        raise ProtocolError("'examples' key must be an array of objects")
    context = document.get("context")
    if context is not None and not isinstance(context, dict):
        raise ProtocolError("'context' key must be an object")
    result = []
    for item in examples:
        if not isinstance(item, dict):
            raise ProtocolError("'examples' key must be an array of objects")
        example = example_pb2.Example()
        for source in (context or {}, item):
            for name, value in source.items():
                _feature(example.features.feature[name], name, value)
        result.append(example.SerializeToString())
    if not result:
        raise ProtocolError("'examples' array is empty")
    return result


def examples_from_input(proto: input_pb2.Input) -> list[bytes]:
    """Serialized Examples of a gRPC ``Input`` (context merged into each example)."""
    kind = proto.WhichOneof("kind")
    if kind == "example_list":
        return [example.SerializeToString() for example in proto.example_list.examples]
    if kind == "example_list_with_context":
        listed = proto.example_list_with_context
        merged = []
        for example in listed.examples:
            combined = example_pb2.Example()
            combined.CopyFrom(listed.context)
            combined.MergeFrom(example)
            merged.append(combined.SerializeToString())
        return merged
    raise ProtocolError("Input is empty")


def to_results(method: str, outputs: dict[str, Array], count: int) -> Any:
    """Classification (per example list of (label, score)) or regression values."""
    if method.endswith("/classify"):
        scores, classes = outputs.get(CLASSIFY_SCORES), outputs.get(CLASSIFY_CLASSES)
        if scores is None and classes is None:
            raise ProtocolError("Expected classification signature outputs 'classes' or 'scores'")
        reference = scores if scores is not None else classes
        assert reference is not None  # noqa: S101 - checked above
        if reference.ndim != 2 or reference.shape[0] != count:
            raise ProtocolError(
                f"Expected output Tensor shape to be [{count}, num_classes] but got "
                f"{list(reference.shape)}"
            )
        result = []
        for row in range(count):
            pairs = []
            for column in range(reference.shape[1]):
                label = "" if classes is None else _text(classes[row, column])
                score = 0.0 if scores is None else scores[row, column]
                pairs.append((label, score))
            result.append(pairs)
        return Classification(result)
    values = outputs.get(REGRESS_OUTPUTS)
    if values is None:
        raise ProtocolError("No output tensor named outputs in the regression signature.")
    if values.shape not in ((count,), (count, 1)):
        raise ProtocolError(
            f"Expected output Tensor shape to be [{count}] or [{count}, 1] but got "
            f"{list(values.shape)}"
        )
    return values.reshape(count)


def input_alias(inputs: Sequence[Any]) -> str:
    """The alias of a classify/regress signature's single input (``inputs``)."""
    if len(inputs) != 1:
        raise ProtocolError("Expected one input Tensor.")
    return str(inputs[0].name)


def _feature(feature: example_pb2.Feature, name: str, value: Any) -> None:
    values = value if isinstance(value, list) else [value]
    if not values:
        raise ProtocolError(f"Feature {name} has no values")
    if all(isinstance(v, str) or _is_b64(v) for v in values):
        feature.bytes_list.value.extend(_bytes(v) for v in values)
    elif all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        feature.int64_list.value.extend(values)
    elif all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
        feature.float_list.value.extend(float(v) for v in values)
    else:
        raise ProtocolError(f"Feature {name} has values of mixed or unsupported types")


def _is_b64(value: Any) -> bool:
    return isinstance(value, dict) and list(value) == ["b64"]


def _bytes(value: Any) -> bytes:
    if isinstance(value, str):
        return value.encode()
    try:
        return base64.b64decode(value["b64"], validate=True)
    except (binascii.Error, TypeError):
        raise ProtocolError("Unable to base64 decode a 'b64' value.") from None


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
