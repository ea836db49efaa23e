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
from veil.serving._metrics import Metrics
from veil.serving._onnx import TensorSpec
from veil.serving._repository import ModelRepository, VersionStatus
from veil.serving._runtime import DEFAULT_SIGNATURE, PREDICT_METHOD, Servable, Signature

__all__ = ["DEFAULT_SIGNATURE", "PREDICT_METHOD", "DataPlane", "Resolved", "tf_code"]

_log = logging.getLogger(__name__)

_INLINE_ELEMENTS = 4096

Array = np.ndarray[Any, Any]


@dataclass(frozen=True)
class Resolved:
    """A request's model after version resolution."""

    name: str
    version: int
    model: Servable

    def signature(self, name: str, method: str | None = None) -> Signature:
        """The named signature ("" = serving_default); TF Serving's errors when missing."""
        key = name or DEFAULT_SIGNATURE
        signature = self.model.signatures.get(key)
        if signature is None:
            raise ProtocolError(f'Serving signature name: "{key}" not found in signature def')
        if method is not None and signature.method_name != method:
            kind = method.rsplit("/", 1)[-1]
            noun = {"classify": "classification", "regress": "regression"}.get(kind, kind)
            raise ProtocolError(
                f"Expected {noun} signature method_name to be {method}. Was: "
                f"{signature.method_name}"
            )
        return signature


class DataPlane:
    """The operations REST and gRPC share; raises veil errors that adapters map to status codes."""

    def __init__(self, repository: ModelRepository) -> None:
        self._repository = repository
        self.batchers: dict[str, Any] = {}
        self.metrics = Metrics()

    @property
    def repository(self) -> ModelRepository:
        """The model repository."""
        return self._repository

    def resolve(
        self, name: str, *, version: int | None = None, label: str | None = None
    ) -> Resolved:
        """The servable for ``name``: the latest, a version, or a configured label."""
        if label is not None:
            version = self._repository.resolve_label(name, label)
        number, model = self._repository.available(name, version)
        return Resolved(name, number, model)

    def status(
        self, name: str, *, version: int | None = None, label: str | None = None
    ) -> list[VersionStatus]:
        """Version statuses for the model status APIs."""
        if label is not None:
            version = self._repository.resolve_label(name, label)
        return self._repository.statuses(name, version)

    def ready(self) -> bool:
        """Whether every configured model is available."""
        return all(state == "AVAILABLE" for state in self._repository.summary().values())

    async def predict(
        self,
        target: Resolved,
        inputs: Mapping[str, Array],
        output_filter: Sequence[str] = (),
        *,
        signature: Signature | None = None,
    ) -> dict[str, Array]:
        """Validate ``inputs`` against the signature and run it off the event loop (unless tiny)."""
        signature = signature or target.signature("")
        model = target.model
        strict = model.platform != "tensorflow_savedmodel"  # TF checks shapes itself
        feeds = _validated(target.name, signature.inputs, inputs, strict_shapes=strict)
        names = _output_names(signature.outputs, output_filter)
        batcher = self.batchers.get(target.name)
        if batcher is not None and signature.key == DEFAULT_SIGNATURE:
            results = await batcher.run(target, signature, feeds, names)
            return dict(zip(names, results, strict=True))
        elements = sum(array.size for array in feeds.values())
        try:
            if model.inline and elements <= _INLINE_ELEMENTS:
                results = model.run(signature, feeds, names)
            else:
                results = await asyncio.to_thread(model.run, signature, feeds, names)
        except Exception as exc:  # runtimes' errors are not a common class
            module = type(exc).__module__
            if module.startswith(("onnxruntime", "tensorflow")):
                raise ProtocolError(f"Inference failed: {_first_line(exc)}") from exc
            raise
        return {name: np.asarray(result) for name, result in zip(names, results, strict=True)}


def _validated(
    model: str, specs: Sequence[TensorSpec], inputs: Mapping[str, Array], *, strict_shapes: bool
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
        if strict_shapes and spec.shape is not None and not _shape_ok(spec.shape, array.shape):
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


async def run_examples(
    dataplane: DataPlane, target: Resolved, signature_name: str, method: str, examples: list[bytes]
) -> Any:
    """Classify or regress serialized Examples with a signature of ``method``."""
    from veil.serving._examples import input_alias, to_results

    signature = target.signature(signature_name, method)
    alias = input_alias(signature.inputs)
    batch = np.empty(len(examples), dtype=object)
    batch[:] = examples
    names = [spec.name for spec in signature.outputs]
    try:
        results = await asyncio.to_thread(target.model.run, signature, {alias: batch}, names)
    except Exception as exc:  # runtimes' errors are not a common class
        if type(exc).__module__.startswith(("onnxruntime", "tensorflow")):
            raise ProtocolError(f"Inference failed: {_first_line(exc)}") from exc
        raise
    outputs = {name: np.asarray(value) for name, value in zip(names, results, strict=True)}
    return to_results(method, outputs, len(examples))
