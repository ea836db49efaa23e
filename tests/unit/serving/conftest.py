"""Fixtures for the inference server tests: tiny real ONNX models, TLS material, a server thread."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import threading
import warnings
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import onnx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from onnx import TensorProto, helper

from veil.serving import InferenceServer, ModelConfig, ServingConfig, TLSMaterial

T = TypeVar("T")


def half_plus_two_onnx() -> bytes:
    """TF Serving's half_plus_two as ONNX: ``y = 0.5 * x + 2``, input ``x`` float [-1]."""
    graph = helper.make_graph(
        [
            helper.make_node("Mul", ["x", "half"], ["xh"]),
            helper.make_node("Add", ["xh", "two"], ["y"]),
        ],
        "half_plus_two",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch"])],
        initializer=[
            helper.make_tensor("half", TensorProto.FLOAT, [], [0.5]),
            helper.make_tensor("two", TensorProto.FLOAT, [], [2.0]),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()


def add_onnx() -> bytes:
    """A two-input model: ``sum = a + b`` over float [-1, 2] tensors."""
    graph = helper.make_graph(
        [helper.make_node("Add", ["a", "b"], ["sum"])],
        "add",
        [
            helper.make_tensor_value_info("a", TensorProto.FLOAT, ["batch", 2]),
            helper.make_tensor_value_info("b", TensorProto.FLOAT, ["batch", 2]),
        ],
        [helper.make_tensor_value_info("sum", TensorProto.FLOAT, ["batch", 2])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()


@dataclass(frozen=True)
class Digits:
    """An MLP trained on sklearn digits, as ONNX (outputs ``label`` int64, ``probabilities``)."""

    onnx: bytes
    rows: np.ndarray[Any, Any]


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


@dataclass(frozen=True)
class Pki:
    """A self-signed ECDSA server certificate (the clients' trust anchor) and a client CA."""

    server: TLSMaterial
    server_cert_pem: bytes
    client_cert_pem: bytes
    client_key_pem: bytes
    client_ca_pem: bytes


def _certificate(
    name: str, key: ec.EllipticCurvePrivateKey, issuer: tuple[str, ec.EllipticCurvePrivateKey] | None
) -> bytes:
    now = datetime.datetime.now(datetime.UTC)
    issuer_name, issuer_key = issuer or (name, key)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer_name)]))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=issuer is None, path_length=None), critical=True)
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
    )
    certificate = builder.sign(issuer_key, hashes.SHA256())
    return certificate.public_bytes(serialization.Encoding.PEM)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


@pytest.fixture(scope="session")
def pki() -> Pki:
    """Throwaway TLS material made with ``cryptography``."""
    server_key = ec.generate_private_key(ec.SECP256R1())
    server_cert = _certificate("localhost", server_key, None)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = _certificate("veil test client CA", ca_key, None)
    client_key = ec.generate_private_key(ec.SECP256R1())
    client_cert = _certificate("client", client_key, ("veil test client CA", ca_key))
    return Pki(
        server=TLSMaterial(cert_chain_pem=server_cert, private_key_pem=_key_pem(server_key)),
        server_cert_pem=server_cert,
        client_cert_pem=client_cert,
        client_key_pem=_key_pem(client_key),
        client_ca_pem=ca_cert,
    )


class ServerThread:
    """Runs an InferenceServer on its own event loop in a background thread."""

    def __init__(self, config: ServingConfig) -> None:
        self.server = InferenceServer(config)
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name="inference-server", daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()
        self.loop.run_until_complete(self.loop.shutdown_asyncgens())
        self.loop.run_until_complete(self.loop.shutdown_default_executor())
        self.loop.close()

    def call(self, coroutine: Coroutine[Any, Any, T], timeout: float = 30) -> T:
        """Run ``coroutine`` on the server's loop and return its result."""
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def __enter__(self) -> ServerThread:
        self._thread.start()
        try:
            self.call(self.server.start())
        except BaseException:
            self._shutdown()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        try:
            self.call(self.server.stop())
        finally:
            self._shutdown()

    def _shutdown(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=30)

    @property
    def rest(self) -> str:
        """Base URL of the plaintext REST listener."""
        return f"http://127.0.0.1:{self.server.rest_port}"

    @property
    def grpc_target(self) -> str:
        """host:port of the gRPC listener."""
        return f"127.0.0.1:{self.server.grpc_port}"


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
