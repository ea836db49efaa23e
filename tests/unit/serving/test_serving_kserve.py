"""KServe v2 / Open Inference Protocol REST endpoints."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import httpx
import pytest

from veil.modelcrypto import encrypt_bytes, generate_key, model_associated_data
from veil.serving import ModelConfig

from ._support import Digits, ServerThread, half_plus_two_onnx


@pytest.fixture
def client(
    serve: Callable[..., ServerThread], model_dir: Callable[..., ModelConfig], digits: Digits
) -> Iterator[httpx.Client]:
    """A server with half_plus_two (version 2), digits, and an encrypted model without its key."""
    locked = encrypt_bytes(
        digits.onnx, key=generate_key(), associated_data=model_associated_data("locked")
    )
    server = serve(
        model_dir("half_plus_two", half_plus_two_onnx(), version=2),
        model_dir("digits", digits.onnx),
        model_dir("locked", locked, file="model.onnx.veil"),
    )
    with httpx.Client(base_url=server.rest, timeout=10) as http:
        yield http


def test_health_endpoints(client: httpx.Client) -> None:
    """Live is 200; ready is 503 while a model waits for its key."""
    assert (client.get("/v2/health/live").status_code, client.get("/v2/health/live").json()) == (
        200,
        {"live": True},
    )
    ready = client.get("/v2/health/ready")
    assert (ready.status_code, ready.json()) == (503, {"ready": False})
    assert client.get("/v2").json()["name"] == "veil"


def test_model_ready(client: httpx.Client) -> None:
    """Model readiness is 200 for served models, 503 while waiting, 404 for unknown ones."""
    ready = client.get("/v2/models/half_plus_two/versions/2/ready")
    assert (ready.status_code, ready.json()) == (200, {"name": "half_plus_two", "ready": True})
    locked = client.get("/v2/models/locked/ready")
    assert (locked.status_code, locked.json()) == (503, {"name": "locked", "ready": False})
    assert client.get("/v2/models/nope/ready").status_code == 404


def test_model_metadata(client: httpx.Client) -> None:
    """Metadata lists versions as strings, OIP datatypes and -1 for dynamic dims."""
    assert client.get("/v2/models/digits").json() == {
        "name": "digits",
        "versions": ["1"],
        "platform": "onnx_onnxv1",
        "inputs": [{"name": "X", "datatype": "FP32", "shape": [-1, 64]}],
        "outputs": [
            {"name": "label", "datatype": "INT64", "shape": [-1]},
            {"name": "probabilities", "datatype": "FP32", "shape": [-1, 10]},
        ],
    }


def test_infer_flat_and_nested_data(client: httpx.Client) -> None:
    """Infer accepts flat or nested data, echoes the id and flattens output data."""
    for data in ([2.0, 3.0, 4.0, 5.0], [[2.0, 3.0], [4.0, 5.0]]):
        body = {
            "id": "r1",
            "inputs": [{"name": "x", "shape": [4], "datatype": "FP32", "data": data}],
        }
        response = client.post("/v2/models/half_plus_two/infer", json=body)
        assert response.json() == {
            "model_name": "half_plus_two",
            "model_version": "2",
            "id": "r1",
            "outputs": [
                {"name": "y", "datatype": "FP32", "shape": [4], "data": [3.0, 3.5, 4.0, 4.5]}
            ],
        }


def test_infer_requested_outputs(client: httpx.Client, digits: Digits) -> None:
    """Only the requested outputs are returned."""
    body = {
        "inputs": [
            {"name": "X", "shape": [2, 64], "datatype": "FP32", "data": digits.rows[:2].tolist()}
        ],
        "outputs": [{"name": "label"}],
    }
    response = client.post("/v2/models/digits/versions/1/infer", json=body)
    (output,) = response.json()["outputs"]
    assert (output["name"], output["datatype"], output["shape"]) == ("label", "INT64", [2])


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            {"inputs": [{"name": "x", "shape": [2], "datatype": "FP64", "data": [1, 2]}]},
            "datatype FP64",
        ),
        ({"inputs": [{"name": "x", "shape": [3], "datatype": "FP32", "data": [1, 2]}]}, "2 values"),
        (
            {"inputs": [{"name": "z", "shape": [1], "datatype": "FP32", "data": [1]}]},
            "Unknown input z",
        ),
        ({"inputs": "x"}, "'inputs' list"),
    ],
)
def test_infer_errors_are_400(client: httpx.Client, body: object, message: str) -> None:
    """Malformed inference requests answer 400 with {"error": ...}."""
    response = client.post("/v2/models/half_plus_two/infer", json=body)
    assert response.status_code == 400
    assert message in response.json()["error"]


def test_infer_on_waiting_model_is_404(client: httpx.Client) -> None:
    """An encrypted model without its key cannot be used."""
    body = {"inputs": [{"name": "X", "shape": [1, 64], "datatype": "FP32", "data": [0.0] * 64}]}
    response = client.post("/v2/models/locked/infer", json=body)
    assert (response.status_code, response.json()) == (
        404,
        {"error": "Servable not found for request: Latest(locked)"},
    )
