"""TLS on both listeners: server-authenticated TLS 1.2+, optional client certificates."""

from __future__ import annotations

import ssl
from collections.abc import Callable
from pathlib import Path

import grpc
import httpx
import pytest

from veil.serving import ModelConfig, TLSMaterial
from veil.serving._proto import predict_pb2, prediction_service_pb2_grpc, types_pb2
from veil.serving._tls import rest_ssl_context

from ._support import Pki, ServerThread, half_plus_two_onnx

BODY = {"instances": [2.0, 3.0, 4.0]}
EXPECTED = {"predictions": [3.0, 3.5, 4.0]}


def client_context(pki: Pki, *, certificate_file: Path | None = None) -> ssl.SSLContext:
    """A client context trusting the test server certificate, optionally with a client cert."""
    context = ssl.create_default_context(cadata=pki.server_cert_pem.decode())
    if certificate_file is not None:
        certificate_file.write_bytes(pki.client_cert_pem + pki.client_key_pem)
        context.load_cert_chain(certificate_file)
    return context


def grpc_predict(channel: grpc.Channel) -> list[float]:
    """half_plus_two over gRPC."""
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "half_plus_two"
    tensor = request.inputs["x"]
    tensor.dtype = types_pb2.DT_FLOAT
    tensor.tensor_shape.dim.add(size=2)
    tensor.float_val.extend([2.0, 4.0])
    response = prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(
        request, timeout=10
    )
    return list(response.outputs["y"].float_val)


@pytest.fixture
def hpt(model_dir: Callable[..., ModelConfig]) -> ModelConfig:
    """The half_plus_two model."""
    return model_dir("half_plus_two", half_plus_two_onnx())


def test_rest_over_tls_serves_and_refuses_plaintext_http(
    serve: Callable[..., ServerThread], hpt: ModelConfig, pki: Pki
) -> None:
    """HTTPS works with the configured certificate; plain HTTP on the same port gets no answer."""
    server = serve(hpt, tls=pki.server)
    port = server.server.rest_port
    with httpx.Client(verify=client_context(pki), timeout=10) as client:
        response = client.post(
            f"https://127.0.0.1:{port}/v1/models/half_plus_two:predict", json=BODY
        )
        assert response.json() == EXPECTED
    with httpx.Client(timeout=10) as client, pytest.raises(httpx.TransportError):
        client.get(f"http://127.0.0.1:{port}/healthz")


def test_grpc_over_tls(serve: Callable[..., ServerThread], hpt: ModelConfig, pki: Pki) -> None:
    """gRPC uses the same certificate."""
    server = serve(hpt, tls=pki.server)
    credentials = grpc.ssl_channel_credentials(root_certificates=pki.server_cert_pem)
    with grpc.secure_channel(f"localhost:{server.server.grpc_port}", credentials) as channel:
        assert grpc_predict(channel) == [3.0, 4.0]
    with grpc.insecure_channel(server.grpc_target) as channel, pytest.raises(grpc.RpcError):
        grpc_predict(channel)


def test_client_certificates_are_required_with_a_client_ca(
    serve: Callable[..., ServerThread], hpt: ModelConfig, pki: Pki, tmp_path: Path
) -> None:
    """With client_ca_pem, both listeners refuse clients without a certificate from that CA."""
    tls = TLSMaterial(
        cert_chain_pem=pki.server.cert_chain_pem,
        private_key_pem=pki.server.private_key_pem,
        client_ca_pem=pki.client_ca_pem,
    )
    server = serve(hpt, tls=tls)
    url = f"https://127.0.0.1:{server.server.rest_port}/v1/models/half_plus_two:predict"
    with (
        httpx.Client(verify=client_context(pki), timeout=10) as client,
        pytest.raises(httpx.TransportError),
    ):
        client.post(url, json=BODY)
    with httpx.Client(
        verify=client_context(pki, certificate_file=tmp_path / "client.pem"), timeout=10
    ) as client:
        assert client.post(url, json=BODY).json() == EXPECTED
    target = f"localhost:{server.server.grpc_port}"
    anonymous = grpc.ssl_channel_credentials(root_certificates=pki.server_cert_pem)
    with grpc.secure_channel(target, anonymous) as channel, pytest.raises(grpc.RpcError):
        grpc_predict(channel)
    mutual = grpc.ssl_channel_credentials(
        root_certificates=pki.server_cert_pem,
        private_key=pki.client_key_pem,
        certificate_chain=pki.client_cert_pem,
    )
    with grpc.secure_channel(target, mutual) as channel:
        assert grpc_predict(channel) == [3.0, 4.0]


def test_rest_context_is_tls12_plus_and_leaves_no_descriptor(pki: Pki) -> None:
    """The REST context refuses TLS < 1.2, and the in-memory key file is closed after loading."""
    context = rest_ssl_context(pki.server)
    targets = []
    for descriptor in Path("/proc/self/fd").iterdir():
        try:
            targets.append(str(descriptor.readlink()))
        except OSError:  # closed meanwhile by another thread
            continue
    assert not [target for target in targets if "veil-tls" in target]
    assert context.minimum_version == ssl.TLSVersion.TLSv1_2
    assert context.verify_mode == ssl.CERT_NONE
