"""Protocol-agnostic inference: resolve a model version, validate inputs, run, report status."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from veil.errors import (
    AuthorizationError,
    ConfigurationError,
    Error,
    NotFoundError,
    ProtocolError,
    StateError,
    VerificationError,
)
from veil.serving._dtypes import by_numpy
from veil.serving._onnx import OnnxModel, TensorSpec
from veil.serving._repository import ModelRepository, VersionStatus

__all__ = ["DEFAULT_SIGNATURE", "DataPlane", "Resolved", "tf_code"]

_log = logging.getLogger(__name__)

DEFAULT_SIGNATURE = "serving_default"
PREDICT_METHOD = "tensorflow/serving/predict"
_INLINE_ELEMENTS = 4096

Array = np.ndarray[Any, Any]


@dataclass(frozen=True)
class Resolved:
    """A request's model after version resolution."""

    name: str
    version: int
    model: OnnxModel


class DataPlane:
    """The operations REST and gRPC share; raises veil errors that adapters map to status codes."""

    def __init__(self, repository: ModelRepository) -> None:
        self._repository = repository

    def resolve(
        self, name: str, *, version: int | None = None, label: str | None = None
    ) -> Resolved:
        """The servable for ``name`` (latest, a version, or a label; no labels are configured)."""
        if label is not None:
            raise ProtocolError(f"Unrecognized servable version label: {label}")
        number, model = self._repository.available(name, version)
        return Resolved(name, number, model)

    def status(
        self, name: str, *, version: int | None = None, label: str | None = None
    ) -> list[VersionStatus]:
        """Version statuses for the model status APIs."""
        if label is not None:
            raise ProtocolError(f"Unrecognized servable version label: {label}")
        return self._repository.statuses(name, version)

    def ready(self) -> bool:
        """Whether every configured model is available."""
        return all(state == "AVAILABLE" for state in self._repository.summary().values())

    @staticmethod
    def check_signature(signature_name: str) -> str:
        """The signature to use; ONNX models have exactly one, ``serving_default``."""
        if signature_name in ("", DEFAULT_SIGNATURE):
            return DEFAULT_SIGNATURE
        raise ProtocolError(
            f'Serving signature name: "{signature_name}" not found in signature def'
        )

    async def predict(
        self,
        target: Resolved,
        inputs: Mapping[str, Array],
        output_filter: Sequence[str] = (),
    ) -> dict[str, Array]:
        """Validate ``inputs`` against the model and run it off the event loop (unless tiny)."""
        model = target.model
        feeds = _validated(target.name, model.inputs, inputs)
        names = _output_names(model.outputs, output_filter)
        elements = sum(array.size for array in feeds.values())
        try:
            if model.inline and elements <= _INLINE_ELEMENTS:
                results = model.run(feeds, names)
            else:
                results = await asyncio.to_thread(model.run, feeds, names)
        except Exception as exc:  # onnxruntime's errors are not a common class
            if type(exc).__module__.startswith("onnxruntime"):
                raise ProtocolError(f"Inference failed: {_first_line(exc)}") from exc
            raise
        return {name: np.asarray(result) for name, result in zip(names, results, strict=True)}


def _validated(
    model: str, specs: Sequence[TensorSpec], inputs: Mapping[str, Array]
) -> dict[str, Array]:
    expected = {spec.name for spec in specs}
    extra, missing = sorted(set(inputs) - expected), sorted(expected - set(inputs))
    if extra or missing:
        raise ProtocolError(
            f"Request inputs do not match required inputs for model `{model}`. "
            f"Send extra: {{{','.join(extra)}}}. Missing but required: {{{','.join(missing)}}}."
        )
    feeds = {}
    for index, spec in enumerate(specs):
        array = inputs[spec.name]
        if array.dtype != spec.dtype.numpy and not (
            spec.dtype.is_string and array.dtype.kind in "OUS"
        ):
            got = _tf_name(array)
            raise ProtocolError(
                f"Expects arg[{index}] to be {spec.dtype.tf_name} but {got} is provided"
            )
        if spec.shape is not None and not _shape_ok(spec.shape, array.shape):
            raise ProtocolError(
                f"Input {spec.name} has shape {_text(array.shape)} but the model expects "
                f"{spec.shape_text()} (-1 = any size)."
            )
        feeds[spec.name] = array.astype(object) if spec.dtype.is_string else array
    return feeds


def _output_names(specs: Sequence[TensorSpec], output_filter: Sequence[str]) -> list[str]:
    names = [spec.name for spec in specs]
    if not output_filter:
        return names
    for alias in output_filter:
        if alias not in names:
            raise ProtocolError(
                f"output tensor alias not found in signature: {alias} Outputs expected to be in "
                f"the set {{{','.join(names)}}}."
            )
    return list(dict.fromkeys(output_filter))


def _shape_ok(expected: tuple[int | None, ...], actual: tuple[int, ...]) -> bool:
    return len(expected) == len(actual) and all(
        want is None or want == got for want, got in zip(expected, actual, strict=True)
    )


def _text(shape: tuple[int, ...]) -> str:
    return "[" + ",".join(str(d) for d in shape) + "]"


def _tf_name(array: Array) -> str:
    dtype = by_numpy(array.dtype)
    return dtype.tf_name if dtype is not None else str(array.dtype)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:500] if text else type(exc).__name__


# TF status codes (tensorflow.error.Code names) for veil errors; each adapter maps them onward.
def tf_code(exc: Error) -> str:
    """The tensorflow.error.Code name for a veil error."""
    table: tuple[tuple[type[Error], str], ...] = (
        (NotFoundError, "NOT_FOUND"),
        (ProtocolError, "INVALID_ARGUMENT"),
        (StateError, "FAILED_PRECONDITION"),
        (AuthorizationError, "PERMISSION_DENIED"),
        (VerificationError, "DATA_LOSS"),
        (ConfigurationError, "INTERNAL"),
    )
    for kind, code in table:
        if isinstance(exc, kind):
            return code
    return "INTERNAL"
