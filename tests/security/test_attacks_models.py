"""Attacks on encrypted models and on the inference API: ciphertext tampering, wrong keys, path
traversal, and requests whose decoded tensors are far larger than the request itself.

The untrusted cloud controls the model storage, so every byte of a ``model.onnx.veil`` file and
every directory name under the model base path is attacker-controlled here.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import httpx
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from tests.security.conftest import MODEL, Deployment
from tests.unit.serving._support import ServerThread, half_plus_two_onnx
from veil.errors import ConfigurationError
from veil.modelcrypto import SEGMENT_SIZE, encrypt_bytes, generate_key, model_associated_data
from veil.serving import ModelConfig, ServingConfig
from veil.serving._proto import predict_pb2, prediction_service_pb2_grpc, tensor_pb2

NAME = "victim"


def _padded_model() -> bytes:
    """half_plus_two with a 3.6 MB unused initializer: four 1 MiB ciphertext segments."""
    model = onnx.load_from_string(half_plus_two_onnx())
    padding = np.arange(900_000, dtype=np.float32)
    model.graph.initializer.append(helper.make_tensor("pad", TensorProto.FLOAT, [900_000], padding))
    return model.SerializeToString()


@pytest.fixture(scope="module")
def owner_key() -> bytes:
    return generate_key()


@pytest.fixture(scope="module")
def ciphertext(owner_key: bytes) -> bytes:
    data = encrypt_bytes(
        _padded_model(), key=owner_key, associated_data=model_associated_data(NAME)
    )
    assert len(data) > 3 * SEGMENT_SIZE
    return data


def _swap(data: bytes, i: int, j: int) -> bytes:
    a, b = sorted((i, j))
    seg = SEGMENT_SIZE
    return (
        data[: a * seg]
        + data[b * seg : (b + 1) * seg]
        + data[(a + 1) * seg : b * seg]
        + data[a * seg : (a + 1) * seg]
        + data[(b + 1) * seg :]
    )


def _flip(data: bytes, offset: int) -> bytes:
    out = bytearray(data)
    out[offset] ^= 0x01
    return bytes(out)


@pytest.fixture
def serve_file(tmp_path: Path) -> Iterator[Callable[..., tuple[dict[str, object], int]]]:
    """Serve one ``model.onnx.veil`` under NAME, give it a key, return (status, predict code)."""
    servers: list[ServerThread] = []

    def run(data: bytes, key: bytes, *, name: str = NAME) -> tuple[dict[str, object], int]:
        version = tmp_path / name / "1"
        version.mkdir(parents=True, exist_ok=True)
        (version / "model.onnx.veil").write_bytes(data)
        config = ServingConfig(
            models=(ModelConfig(name=name, base_path=str(tmp_path / name)),),
            rest_port=0,
            grpc_port=0,
        )
        server = ServerThread(config)
        servers.append(server.__enter__())
        server.server.set_model_key(name, key)
        deadline = time.monotonic() + 30
        status: dict[str, object] = {}
        while time.monotonic() < deadline:
            (status,) = httpx.get(f"{server.rest}/v1/models/{name}", timeout=10).json()[
                "model_version_status"
            ]
            if status["state"] in ("AVAILABLE", "END"):
                break
            time.sleep(0.02)
        code = httpx.post(
            f"{server.rest}/v1/models/{name}:predict", json={"instances": [1.0]}, timeout=10
        ).status_code
        return status, code

    yield run
    for server in servers:
        server.__exit__(None, None, None)


TAMPERING: dict[str, Callable[[bytes], bytes]] = {
    "header-bit-flipped": lambda c: _flip(c, 5),
    "first-segment-bit-flipped": lambda c: _flip(c, 1000),
    "middle-segment-bit-flipped": lambda c: _flip(c, 2 * SEGMENT_SIZE + 77),
    "tag-bit-flipped": lambda c: _flip(c, len(c) - 1),
    "truncated-at-a-segment-boundary": lambda c: c[: 3 * SEGMENT_SIZE],
    "truncated-mid-segment": lambda c: c[: 2 * SEGMENT_SIZE + 500],
    "last-byte-dropped": lambda c: c[:-1],
    "segments-reordered": lambda c: _swap(c, 1, 2),
    "segment-duplicated": lambda c: c[: 2 * SEGMENT_SIZE] + c[SEGMENT_SIZE:],
    "bytes-appended": lambda c: c + b"\x00" * 17,
    "empty-file": lambda c: b"",
    "header-only": lambda c: c[:40],
}


@pytest.mark.parametrize("tamper", list(TAMPERING), ids=list(TAMPERING))
def test_tampered_model_ciphertext_is_never_served(
    serve_file: Callable[..., tuple[dict[str, object], int]],
    ciphertext: bytes,
    owner_key: bytes,
    tamper: str,
) -> None:
    """Flipped, truncated, reordered, duplicated or extended ciphertext: END, predict 404."""
    status, code = serve_file(TAMPERING[tamper](ciphertext), owner_key)
    assert status["state"] == "END", status
    assert code == 404


def test_untampered_ciphertext_is_served(
    serve_file: Callable[..., tuple[dict[str, object], int]], ciphertext: bytes, owner_key: bytes
) -> None:
    """Control for the tampering tests: the same file, untouched, is AVAILABLE and predicts."""
    status, code = serve_file(ciphertext, owner_key)
    assert (status["state"], code) == ("AVAILABLE", 200)


def test_ciphertext_swapped_with_another_models_is_refused(
    serve_file: Callable[..., tuple[dict[str, object], int]], owner_key: bytes
) -> None:
    """Same owner key, but the file of model 'other' placed under this model's name: refused."""
    other = encrypt_bytes(
        half_plus_two_onnx(), key=owner_key, associated_data=model_associated_data("other")
    )
    status, code = serve_file(other, owner_key)
    assert (status["state"], code) == ("END", 404)


def test_key_for_another_model_does_not_open_this_one(
    serve_file: Callable[..., tuple[dict[str, object], int]], ciphertext: bytes
) -> None:
    """A valid key of some other model (another owner's) cannot decrypt this model."""
    status, code = serve_file(ciphertext, generate_key())
    assert (status["state"], code) == ("END", 404)
    assert "could not be decrypted" in str(status)


def test_swapped_segments_between_two_files_of_the_same_key_are_refused(
    serve_file: Callable[..., tuple[dict[str, object], int]], ciphertext: bytes, owner_key: bytes
) -> None:
    """Segment 2 of another encryption of the same model (same key, same name): refused."""
    again = encrypt_bytes(
        _padded_model(), key=owner_key, associated_data=model_associated_data(NAME)
    )
    mixed = ciphertext[: 2 * SEGMENT_SIZE] + again[2 * SEGMENT_SIZE :]
    status, code = serve_file(mixed, owner_key)
    assert (status["state"], code) == ("END", 404)


# -- path traversal --------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["../etc", "a/b", "a:b", "x\x00y", "tab\tname", "line\nfeed", ""])
def test_model_names_that_could_traverse_paths_are_refused(name: str) -> None:
    """Model names with '/', ':', NUL, whitespace or nothing are refused at configuration."""
    with pytest.raises(ConfigurationError):
        ModelConfig(name=name, base_path="/tmp")


TRAVERSALS = [
    "/v1/models/..%2F..%2F..%2Fetc%2Fpasswd",
    "/v1/models/..%2f..%2fetc%2fpasswd:predict",
    "/v1/models/%2e%2e/versions/1",
    "/v1/models/../../etc/passwd",
    "/v1/models/hp2/versions/..%2F1/metadata",
    "/v1/models/hp2/labels/..%2F..%2Fetc",
    "/v2/models/..%2F..%2Fetc%2Fpasswd/infer",
    "/v2/models/%2e%2e/versions/1/ready",
    "/v2/models/hp2/versions/..%2F1",
]


@pytest.mark.parametrize("path", TRAVERSALS)
def test_path_traversal_in_model_urls_finds_nothing(deployment: Deployment, path: str) -> None:
    """Traversal in model names, versions and labels is a 4xx; no file content comes back."""
    with deployment.rest() as http:
        method = "POST" if path.endswith((":predict", "/infer")) else "GET"
        resp = http.request(method, path, json={"instances": [1.0]} if method == "POST" else None)
    assert 400 <= resp.status_code < 500, (path, resp.status_code, resp.text)
    assert "root:" not in resp.text


def test_only_plain_integer_version_directories_are_loaded(
    tmp_path: Path, owner_key: bytes
) -> None:
    """Version directories named '..', '-1', '٣' (a non-ASCII digit), '1e9', '+4' or a number
    beyond int64 are ignored; version 2 is served and the status API answers (no 5xx)."""
    base = tmp_path / "hp2"
    for odd in ("-1", "\u0663", "1e9", "+4", " 5", "0x6", "99999999999999999999999"):
        (base / odd).mkdir(parents=True)
        (base / odd / "model.onnx").write_bytes(half_plus_two_onnx())
    (base / "2").mkdir()
    (base / "2" / "model.onnx").write_bytes(half_plus_two_onnx())
    config = ServingConfig(
        models=(ModelConfig(name="hp2", base_path=str(base)),), rest_port=0, grpc_port=0
    )
    with ServerThread(config) as server:
        resp = httpx.get(f"{server.rest}/v1/models/hp2", timeout=10)
        assert resp.status_code == 200, resp.text
        (status,) = resp.json()["model_version_status"]
        assert status["version"] == "2", status


# -- amplification -----------------------------------------------------------------------------
def _vm_hwm(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")


def _rss(pid: int) -> int:
    return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _grpc_predict(deployment: Deployment, dims: list[int]) -> grpc.RpcError | None:
    creds = grpc.ssl_channel_credentials(root_certificates=deployment.coordinator.root_pem)
    request = predict_pb2.PredictRequest()
    request.model_spec.name = MODEL
    tensor = tensor_pb2.TensorProto(dtype=1, float_val=[1.0])
    for size in dims:
        tensor.tensor_shape.dim.add(size=size)
    request.inputs["x"].CopyFrom(tensor)
    port = deployment.grpc_addr.rsplit(":", 1)[1]
    options = [("grpc.max_receive_message_length", 1024 * 1024 * 1024)]
    with grpc.secure_channel(f"localhost:{port}", creds, options=options) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        try:
            stub.Predict(request, timeout=60)
        except grpc.RpcError as exc:
            return exc
    return None


def test_grpc_tensor_shape_cannot_amplify_a_tiny_request_into_a_huge_allocation(
    deployment: Deployment,
) -> None:
    """A 31-byte Predict request (one float_val, shape [2**25]) must be refused before the server
    allocates 128 MiB for it (and as much again for the output): otherwise a handful of such
    requests exhaust the server's memory. The decoded size must fit the request-size limit."""
    assert deployment.server is not None
    pid = deployment.server.pid
    baseline = _rss(pid)
    error = _grpc_predict(deployment, [2**25])
    grown = _vm_hwm(pid) - baseline
    assert error is not None, "the server decoded and ran a 128 MiB tensor from 31 bytes"
    assert error.code() in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.RESOURCE_EXHAUSTED)
    assert "larger than max" not in (error.details() or "")  # the client's limit, not the server's
    assert grown < 64 * 1024 * 1024, f"server peak memory grew by {grown >> 20} MiB"


@pytest.mark.parametrize(
    "dims", [[2**40], [0, 2**62], [1] * 70], ids=["4-TiB", "huge-empty", "70-dims"]
)
def test_grpc_impossible_tensor_shapes_are_invalid_argument(
    deployment: Deployment, dims: list[int]
) -> None:
    """Shapes numpy cannot even represent are the client's error (INVALID_ARGUMENT), not INTERNAL."""
    error = _grpc_predict(deployment, dims)
    assert error is not None
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, (error.code(), error.details())


def test_kserve_shape_with_more_than_64_dimensions_is_a_400(deployment: Deployment) -> None:
    """KServe infer with a 70-dimensional shape of one element: 400, not an internal error."""
    body = {"inputs": [{"name": "x", "shape": [1] * 70, "datatype": "FP32", "data": [1.0]}]}
    with deployment.rest() as http:
        resp = http.post(f"/v2/models/{MODEL}/infer", json=body)
    assert resp.status_code == 400, resp.text
