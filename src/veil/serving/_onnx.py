"""The onnxruntime model runtime: build a session from bytes in memory, describe it, run it."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import onnxruntime as ort

from veil.errors import ConfigurationError
from veil.serving._dtypes import DType, by_onnx

__all__ = ["OnnxModel", "TensorSpec"]

_log = logging.getLogger(__name__)

# Models below this size with small inputs run on the event loop thread: a thread hop costs more
# than their inference (~50 us for a digits MLP).
_INLINE_MODEL_BYTES = 1 << 20


@dataclass(frozen=True)
class TensorSpec:
    """Name, element type and shape of a model input or output; None marks an unknown dim."""

    name: str
    dtype: DType
    shape: tuple[int | None, ...] | None  # None = unknown rank
    tensor_name: str = ""  # the graph tensor (TensorInfo.name); "<name>:0" when empty

    @property
    def graph_name(self) -> str:
        """TensorInfo.name, as the metadata APIs report it."""
        return self.tensor_name or f"{self.name}:0"

    def shape_text(self) -> str:
        """The shape as TF writes it, e.g. ``[-1,64]``."""
        if self.shape is None:
            return "<unknown>"
        return "[" + ",".join("-1" if d is None else str(d) for d in self.shape) + "]"


class OnnxModel:
    """A loaded ONNX model: one ``serving_default`` predict signature and a thread-safe ``run``."""

    platform = "onnx_onnxv1"

    def __init__(self, model_bytes: bytes, *, label: str) -> None:
        """Build an onnxruntime session from ``model_bytes`` (never from a file path).

        Raises :class:`ConfigurationError` if onnxruntime rejects the model or it has
        non-tensor inputs. Non-tensor outputs (e.g. ZipMap) are not served.
        """
        options = ort.SessionOptions()
        options.log_severity_level = 3
        try:
            self._session = ort.InferenceSession(
                model_bytes, sess_options=options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime raises several unrelated exception types
            raise ConfigurationError(
                f"onnxruntime could not load {label}: {type(exc).__name__}; check that the file "
                "is a valid ONNX model."
            ) from exc
        self.inputs = tuple(_spec(arg, label, "input") for arg in self._session.get_inputs())
        outputs = []
        for arg in self._session.get_outputs():
            if by_onnx(arg.type) is None:
                _log.warning(
                    "output not served: unsupported type",
                    extra={"model": label, "output": arg.name, "type": arg.type},
                )
                continue
            outputs.append(_spec(arg, label, "output"))
        if not outputs:
            raise ConfigurationError(f"{label} has no tensor outputs that can be served.")
        self.outputs = tuple(outputs)
        self.inline = len(model_bytes) <= _INLINE_MODEL_BYTES
        from veil.serving._runtime import DEFAULT_SIGNATURE, PREDICT_METHOD, Signature

        self.signatures = {
            DEFAULT_SIGNATURE: Signature(
                DEFAULT_SIGNATURE, PREDICT_METHOD, self.inputs, self.outputs
            )
        }

    def signature_def_map(self) -> bytes:
        """A synthesized ``serving_default`` predict SignatureDefMap, serialized."""
        from veil.serving._signatures import signature_def_map

        return signature_def_map(self.signatures)

    def run(
        self, signature: Any, feeds: Mapping[str, np.ndarray[Any, Any]], outputs: Sequence[str]
    ) -> list[Any]:
        """Run the model; may be called from several threads at once (onnxruntime is re-entrant)."""
        return list(self._session.run(list(outputs), dict(feeds)))


def _spec(arg: Any, label: str, kind: str) -> TensorSpec:
    dtype = by_onnx(arg.type)
    if dtype is None:
        raise ConfigurationError(
            f"{label} has {kind} {arg.name!r} of unsupported type {arg.type}; only tensors of "
            "numeric, bool or string elements can be served."
        )
    shape = arg.shape
    # onnxruntime reports an input without a shape (any rank) as [], like a scalar; treat both as
    # unknown rank and let onnxruntime check scalars itself.
    dims = None if not shape else tuple(d if isinstance(d, int) and d >= 0 else None for d in shape)
    return TensorSpec(name=arg.name, dtype=dtype, shape=dims)
