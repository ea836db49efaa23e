"""Encrypted models: served only after their key arrives, decrypted in memory, never on disk."""

from __future__ import annotations

import secrets
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import onnx
import onnxruntime as ort
import pytest

from veil.errors import NotFoundError, StateError
from veil.modelcrypto import encrypt_bytes, generate_key, model_associated_data
from veil.serving import ModelConfig, ServingConfig

from ._support import Digits, ServerThread, half_plus_two_onnx

NAME = "secret"


@pytest.fixture
def key() -> bytes:
    """The model owner's key."""
    return generate_key()


@pytest.fixture
def encrypted(model_dir: Callable[..., ModelConfig], digits: Digits, key: bytes) -> ModelConfig:
    """The digits model, encrypted for the name "secret" as version 3."""
    ciphertext = encrypt_bytes(digits.onnx, key=key, associated_data=model_associated_data(NAME))
    return model_dir(NAME, ciphertext, version=3, file="model.onnx.veil")


def predict(server: ServerThread, digits: Digits) -> httpx.Response:
    """The digits rows, row format."""
    return httpx.post(
        f"{server.rest}/v1/models/{NAME}:predict",
        json={"instances": digits.rows.tolist()},
        timeout=10,
    )


def status(server: ServerThread) -> dict[str, object]:
    """The only version status of the encrypted model."""
    statuses = httpx.get(f"{server.rest}/v1/models/{NAME}", timeout=10).json()
    (entry,) = statuses["model_version_status"]
    return dict(entry)


def test_waits_for_key_then_serves_same_predictions(
    serve: Callable[..., ServerThread], encrypted: ModelConfig, digits: Digits, key: bytes
) -> None:
    """Before its key the model is not found; after it, predictions equal plaintext onnxruntime."""
    server = serve(encrypted)
    response = predict(server, digits)
    assert (response.status_code, response.json()) == (
        404,
        {"error": f"Servable not found for request: Latest({NAME})"},
    )
    assert status(server)["state"] == "START"
    assert server.server.model_states() == {NAME: "WAITING_FOR_KEY"}
    server.server.set_model_key(NAME, key)
    server.call(server.server.wait_loaded(NAME, timeout=30))
    session = ort.InferenceSession(digits.onnx, providers=["CPUExecutionProvider"])
    labels, _ = session.run(None, {"X": digits.rows})
    response = predict(server, digits)
    assert response.status_code == 200
    assert [row["label"] for row in response.json()["predictions"]] == labels.tolist()
    assert status(server)["state"] == "AVAILABLE"
    assert server.server.model_states() == {NAME: "AVAILABLE"}


def test_wrong_key_is_an_error_status_and_right_key_recovers(
    serve: Callable[..., ServerThread], encrypted: ModelConfig, digits: Digits, key: bytes
) -> None:
    """A wrong key leaves the version in END with an error; a later right key loads it."""
    server = serve(encrypted)
    server.server.set_model_key(None, generate_key())
    with pytest.raises(StateError, match="could not be decrypted"):
        server.call(server.server.wait_loaded(NAME, timeout=30))
    entry = status(server)
    assert entry["state"] == "END"
    assert entry["status"] == {
        "error_code": "DATA_LOSS",
        "error_message": f"Model {NAME} version 3 could not be decrypted: the key is wrong or the "
        "file was modified; provide the right key or re-encrypt the model.",
    }
    assert predict(server, digits).status_code == 404
    assert server.server.model_states() == {NAME: "ERROR"}
    server.server.set_model_key(NAME, key)
    server.call(server.server.wait_loaded(NAME, timeout=30))
    assert predict(server, digits).status_code == 200


def test_tampered_ciphertext_serves_nothing(
    serve: Callable[..., ServerThread], encrypted: ModelConfig, digits: Digits, key: bytes
) -> None:
    """A modified model file is rejected with an error status and predict stays 404."""
    path = Path(encrypted.base_path) / "3" / "model.onnx.veil"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    server = serve(encrypted)
    server.server.set_model_key(NAME, key)
    with pytest.raises(StateError):
        server.call(server.server.wait_loaded(NAME, timeout=30))
    assert status(server)["status"]["error_code"] == "DATA_LOSS"  # type: ignore[index]
    assert predict(server, digits).status_code == 404


def test_plaintext_never_reaches_the_disk(
    serve: Callable[..., ServerThread],
    model_dir: Callable[..., ModelConfig],
    digits: Digits,
    key: bytes,
) -> None:
    """After loading, no new file in the model or temp directory holds the plaintext."""
    marker = f"veil-plaintext-marker-{secrets.token_hex(16)}"
    model = onnx.load_from_string(digits.onnx)
    model.doc_string = marker  # a byte string that exists only in this test's plaintext
    ciphertext = encrypt_bytes(
        model.SerializeToString(), key=key, associated_data=model_associated_data(NAME)
    )
    config = model_dir(NAME, ciphertext, file="model.onnx.veil")
    started = time.time()
    server = serve(config)
    server.server.set_model_key(NAME, key)
    server.call(server.server.wait_loaded(NAME, timeout=30))
    assert predict(server, digits).status_code == 200
    for root in (Path(config.base_path), Path(tempfile.gettempdir())):
        for path in root.rglob("*"):
            try:
                info = path.stat()
                if path.is_file() and info.st_mtime >= started - 1 and info.st_size < 1 << 26:
                    assert marker.encode() not in path.read_bytes(), path
            except OSError:
                continue
    assert sorted(p.name for p in Path(config.base_path).rglob("*")) == ["1", "model.onnx.veil"]


def test_key_given_before_start_is_used_at_start(
    encrypted: ModelConfig, model_dir: Callable[..., ModelConfig], key: bytes
) -> None:
    """set_model_key before start() is remembered; plaintext models load alongside."""
    plain = model_dir("half_plus_two", half_plus_two_onnx())
    thread = ServerThread(ServingConfig(models=(encrypted, plain), rest_port=0, grpc_port=0))
    thread.server.set_model_key(None, key)
    with thread:
        thread.call(thread.server.wait_loaded(NAME, timeout=30))
        assert thread.server.model_states() == {NAME: "AVAILABLE", "half_plus_two": "AVAILABLE"}


def test_unknown_model_key_is_refused(encrypted: ModelConfig, key: bytes) -> None:
    """Keys for models that are not configured raise NotFoundError."""
    thread = ServerThread(ServingConfig(models=(encrypted,), rest_port=0, grpc_port=0))
    with pytest.raises(NotFoundError):
        thread.server.set_model_key("other", key)
