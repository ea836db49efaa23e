"""veil.client.InferenceClient: REST and gRPC, TF Serving and v2 shapes, TLS pinned to a root."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from veil.client import InferenceClient
from veil.errors import ConfigurationError, NotFoundError, VerificationError
from veil.serving import ModelConfig

from ._support import Pki, ServerThread, add_onnx, half_plus_two_onnx


@pytest.fixture
def tls_server(
    serve: Callable[..., ServerThread], model_dir: Callable[..., ModelConfig], pki: Pki
) -> ServerThread:
    """A TLS server with half_plus_two and add."""
    return serve(
        model_dir("half_plus_two", half_plus_two_onnx()),
        model_dir("add", add_onnx()),
        tls=pki.server,
    )


def test_rest_predict_infer_status_over_pinned_tls(tls_server: ServerThread, pki: Pki) -> None:
    """Predict (TF Serving), infer (v2), status and metadata work with the pinned root."""
    address = f"127.0.0.1:{tls_server.server.rest_port}"
    with InferenceClient.from_verified_root(address, root_pem=pki.server_cert_pem) as client:
        outputs = client.predict("half_plus_two", {"x": np.array([1.0, 2.0], np.float32)})
        np.testing.assert_array_equal(outputs["y"], [2.5, 3.0])
        a = np.ones((1, 2), np.float32)
        np.testing.assert_array_equal(client.infer("add", {"a": a, "b": a})["sum"], a + a)
        assert client.status("add")["model_version_status"][0]["state"] == "AVAILABLE"
        assert "signature_def" in client.metadata("add")["metadata"]
        with pytest.raises(NotFoundError, match="Servable not found"):
            client.predict("nope", {"x": np.array([1.0], np.float32)})


def test_grpc_predict_over_pinned_tls(tls_server: ServerThread, pki: Pki) -> None:
    """gRPC Predict sends tensor_content and decodes TF Serving's typed answer."""
    address = f"localhost:{tls_server.server.grpc_port}"
    with InferenceClient.from_verified_root(
        address, root_pem=pki.server_cert_pem, protocol="grpc"
    ) as client:
        a = np.array([[1.0, 2.0]], np.float32)
        outputs = client.predict("add", {"a": a, "b": a}, version=1)
    np.testing.assert_array_equal(outputs["sum"], a + a)


def test_another_root_is_refused_before_any_data_is_sent(
    tls_server: ServerThread, pki: Pki
) -> None:
    """A server whose certificate does not chain to the verified root is a VerificationError."""
    address = f"127.0.0.1:{tls_server.server.rest_port}"
    with (
        InferenceClient.from_verified_root(address, root_pem=pki.client_ca_pem) as client,
        pytest.raises(VerificationError, match="not part of the attested deployment"),
    ):
        client.predict("half_plus_two", {"x": np.array([1.0], np.float32)})


def test_client_needs_a_verified_coordinator(pki: Pki) -> None:
    """The constructor takes only what verify_coordinator returned."""
    with pytest.raises(ConfigurationError, match="VerifiedCoordinator"):
        InferenceClient("127.0.0.1:1", coordinator=pki.server_cert_pem)  # type: ignore[arg-type]
