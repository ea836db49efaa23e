"""Encrypted SavedModels decrypt into TF's ram:// filesystem; TF and veil's protos share a process."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import httpx
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2 as tf_predict_pb2

from tests.tensorflow.conftest import FIXTURES
from tests.unit.serving._support import ServerThread
from veil.modelcrypto import encrypt_bytes, generate_key, model_associated_data
from veil.serving import ModelConfig, ServingConfig
from veil.serving._proto import predict_pb2 as veil_predict_pb2
from veil.serving._tensors import array_from_proto


def test_tensorflow_and_veil_protos_load_in_one_process() -> None:
    """Both define tensorflow.serving.PredictRequest; veil's live in a private pool."""
    assert tf_predict_pb2.PredictRequest.DESCRIPTOR.full_name == "tensorflow.serving.PredictRequest"
    assert (
        veil_predict_pb2.PredictRequest.DESCRIPTOR.full_name == "tensorflow.serving.PredictRequest"
    )
    theirs = tf_predict_pb2.PredictRequest()
    theirs.model_spec.name = "m"
    theirs.inputs["x"].CopyFrom(tf.make_tensor_proto([1.0, 2.0]))
    ours = veil_predict_pb2.PredictRequest.FromString(theirs.SerializeToString())
    assert ours.model_spec.name == "m"
    assert array_from_proto("x", ours.inputs["x"]).tolist() == [1.0, 2.0]


def test_encrypted_saved_model_is_served_without_plaintext_on_disk(tmp_path: Path) -> None:
    """saved_model.tar.veil is decrypted in memory and loaded through ram://, never to disk."""
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w") as tar:
        tar.add(FIXTURES / "saved_model_half_plus_three" / "00000123", arcname=".")
    key = generate_key()
    version = tmp_path / "models" / "h3" / "7"
    version.mkdir(parents=True)
    (version / "saved_model.tar.veil").write_bytes(
        encrypt_bytes(archive.getvalue(), key=key, associated_data=model_associated_data("h3"))
    )
    before = set(tmp_path.rglob("*"))
    config = ServingConfig(
        models=(ModelConfig("h3", str(tmp_path / "models" / "h3")),), rest_port=0, grpc_port=0
    )
    with ServerThread(config) as thread:
        thread.server.set_model_key("h3", key)
        thread.call(thread.server.wait_loaded("h3", timeout=60))
        response = httpx.post(
            f"{thread.rest}/v1/models/h3:predict", json={"instances": [1.0, 2.0, 5.0]}, timeout=30
        )
        assert response.json() == {"predictions": [3.5, 4.0, 5.5]}
    assert set(tmp_path.rglob("*")) == before
    assert [p.name for p in (tmp_path / "models" / "h3" / "7").iterdir()] == [
        "saved_model.tar.veil"
    ]
