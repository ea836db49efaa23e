"""Train the demo model offline and write it as ONNX (deterministic seed, no downloads).

    .venv/bin/python examples/make_digits_model.py examples/out

writes ``digits.onnx`` (an MLPClassifier on scikit-learn's bundled digits data, exported with
skl2onnx: input ``X`` float[?, 64] in [0, 1], outputs ``label`` and ``probabilities``) and
``digits-test.npz`` (the held-out split). ``veil demo`` trains the same model in memory.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from veil.testing import plaintext_accuracy, train_digits_model


def main(out_dir: Path) -> None:
    """Train, export and report the plaintext accuracy."""
    out_dir.mkdir(parents=True, exist_ok=True)
    model = train_digits_model()
    (out_dir / "digits.onnx").write_bytes(model.onnx_bytes)
    np.savez(out_dir / "digits-test.npz", x=model.x_test, y=model.y_test)
    print(f"wrote {out_dir / 'digits.onnx'} ({len(model.onnx_bytes)} bytes)")
    print(f"plaintext onnxruntime accuracy on the test split: {plaintext_accuracy(model):.4f}")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("examples/out"))
