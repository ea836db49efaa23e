"""The demo model: an MLP trained offline on scikit-learn's bundled digits data, as ONNX."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

SEED = 20261205


@dataclass(frozen=True)
class DigitsModel:
    """ONNX bytes of the classifier and the held-out test split."""

    onnx_bytes: bytes
    x_test: npt.NDArray[np.float32]
    y_test: npt.NDArray[np.int64]


def train_digits_model(*, seed: int = SEED) -> DigitsModel:
    """Train ``MLPClassifier(hidden_layer_sizes=(64,))`` deterministically and export to ONNX.

    Needs the ``demo`` extra (scikit-learn, skl2onnx). No download: the digits data ship with
    scikit-learn. Inputs are scaled to [0, 1]; the ONNX graph has input ``X`` float[?, 64] and
    outputs ``label`` int64[?] and ``probabilities`` float[?, 10].
    """
    from skl2onnx import to_onnx
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
    from sklearn.neural_network import MLPClassifier

    digits = load_digits()
    x = (digits.data / 16.0).astype(np.float32)
    y = digits.target.astype(np.int64)
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=0.25, random_state=seed, stratify=y
    )
    clf = MLPClassifier(hidden_layer_sizes=(64,), max_iter=400, random_state=seed)
    clf.fit(x_train, y_train)
    onx = to_onnx(clf, x_train[:1], options={id(clf): {"zipmap": False}}, target_opset=17)
    return DigitsModel(onnx_bytes=onx.SerializeToString(), x_test=x_test, y_test=y_test)


def plaintext_accuracy(model: DigitsModel) -> float:
    """Accuracy of the plaintext model run directly in onnxruntime (the demo's reference)."""
    import onnxruntime as ort

    session = ort.InferenceSession(model.onnx_bytes, providers=["CPUExecutionProvider"])
    labels = session.run(["label"], {"X": model.x_test})[0]
    return float(np.mean(labels == model.y_test))
