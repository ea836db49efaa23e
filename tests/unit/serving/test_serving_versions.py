"""Version policies, labels, hot reload and TF Serving's config files."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import grpc
import httpx
import pytest

from veil.errors import ConfigurationError
from veil.serving import (
    ModelConfig,
    VersionPolicy,
    parse_model_config,
    parse_ssl_config,
)
from veil.serving._proto import model_management_pb2, model_service_pb2_grpc

from ._support import Pki, ServerThread, add_onnx, half_plus_two_onnx

CONFIG = """
model_config_list {
  config {
    name: "hpt"
    base_path: "%s"
    model_platform: "onnx"
    model_version_policy { specific { versions: 1 versions: 2 } }
    version_labels { key: "stable" value: 1 }
    version_labels { key: "canary" value: 2 }
  }
  config {
    name: "every"
    base_path: "%s"
    model_version_policy { all {} }
  }
}
"""


def _versions(root: Path, name: str, numbers: list[int], data: bytes) -> str:
    for number in numbers:
        (root / name / str(number)).mkdir(parents=True, exist_ok=True)
        (root / name / str(number) / "model.onnx").write_bytes(data)
    return str(root / name)


def test_model_config_file_parses_policies_and_labels(tmp_path: Path) -> None:
    """model_config_list in text format gives names, paths, policies and labels."""
    hpt, every = parse_model_config(CONFIG % ("/m/hpt", "/m/every"))
    assert (hpt.name, hpt.base_path, hpt.platform) == ("hpt", "/m/hpt", "onnx")
    assert hpt.version_policy == VersionPolicy.specific([1, 2])
    assert hpt.labels == {"stable": 1, "canary": 2}
    assert every.version_policy == VersionPolicy.all()


@pytest.mark.parametrize(
    "text",
    [
        "model_config_list { config { name: 'a' base_path: '/x' model_platform: 'pytorch' } }",
        "model_config_list { config { name: 'a' nonsense: 1 } }",
        "model_config_list { config { name: 'a/b' base_path: '/x' } }",
        "model_config_list { config { name: 'a' base_path: '/x' version_labels { key: 'a b' value: 1 } } }",
    ],
)
def test_bad_model_config_is_a_configuration_error(text: str) -> None:
    """Unknown fields, platforms, names and labels are refused at start."""
    with pytest.raises(ConfigurationError):
        parse_model_config(text)


def test_version_policy_selects_like_tf_serving() -> None:
    """latest N, all and specific pick versions from those found."""
    found = [1, 5, 3]
    assert VersionPolicy.latest().select(found) == {5}
    assert VersionPolicy.latest(2).select(found) == {5, 3}
    assert VersionPolicy.all().select(found) == {1, 3, 5}
    assert VersionPolicy.specific([3, 9]).select(found) == {3}


def test_ssl_config_file_holds_pem_contents(pki: Pki) -> None:
    """SSLConfig carries the PEM texts; client_verify needs custom_ca."""
    key = pki.server.private_key_pem.decode().replace("\n", "\\n")
    cert = pki.server.cert_chain_pem.decode().replace("\n", "\\n")
    text = f'server_key: "{key}" server_cert: "{cert}"'
    material = parse_ssl_config(text)
    assert material.cert_chain_pem == pki.server.cert_chain_pem
    assert material.client_ca_pem is None
    with pytest.raises(ConfigurationError, match="client_verify needs custom_ca"):
        parse_ssl_config(text + " client_verify: true")


def test_labels_and_versions_route(tmp_path: Path, serve: Callable[..., ServerThread]) -> None:
    """Specific versions are served; labels route to their versions; unknown labels are 400."""
    models = parse_model_config(
        CONFIG
        % (
            _versions(tmp_path, "hpt", [1, 2, 3], half_plus_two_onnx()),
            _versions(tmp_path, "every", [4, 6], add_onnx()),
        )
    )
    server = serve(*models)
    with httpx.Client(base_url=server.rest, timeout=10) as client:
        status = client.get("/v1/models/hpt").json()["model_version_status"]
        assert [s["version"] for s in status] == ["2", "1"]
        assert (
            client.get("/v1/models/hpt/labels/stable").json()["model_version_status"][0]["version"]
            == "1"
        )
        body = {"instances": [1.0]}
        assert client.post("/v1/models/hpt/labels/canary:predict", json=body).json() == {
            "predictions": [2.5]
        }
        meta = client.get("/v1/models/hpt/labels/stable/metadata").json()
        assert meta["model_spec"]["version"] == "1"
        assert client.post("/v1/models/hpt/versions/3:predict", json=body).json() == {
            "error": "Servable not found for request: Specific(hpt, 3)"
        }
        response = client.post("/v1/models/hpt/labels/nope:predict", json=body)
        assert (response.status_code, response.json()) == (
            400,
            {"error": "Unrecognized servable version label: nope"},
        )
        every = client.get("/v1/models/every").json()["model_version_status"]
        assert [s["version"] for s in every] == ["6", "4"]


def test_new_version_is_served_without_restart(
    tmp_path: Path, serve: Callable[..., ServerThread]
) -> None:
    """A version directory dropped into the base path is loaded by polling; the old one retires."""
    base = _versions(tmp_path, "m", [1], half_plus_two_onnx())
    server = serve(ModelConfig("m", base), file_system_poll_wait_s=0.05)
    with httpx.Client(base_url=server.rest, timeout=10) as client:
        assert client.get("/v1/models/m").json()["model_version_status"][0]["version"] == "1"
        staging = tmp_path / "staging"
        staging.mkdir()
        (staging / "model.onnx").write_bytes(half_plus_two_onnx())
        staging.rename(Path(base) / "2")  # atomic, as deployments should do it
        deadline = time.monotonic() + 10
        versions: list[str] = []
        while time.monotonic() < deadline:
            versions = [
                s["version"] for s in client.get("/v1/models/m").json()["model_version_status"]
            ]
            if versions == ["2"]:
                break
            # Availability-preserving: some version answers at every moment of the rollover.
            answer = client.post("/v1/models/m:predict", json={"instances": [2.0]})
            assert answer.status_code == 200
            time.sleep(0.02)
        assert versions == ["2"]
        answer = client.post("/v1/models/m/versions/2:predict", json={"instances": [2.0]})
        assert answer.json() == {"predictions": [3.0]}


def test_reload_config_request_replaces_models(
    tmp_path: Path, serve: Callable[..., ServerThread]
) -> None:
    """ModelService.HandleReloadConfigRequest adds and drops models while serving."""
    first = _versions(tmp_path, "first", [1], half_plus_two_onnx())
    second = _versions(tmp_path, "second", [1], add_onnx())
    server = serve(ModelConfig("first", first))
    request = model_management_pb2.ReloadConfigRequest()
    added = request.config.model_config_list.config.add(name="second", base_path=second)
    added.version_labels["stable"] = 1
    with grpc.insecure_channel(server.grpc_target) as channel:
        stub = model_service_pb2_grpc.ModelServiceStub(channel)
        response = stub.HandleReloadConfigRequest(request, timeout=30)
    assert response.status.error_code == 0
    with httpx.Client(base_url=server.rest, timeout=10) as client:
        assert client.get("/v1/models/first").status_code == 404
        assert client.get("/v1/models/second/labels/stable").status_code == 200


def test_metrics_and_cors(tmp_path: Path, serve: Callable[..., ServerThread]) -> None:
    """Prometheus metrics use TF Serving's names; CORS answers preflights and adds headers."""
    server = serve(ModelConfig("m", _versions(tmp_path, "m", [1], half_plus_two_onnx())), cors=True)
    with httpx.Client(base_url=server.rest, timeout=10) as client:
        client.post("/v1/models/m:predict", json={"instances": [1.0]})
        client.post("/v1/models/m:predict", json={"nope": 1})
        text = client.get("/monitoring/prometheus/metrics").text
        assert ':tensorflow:serving:request_count{model_name="m",status="OK"} 1' in text
        assert ':tensorflow:serving:request_count{model_name="m",status="HTTP_400"} 1' in text
        assert ":tensorflow:serving:request_latency_bucket{" in text
        preflight = client.options("/v1/models/m:predict", headers={"Origin": "https://a.example"})
        assert preflight.status_code == 200
        assert preflight.headers["access-control-allow-methods"] == "POST, GET"
        missing = client.options("/v1/models/m:predict")
        assert missing.json() == {"error": "Origin header is missing in CORS preflight"}
        answer = client.get("/v1/models/m")
        assert answer.headers["access-control-allow-origin"] == "*"


def test_grpc_requests_are_counted_in_the_metrics(
    tmp_path: Path, serve: Callable[..., ServerThread]
) -> None:
    """gRPC Predict is counted with entrypoint GRPC, failures with their TF status code."""
    from veil.serving._proto import predict_pb2, prediction_service_pb2_grpc

    server = serve(ModelConfig("m", _versions(tmp_path, "m", [1], half_plus_two_onnx())))
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "m"
    tensor = request.inputs["x"]
    tensor.dtype = 1
    tensor.tensor_shape.dim.add(size=1)
    tensor.float_val.append(1.0)
    with grpc.insecure_channel(server.grpc_target) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        stub.Predict(request, timeout=10)
        request.model_spec.signature_name = "nope"
        with pytest.raises(grpc.RpcError):
            stub.Predict(request, timeout=10)
    text = httpx.get(f"{server.rest}/monitoring/prometheus/metrics").text
    assert ':tensorflow:serving:request_count{model_name="m",status="OK"} 1' in text
    assert ':tensorflow:serving:request_count{model_name="m",status="INVALID_ARGUMENT"} 1' in text
    assert 'API="Predict",entrypoint="GRPC"' in text


def test_saved_model_without_tensorflow_says_which_extra_to_install(
    tmp_path: Path, serve: Callable[..., ServerThread]
) -> None:
    """Without veil[tensorflow], a SavedModel version ends in an error naming the extra."""
    import importlib.util

    if importlib.util.find_spec("tensorflow") is not None:
        pytest.skip("TensorFlow is installed; tests/tensorflow covers SavedModels")
    version = tmp_path / "sm" / "123"
    version.mkdir(parents=True)
    (version / "saved_model.pb").write_bytes(b"")
    server = serve(ModelConfig("sm", str(tmp_path / "sm")))
    (status,) = httpx.get(f"{server.rest}/v1/models/sm").json()["model_version_status"]
    assert status["state"] == "END"
    assert "install veil[tensorflow]" in status["status"]["error_message"]
