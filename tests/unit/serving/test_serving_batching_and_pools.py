"""Adaptive batching, encrypted hot reload, and veil's protos beside TF's names in one process."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from veil.modelcrypto import encrypt_bytes, generate_key, model_associated_data
from veil.serving import BatchingConfig, ModelConfig
from veil.serving._batching import Batcher

from ._support import ServerThread, half_plus_two_onnx


class _CountingModel:
    """A fake runtime that records each run's batch size."""

    def __init__(self) -> None:
        self.batches: list[int] = []

    def run(self, signature: Any, feeds: dict[str, Any], outputs: list[str]) -> list[Any]:
        self.batches.append(len(feeds["x"]))
        return [feeds["x"] * 2]


class _Target:
    def __init__(self, model: _CountingModel) -> None:
        self.model = model


def test_concurrent_requests_run_as_one_batch_and_split_back() -> None:
    """Requests within the wait window are concatenated; each gets its own rows back."""
    model = _CountingModel()
    batcher = Batcher(BatchingConfig(max_batch_size=64, max_wait_s=0.05))

    async def main() -> list[list[Any]]:
        calls = [
            batcher.run(_Target(model), None, {"x": np.full((n, 2), n, np.float32)}, ["y"])
            for n in (1, 2, 3)
        ]
        return await asyncio.gather(*calls)

    results = asyncio.run(main())
    assert model.batches == [6]
    for n, (y,) in zip((1, 2, 3), results, strict=True):
        np.testing.assert_array_equal(y, np.full((n, 2), 2 * n, np.float32))


def test_full_batches_run_at_once() -> None:
    """Reaching max_batch_size flushes without waiting for the window."""
    model = _CountingModel()
    batcher = Batcher(BatchingConfig(max_batch_size=2, max_wait_s=5))

    async def main() -> None:
        calls = [batcher.run(_Target(model), None, {"x": np.ones((1, 1))}, ["y"]) for _ in range(2)]
        await asyncio.wait_for(asyncio.gather(*calls), 2)

    asyncio.run(main())
    assert model.batches == [2]


def test_batched_server_answers_like_an_unbatched_one(
    serve: Callable[..., ServerThread], model_dir: Callable[..., ModelConfig]
) -> None:
    """A model with batching configured gives the same predictions."""
    config = model_dir("m", half_plus_two_onnx())
    batched = ModelConfig(config.name, config.base_path, batching=BatchingConfig(8, 0.001))
    server = serve(batched)
    response = httpx.post(f"{server.rest}/v1/models/m:predict", json={"instances": [2.0, 4.0]})
    assert response.json() == {"predictions": [3.0, 4.0]}


def test_new_encrypted_version_loads_with_the_key_already_given(
    tmp_path: Path, serve: Callable[..., ServerThread]
) -> None:
    """After the key arrived once, a new encrypted version dropped in is decrypted and served."""
    key = generate_key()
    base = tmp_path / "enc"

    def drop(version: int) -> None:
        ciphertext = encrypt_bytes(
            half_plus_two_onnx(), key=key, associated_data=model_associated_data("enc")
        )
        staging = tmp_path / f"staging{version}"
        staging.mkdir()
        (staging / "model.onnx.veil").write_bytes(ciphertext)
        staging.rename(base / str(version))

    base.mkdir()
    drop(1)
    server = serve(ModelConfig("enc", str(base)), file_system_poll_wait_s=0.05)
    server.server.set_model_key("enc", key)
    server.call(server.server.wait_loaded("enc", timeout=30))
    drop(2)
    deadline = time.monotonic() + 10
    versions: list[str] = []
    while time.monotonic() < deadline and versions != ["2"]:
        status = httpx.get(f"{server.rest}/v1/models/enc").json()
        versions = [s["version"] for s in status["model_version_status"]]
        time.sleep(0.05)
    assert versions == ["2"]
    assert sorted(p.name for p in (base / "2").iterdir()) == ["model.onnx.veil"]


def test_generated_protos_use_a_private_descriptor_pool() -> None:
    """TF's full names already in the default pool (as TensorFlow puts them) do not clash."""
    script = """
from google.protobuf import descriptor_pb2, descriptor_pool
# Register tensorflow.TensorProto & co. in the default pool first, as importing TF would.
from veil.serving._proto import _pool
from veil.serving._proto import tensor_pb2, types_pb2, tensor_shape_pb2
for module in (types_pb2, tensor_shape_pb2, tensor_pb2):
    proto = descriptor_pb2.FileDescriptorProto.FromString(module.DESCRIPTOR.serialized_pb)
    proto.name = "tensorflow/core/framework/" + proto.name.rsplit("/", 1)[-1]
    proto.dependency[:] = ["tensorflow/core/framework/" + d.rsplit("/", 1)[-1] for d in proto.dependency]
    descriptor_pool.Default().Add(proto)
assert descriptor_pool.Default().FindMessageTypeByName("tensorflow.TensorProto")
from veil.serving._proto import predict_pb2, prediction_service_pb2_grpc, model_service_pb2_grpc
assert predict_pb2.PredictRequest.DESCRIPTOR.file.pool is _pool.POOL
print("ok")
"""
    # A fresh interpreter: this test's own process must keep a clean default pool.
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.stdout.strip() == "ok", result.stderr
