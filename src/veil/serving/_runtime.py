"""The seam between the server and a model runtime: signatures and a thread-safe ``run``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from veil.serving._onnx import TensorSpec

__all__ = [
    "CLASSIFY_METHOD",
    "DEFAULT_SIGNATURE",
    "PREDICT_METHOD",
    "REGRESS_METHOD",
    "Servable",
    "Signature",
]

DEFAULT_SIGNATURE = "serving_default"
PREDICT_METHOD = "tensorflow/serving/predict"
CLASSIFY_METHOD = "tensorflow/serving/classify"
REGRESS_METHOD = "tensorflow/serving/regress"

Array = np.ndarray[Any, Any]


@dataclass(frozen=True)
class Signature:
    """A SignatureDef: input and output aliases (``TensorSpec.name``) and its method."""

    key: str
    method_name: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]


class Servable(Protocol):
    """A loaded model version.

    ``signature_def_map`` is the serialized ``tensorflow.serving.SignatureDefMap`` reported by
    the metadata APIs; ``run`` may be called from several threads at once.
    """

    @property
    def platform(self) -> str:
        """The KServe platform name, e.g. ``onnx_onnxv1``."""
        ...

    @property
    def signatures(self) -> Mapping[str, Signature]:
        """Signature key → signature."""
        ...

    @property
    def inline(self) -> bool:
        """Whether tiny requests may run on the event loop thread."""
        ...

    def signature_def_map(self) -> bytes:
        """The serialized SignatureDefMap."""
        ...

    def run(
        self, signature: Signature, feeds: Mapping[str, Array], outputs: Sequence[str]
    ) -> list[Any]:
        """Run ``signature`` with feeds and outputs keyed by alias."""
        ...
