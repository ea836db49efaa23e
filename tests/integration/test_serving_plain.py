"""``veil serve`` as TF Serving runs it: config file, hot reload, labels, tritonclient's binary v2."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import pytest

from tests.integration._deploy import Services
from tests.unit.serving._support import add_onnx, half_plus_two_onnx

pytestmark = pytest.mark.integration

CONFIG = """
model_config_list {
  config {
    name: "half_plus_two"
    base_path: "%s"
    model_platform: "onnx"
    model_version_policy { latest { num_versions: 2 } }
    version_labels { key: "stable" value: 1 }
  }
  config { name: "add" base_path: "%s" }
}
"""


@dataclass
class Plain:
    dir: Path
    rest: str
    grpc: str
    services: Services


@pytest.fixture(scope="module")
def plain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Plain]:
    """``veil serve --model_config_file`` without a coordinator, polling every 0.1 s."""
    d = tmp_path_factory.mktemp("plain")
    for name, data in (("half_plus_two", half_plus_two_onnx()), ("add", add_onnx())):
        (d / "models" / name / "1").mkdir(parents=True)
        (d / "models" / name / "1" / "model.onnx").write_bytes(data)
    (d / "models.config").write_text(
        CONFIG % (d / "models" / "half_plus_two", d / "models" / "add")
    )
    services = Services(d)
    try:
        server = services.start(
            "serve", "serve", "--model_config_file", d / "models.config",
            "--file_system_poll_wait_seconds", "0.1", "--port", "0", "--rest_api_port", "0",
            "--rest_api_num_threads=8", "--ready-file", d / "ready",
        )  # fmt: skip
        ports = services.wait_ready(server, d / "ready")
        yield Plain(
            d,
            f"127.0.0.1:{ports['rest_port']}",
            f"127.0.0.1:{ports['grpc_port']}",
            services,
        )
    finally:
        services.stop()


def test_plain_server_warns_loudly_that_nothing_is_confidential(plain: Plain) -> None:
    """Without a coordinator, the server says at start that nothing is confidential."""
    assert "nothing is confidential" in plain.services.logs()


def test_new_version_served_without_restart_and_labels_route(plain: Plain) -> None:
    """A version dropped into the base path is served by polling; the label keeps version 1."""
    base = plain.dir / "models" / "half_plus_two"
    staging = plain.dir / "staging"
    staging.mkdir()
    (staging / "model.onnx").write_bytes(half_plus_two_onnx())
    staging.rename(base / "2")
    with httpx.Client(base_url=f"http://{plain.rest}", timeout=10) as client:
        deadline = time.monotonic() + 20
        versions: list[str] = []
        while time.monotonic() < deadline and versions != ["2", "1"]:
            status = client.get("/v1/models/half_plus_two").json()
            versions = [s["version"] for s in status["model_version_status"]]
            time.sleep(0.05)
        assert versions == ["2", "1"]
        latest = client.get("/v1/models/half_plus_two/metadata").json()
        assert latest["model_spec"]["version"] == "2"
        stable = client.post(
            "/v1/models/half_plus_two/labels/stable:predict", json={"instances": [4.0]}
        )
        assert stable.json() == {"predictions": [4.0]}
        meta = client.get("/v1/models/half_plus_two/labels/stable/metadata").json()
        assert meta["model_spec"]["version"] == "1"


def test_tritonclient_http_defaults_use_binary_tensors(plain: Plain) -> None:
    """tritonclient.http with its default binary tensors infers against the v2 endpoint."""
    import tritonclient.http as triton

    client = triton.InferenceServerClient(plain.rest)
    try:
        assert client.is_server_live()
        assert client.is_model_ready("add")
        a = np.array([[1.0, 2.0], [3.0, 4.0]], dtype=np.float32)
        b = np.array([[10.0, 20.0], [30.0, 40.0]], dtype=np.float32)
        inputs = [triton.InferInput("a", [2, 2], "FP32"), triton.InferInput("b", [2, 2], "FP32")]
        inputs[0].set_data_from_numpy(a)  # binary_data=True by default
        inputs[1].set_data_from_numpy(b)
        result = client.infer("add", inputs)  # no outputs given: all outputs binary
        np.testing.assert_array_equal(result.as_numpy("sum"), a + b)
        requested = [triton.InferRequestedOutput("sum")]  # binary_data=True by default
        result = client.infer("add", inputs, outputs=requested, model_version="1")
        np.testing.assert_array_equal(result.as_numpy("sum"), a + b)
        json_inputs = [triton.InferInput("x", [3], "FP32")]
        json_inputs[0].set_data_from_numpy(np.array([1, 2, 5], np.float32), binary_data=False)
        out = [triton.InferRequestedOutput("y", binary_data=False)]
        result = client.infer("half_plus_two", json_inputs, outputs=out)
        np.testing.assert_array_equal(result.as_numpy("y"), [2.5, 3.0, 4.5])
        metadata = client.get_model_metadata("add")
        assert metadata["platform"] == "onnx_onnxv1"
    finally:
        client.close()
