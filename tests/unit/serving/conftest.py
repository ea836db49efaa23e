"""Fixtures for the inference server tests: tiny real ONNX models, TLS material, a server thread."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from veil.serving import ModelConfig, ServingConfig, TLSMaterial

from ._support import Digits, Pki, ServerThread, certificate, key_pem


@pytest.fixture(scope="session")
def digits() -> Digits:
    """A small skl2onnx MLPClassifier (no ZipMap) and a few test rows."""
    from skl2onnx import to_onnx
    from sklearn.datasets import load_digits
    from sklearn.neural_network import MLPClassifier

    data = load_digits()
    x = data.data[:200].astype(np.float32)
    classifier = MLPClassifier(hidden_layer_sizes=(16,), max_iter=50, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ConvergenceWarning: accuracy does not matter here
        classifier.fit(x, data.target[:200])
        model = to_onnx(
            classifier, x[:1], options={id(classifier): {"zipmap": False}}, target_opset=17
        )
    return Digits(onnx=model.SerializeToString(), rows=x[:5])


@pytest.fixture
def model_dir(tmp_path: Path) -> Callable[..., ModelConfig]:
    """Write ``<tmp>/models/<name>/<version>/<file>`` and return its ModelConfig."""

    def write(name: str, data: bytes, *, version: int = 1, file: str = "model.onnx") -> ModelConfig:
        directory = tmp_path / "models" / name / str(version)
        directory.mkdir(parents=True, exist_ok=True)
        (directory / file).write_bytes(data)
        return ModelConfig(name=name, base_path=str(tmp_path / "models" / name))

    return write


@pytest.fixture(scope="session")
def pki() -> Pki:
    """Throwaway TLS material made with ``cryptography``."""
    server_key = ec.generate_private_key(ec.SECP256R1())
    server_cert = certificate("localhost", server_key, None)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = certificate("veil test client CA", ca_key, None)
    client_key = ec.generate_private_key(ec.SECP256R1())
    client_cert = certificate("client", client_key, ("veil test client CA", ca_key))
    return Pki(
        server=TLSMaterial(cert_chain_pem=server_cert, private_key_pem=key_pem(server_key)),
        server_cert_pem=server_cert,
        client_cert_pem=client_cert,
        client_key_pem=key_pem(client_key),
        client_ca_pem=ca_cert,
    )


@pytest.fixture
def serve() -> Iterator[Callable[..., ServerThread]]:
    """Start servers on 127.0.0.1 with free ports; all are stopped at the end of the test."""
    started: list[ServerThread] = []

    def start(*models: ModelConfig, **settings: Any) -> ServerThread:
        config = ServingConfig(models=models, rest_port=0, grpc_port=0, **settings)
        thread = ServerThread(config).__enter__()
        started.append(thread)
        return thread

    yield start
    for thread in reversed(started):
        thread.__exit__(None, None, None)
