"""The TensorFlow job: TF Serving's own SavedModels and stubs against ``veil serve``.

Runs only where TensorFlow and tensorflow-serving-api are installed (``make test-tensorflow``,
the ``.venv-tf`` environment); elsewhere every test here is skipped.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.integration._deploy import Services
from tests.tensorflow._onnx_twins import half_plus_three_onnx, half_plus_two_onnx

HAVE_TF = all(importlib.util.find_spec(m) for m in ("tensorflow", "tensorflow_serving"))
# Without TensorFlow (the default environment) these tests are not collected at all.
collect_ignore_glob = [] if HAVE_TF else ["test_*.py"]

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = Path(
    os.environ.get("VEIL_TFSERVING_FIXTURES", ROOT.parent / "shared" / "fixtures" / "tfserving")
)

CONFIG = """
model_config_list {
  config { name: "default" base_path: "%(f)s/saved_model_half_plus_two_cpu" }
  config { name: "half_plus_two" base_path: "%(f)s/saved_model_half_plus_two_cpu" }
  config {
    name: "saved_model_half_plus_two_2_versions"
    base_path: "%(f)s/saved_model_half_plus_two_2_versions"
    model_platform: "tensorflow"
    model_version_policy { specific { versions: 123 } }
    version_labels { key: "Version_Label" value: 123 }
  }
  config { name: "saved_model_half_plus_three" base_path: "%(f)s/saved_model_half_plus_three" }
}
"""


@dataclass
class Server:
    """Addresses of one running ``veil serve``."""

    rest: str
    grpc: str


def _start(services: Services, config: Path, ready: Path) -> Server:
    process = services.start(
        config.stem, "serve", "--model_config_file", config, "--port", "0",
        "--rest_api_port", "0", "--file_system_poll_wait_seconds", "0", "--ready-file", ready,
    )  # fmt: skip
    ports = services.wait_ready(process, ready, timeout=120)
    return Server(f"127.0.0.1:{ports['rest_port']}", f"127.0.0.1:{ports['grpc_port']}")


@pytest.fixture(scope="session")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Server]]:
    """``tf``: TF Serving's SavedModels; ``onnx``: ONNX models computing the same functions."""
    if not (FIXTURES / "half_plus_two_model_metadata.json").exists():
        pytest.skip(f"TF Serving fixtures not found at {FIXTURES}")
    d = tmp_path_factory.mktemp("tfserving")
    (d / "tf.config").write_text(CONFIG % {"f": FIXTURES})
    onnx_root = d / "onnx"
    for name, model in (
        ("saved_model_half_plus_two_cpu", half_plus_two_onnx()),
        ("saved_model_half_plus_two_2_versions", half_plus_two_onnx()),
        ("saved_model_half_plus_three", half_plus_three_onnx()),
    ):
        (onnx_root / name / "00000123").mkdir(parents=True)
        (onnx_root / name / "00000123" / "model.onnx").write_bytes(model)
    (d / "onnx.config").write_text(CONFIG % {"f": onnx_root})
    text = (d / "onnx.config").read_text().replace('model_platform: "tensorflow"', "")
    (d / "onnx.config").write_text(text)
    services = Services(d)
    try:
        yield {
            "tf": _start(services, d / "tf.config", d / "tf.ready"),
            "onnx": _start(services, d / "onnx.config", d / "onnx.ready"),
        }
    finally:
        services.stop()
