"""TF Serving REST API: predict, status, metadata and error answers, as TF Serving gives them."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import httpx
import numpy as np
import onnxruntime as ort
import pytest

from veil.serving import ModelConfig

from ._support import Digits, ServerThread, add_onnx, half_plus_two_onnx


@pytest.fixture
def server(
    serve: Callable[..., ServerThread], model_dir: Callable[..., ModelConfig], digits: Digits
) -> ServerThread:
    """A server with half_plus_two (versions 1 and 7), the two-input add model and digits."""
    model_dir("half_plus_two", half_plus_two_onnx(), version=1)
    hpt = model_dir("half_plus_two", half_plus_two_onnx(), version=7)
    return serve(
        hpt,
        model_dir("add", add_onnx()),
        model_dir("digits", digits.onnx),
        max_request_bytes=4096,
    )


@pytest.fixture
def client(server: ServerThread) -> Iterator[httpx.Client]:
    """An HTTP client for the server's REST listener."""
    with httpx.Client(base_url=server.rest, timeout=10) as http:
        yield http


def post(client: httpx.Client, path: str, body: Any) -> httpx.Response:
    """POST raw bytes or a JSON document."""
    content = body if isinstance(body, bytes) else httpx.Request("POST", "/", json=body).content
    return client.post(path, content=content)


def test_row_predict_matches_tf_serving_golden(client: httpx.Client) -> None:
    """The row format answers half_plus_two exactly like TF Serving's golden test."""
    response = post(client, "/v1/models/half_plus_two:predict", {"instances": [2.0, 3.0, 4.0]})
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {"predictions": [3.0, 3.5, 4.0]}


def test_columnar_predict_matches_tf_serving_golden(client: httpx.Client) -> None:
    """The columnar format answers with "outputs" like TF Serving's golden test."""
    response = post(client, "/v1/models/half_plus_two:predict", {"inputs": [2.0, 3.0, 4.0]})
    assert response.status_code == 200
    assert response.json() == {"outputs": [3.0, 3.5, 4.0]}


def test_paths_are_case_insensitive_and_versions_resolve(client: httpx.Client) -> None:
    """/V1/... paths match case-insensitively and /versions/<latest> serves the latest version."""
    for path in ("/V1/MODELS/half_plus_two/VERSIONS/7:PREDICT", "/v1/models/half_plus_two:predict"):
        response = post(
            client, path, {"instances": [1.0, 5.0], "signature_name": "serving_default"}
        )
        assert response.json() == {"predictions": [2.5, 4.5]}


def test_named_row_instances_feed_each_input(client: httpx.Client) -> None:
    """Row objects keyed by input name feed a multi-input model."""
    body = {"instances": [{"a": [1.0, 2.0], "b": [10.0, 20.0]}, {"a": [3.0, 4.0], "b": [1.0, 1.0]}]}
    response = post(client, "/v1/models/add:predict", body)
    assert response.json() == {"predictions": [[11.0, 22.0], [4.0, 5.0]]}


def test_classifier_outputs_label_and_probabilities(client: httpx.Client, digits: Digits) -> None:
    """Several outputs give an object per row (row format) or an object keyed by name (columnar)."""
    session = ort.InferenceSession(digits.onnx, providers=["CPUExecutionProvider"])
    labels, probabilities = session.run(["label", "probabilities"], {"X": digits.rows})
    rows = post(client, "/v1/models/digits:predict", {"instances": digits.rows.tolist()}).json()
    assert [row["label"] for row in rows["predictions"]] == labels.tolist()
    np.testing.assert_allclose(
        [row["probabilities"] for row in rows["predictions"]], probabilities, rtol=1e-6
    )
    columns = post(
        client, "/v1/models/digits:predict", {"inputs": {"X": digits.rows.tolist()}}
    ).json()
    assert columns["outputs"]["label"] == labels.tolist()
    np.testing.assert_allclose(columns["outputs"]["probabilities"], probabilities, rtol=1e-6)


def test_model_status_is_tf_serving_json(client: httpx.Client) -> None:
    """GET /v1/models/<name> prints GetModelStatusResponse like TF Serving."""
    expected = {
        "model_version_status": [
            {
                "version": "7",
                "state": "AVAILABLE",
                "status": {"error_code": "OK", "error_message": ""},
            }
        ]
    }
    assert client.get("/v1/models/half_plus_two").json() == expected
    assert client.get("/v1/models/half_plus_two/versions/7").json() == expected


def test_metadata_is_a_synthesized_signature_def_map(client: httpx.Client) -> None:
    """Metadata has the doubled signature_def key, DT_* dtypes and -1 dims as strings."""
    response = client.get("/v1/models/half_plus_two/metadata")
    tensor = {
        "dtype": "DT_FLOAT",
        "tensor_shape": {"dim": [{"size": "-1", "name": ""}], "unknown_rank": False},
    }
    assert response.json() == {
        "model_spec": {"name": "half_plus_two", "signature_name": "", "version": "7"},
        "metadata": {
            "signature_def": {
                "signature_def": {
                    "serving_default": {
                        "inputs": {"x": {**tensor, "name": "x:0"}},
                        "outputs": {"y": {**tensor, "name": "y:0"}},
                        "method_name": "tensorflow/serving/predict",
                        "defaults": {},
                    }
                }
            }
        },
    }


def test_digits_metadata_has_int64_and_fixed_dims(client: httpx.Client) -> None:
    """Fixed dims are printed as strings and int64 outputs as DT_INT64."""
    signature = client.get("/v1/models/digits/metadata").json()["metadata"]["signature_def"][
        "signature_def"
    ]["serving_default"]
    assert signature["inputs"]["X"]["tensor_shape"]["dim"] == [
        {"size": "-1", "name": ""},
        {"size": "64", "name": ""},
    ]
    assert signature["outputs"]["label"]["dtype"] == "DT_INT64"


ERRORS = [
    (
        "POST",
        "/v1/models/half:predict",
        b'{"instances": [1.0]}',
        404,
        "Servable not found for request: Latest(half)",
    ),
    (
        "POST",
        "/v1/models/half_plus_two/versions/1:predict",
        b'{"instances": [1.0]}',
        404,
        "Servable not found for request: Specific(half_plus_two, 1)",
    ),
    (
        "GET",
        "/v1/models/half_plus_two/versions/1/metadata",
        None,
        404,
        "Servable not found for request: Specific(half_plus_two, 1)",
    ),
    ("GET", "/v1/models/nope", None, 404, "Could not find any versions of model nope"),
    (
        "GET",
        "/v1/models/half_plus_two/versions/1",
        None,
        404,
        "Could not find version 1 of model half_plus_two",
    ),
    (
        "POST",
        "/v1/models/half_plus_two/labels/stable:predict",
        b'{"instances": [1.0]}',
        400,
        "Unrecognized servable version label: stable",
    ),
    ("GET", "/v1/foo", None, 400, "Malformed request: GET /v1/foo"),
    ("POST", "/v1/models", b"", 400, "Malformed request: POST /v1/models"),
    ("GET", "/v1/models/foo:predict", None, 400, "Malformed request: GET /v1/models/foo:predict"),
    (
        "POST",
        "/v1/models/foo/versions/HELLO:regress",
        b"",
        400,
        "Malformed request: POST /v1/models/foo/versions/HELLO:regress",
    ),
    (
        "POST",
        "/v1/models/foo/metadata",
        b"",
        400,
        "Malformed request: POST /v1/models/foo/metadata",
    ),
    ("GET", "/v1/models", None, 400, "Missing model name in request."),
    (
        "POST",
        "/v1/models/foo/versions/18446744073709551615:regress",
        b"",
        400,
        "Failed to convert version: 18446744073709551615 to numeric.",
    ),
    (
        "POST",
        "/v1/models/half_plus_two:predict",
        b"",
        400,
        "JSON Parse error: The document is empty",
    ),
    (
        "POST",
        "/v1/models/half_plus_two:predict",
        b"instances = [1, 2]",
        400,
        "JSON Parse error: Invalid value. at offset: 0",
    ),
    (
        "POST",
        "/v1/models/half_plus_two:predict",
        b'{"instances": ["x", "y"]}',
        400,
        'JSON Value: "x" Type: String is not of expected type: float',
    ),
    (
        "POST",
        "/v1/models/half_plus_two:predict",
        b'{"signature_name": 100, "instances": [1]}',
        400,
        "'signature_name' key must be a string value.",
    ),
    (
        "POST",
        "/v1/models/half_plus_two:predict",
        b'{"signature_name": "nope", "instances": [1]}',
        400,
        'Serving signature name: "nope" not found in signature def',
    ),
    (
        "POST",
        "/v1/models/half_plus_two:predict",
        b'{"x": [1]}',
        400,
        "Missing 'inputs' or 'instances' key",
    ),
    (
        "POST",
        "/v1/models/half_plus_two:predict",
        b'{"inputs": [1], "instances": [1]}',
        400,
        "Not formatted correctly expecting only one of 'inputs' or 'instances' keys exists",
    ),
    (
        "POST",
        "/v1/models/half_plus_two:predict",
        b'{"instances": 1}',
        400,
        "Expecting 'instances' to be an list/array",
    ),
    (
        "POST",
        "/v1/models/half_plus_two:predict",
        b'{"instances": []}',
        400,
        "No values in 'instances' array",
    ),
    (
        "POST",
        "/v1/models/half_plus_two:predict",
        b'{"inputs": {"z": [1]}}',
        400,
        "Missing named input: x in 'inputs' object.",
    ),
    (
        "POST",
        "/v1/models/add:predict",
        b'{"instances": [[1, 2]]}',
        400,
        "instances is a plain list, but expecting list of objects as multiple input tensors "
        "required as per tensorinfo_map",
    ),
    (
        "POST",
        "/v1/models/half_plus_two:classify",
        b'{"examples": [{"x": 1.0}]}',
        400,
        "Expected classification signature method_name to be tensorflow/serving/classify. "
        "Was: tensorflow/serving/predict",
    ),
    (
        "POST",
        "/v1/models/half_plus_two:regress",
        b'{"signature_name": "regress_x_to_y", "examples": [{"x": 1.0}]}',
        400,
        'Serving signature name: "regress_x_to_y" not found in signature def',
    ),
]


@pytest.mark.parametrize("case", ERRORS, ids=[f"{c[0]} {c[1]} {c[3]}" for c in ERRORS])
def test_errors_use_tf_serving_status_and_message(
    client: httpx.Client, case: tuple[str, str, bytes | None, int, str]
) -> None:
    """Each failure answers {"error": <TF Serving's message>} with TF's HTTP status."""
    method, path, body, status, message = case
    response = client.request(method, path, content=body)
    assert (response.status_code, response.json()) == (status, {"error": message})
    assert response.headers["content-type"] == "application/json"


def test_oversized_body_is_refused_with_413(client: httpx.Client) -> None:
    """A body over max_request_bytes answers 413 without being processed."""
    body = b'{"instances": [' + b"1.0," * 2000 + b"1.0]}"
    response = client.post("/v1/models/half_plus_two:predict", content=body)
    assert response.status_code == 413
    assert "limit of 4096 bytes" in response.json()["error"]


def test_oversized_chunked_body_is_refused_with_413(client: httpx.Client) -> None:
    """A chunked body (no Content-Length) is cut off at the limit too."""

    def chunks() -> Iterator[bytes]:
        yield b'{"instances": ['
        for _ in range(100):
            yield b"1.0," * 20
        yield b"1.0]}"

    response = client.post("/v1/models/half_plus_two:predict", content=chunks())
    assert response.status_code == 413


@pytest.mark.parametrize(
    "body",
    [
        b"[" * 3000,
        b'{"instances": ' + b"[" * 900 + b"1" + b"]" * 900 + b"}",
        b'{"instances": [[1], [1, 2]]}',
    ],
)
def test_deep_or_ragged_json_is_a_400_not_a_500(client: httpx.Client, body: bytes) -> None:
    """Deeply nested or ragged JSON is a client error."""
    response = client.post("/v1/models/half_plus_two:predict", content=body)
    assert response.status_code == 400
    assert response.json()["error"]


def test_non_finite_values_use_bare_tokens(client: httpx.Client) -> None:
    """NaN and Infinity are accepted and written as bare tokens, as TF Serving does."""
    response = client.post(
        "/v1/models/half_plus_two:predict", content=b'{"instances": [NaN, Infinity, 2.0]}'
    )
    assert response.status_code == 200
    assert response.content.replace(b" ", b"") == b'{"predictions":[NaN,Infinity,3.0]}'


def test_wrong_shape_is_a_400(client: httpx.Client) -> None:
    """An input whose rank or fixed dims differ from the model's is rejected before running it."""
    response = post(client, "/v1/models/digits:predict", {"instances": [[1.0, 2.0]]})
    assert response.status_code == 400
    assert response.json() == {
        "error": "Input X has shape [1,2] but the model expects [-1,64] (-1 = any size)."
    }


def test_unknown_paths_and_healthz(client: httpx.Client) -> None:
    """/healthz answers 200; paths outside /v1, /v2 and /healthz answer a JSON 404."""
    assert client.get("/healthz").status_code == 200
    response = client.get("/nothing/here")
    assert (response.status_code, response.json()) == (
        404,
        {"error": "Not found: GET /nothing/here"},
    )
