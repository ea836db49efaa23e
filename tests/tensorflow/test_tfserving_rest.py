"""The REST examples of TF Serving's own tests give TF Serving's answers against ``veil serve``.

Rows refer to the table in shared/fixtures/tfserving/README.md. Every request runs against TF
Serving's SavedModels and against ONNX models computing the same functions; classify and regress
on ONNX answer TF Serving's error for a missing signature.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from tests.tensorflow.conftest import FIXTURES, Server

H2 = "saved_model_half_plus_two_2_versions"
H3 = "saved_model_half_plus_three"
STATUS_123 = {
    "model_version_status": [
        {
            "version": "123",
            "state": "AVAILABLE",
            "status": {"error_code": "OK", "error_message": ""},
        }
    ]
}

# (row, method, path, body, status, answer) — identical for SavedModel and ONNX.
PREDICT_ROWS: list[tuple[str, str, str, Any, int, Any]] = [
    ("1", "POST", "/v1/models/half_plus_two:predict", {"instances": [1.0, 2.0, 5.0]}, 200, {"predictions": [2.5, 3.0, 4.5]}),
    ("2", "POST", "/v1/models/default:predict", {"instances": [2.0, 3.0, 4.0]}, 200, {"predictions": [3.0, 3.5, 4.0]}),
    ("3", "POST", "/v1/models/default:predict", {"inputs": [2.0, 3.0, 4.0]}, 200, {"outputs": [3.0, 3.5, 4.0]}),
    ("6", "GET", "/v1/models/default", None, 200, STATUS_123),
    ("8", "POST", f"/v1/models/{H2}:predict", {"instances": [[1.0, 2.0], [3.0, 4.0]]}, 200, {"predictions": [[2.5, 3.0], [3.5, 4.0]]}),
    ("9", "POST", f"/v1/models/{H2}/versions/123:predict", {"instances": [1.0, 2.0]}, 200, {"predictions": [2.5, 3.0]}),
    ("9l", "POST", f"/v1/models/{H2}/labels/Version_Label:predict", {"instances": [1.0, 2.0]}, 200, {"predictions": [2.5, 3.0]}),
    ("10", "POST", f"/v1/models/{H2}/versions/123:predict", {"signature_name": "serving_default", "inputs": [3.0, 4.0]}, 200, {"outputs": [3.5, 4.0]}),
    ("13", "GET", f"/v1/models/{H2}", None, 200, STATUS_123),
    ("13v", "GET", f"/v1/models/{H2}/versions/123", None, 200, STATUS_123),
    ("13l", "GET", f"/v1/models/{H2}/labels/Version_Label", None, 200, STATUS_123),
    ("15", "POST", f"/v1/models/{H3}:predict", {"instances": [1.0, 2.0, 5.0]}, 200, {"predictions": [3.5, 4.0, 5.5]}),
    ("15s", "GET", f"/v1/models/{H3}", None, 200, STATUS_123),
    ("17", "POST", "/v1/models/half:predict", {"instances": [1.0, 5.0]}, 404, {"error": "Servable not found for request: Latest(half)"}),
    ("17v", "POST", "/v1/models/foo/versions/50:predict", {"instances": [1.0]}, 404, {"error": "Servable not found for request: Specific(foo, 50)"}),
    ("17n", "POST", f"/v1/models/{H2}99:predict", {"instances": [1.0]}, 404, {"error": f"Servable not found for request: Latest({H2}99)"}),
]  # fmt: skip

# (row, path, body, status, substring of the error)
ERROR_ROWS: list[tuple[str, str, str, bytes | None, int, str]] = [
    ("18a", "POST", f"/v1/models/{H2}:predict", b"", 400, "JSON Parse error: The document is empty"),
    ("18b", "POST", f"/v1/models/{H2}:predict", b"instances = [1, 2]", 400, "JSON Parse error: Invalid value"),
    ("18c", "POST", f"/v1/models/{H2}:predict", b'{"instances": ["x", "y"]}', 400, "is not of expected type: float"),
    ("19a", "POST", f"/v1/models/{H2}/labels/Version_Nonexistent:predict", b'{"instances": [1.0]}', 400, "Unrecognized servable version label"),
    ("19b", "POST", f"/v1/models/{H2}:predict", b'{"signature_name": 100, "instances": [1.0]}', 400, "'signature_name' key must be a string value."),
    ("20a", "GET", "/v1/foo", None, 400, "Malformed request: GET /v1/foo"),
    ("20b", "POST", "/v1/models", None, 400, "Malformed request: POST /v1/models"),
    ("20c", "GET", "/v1/models/foo:predict", None, 400, "Malformed request"),
    ("20d", "POST", "/v1/models/foo/versions/HELLO:regress", None, 400, "Malformed request"),
    ("20e", "POST", "/v1/models/foo/label/some_label:regress", None, 400, "Malformed request"),
    ("20f", "POST", "/v1/models/foo/metadata", None, 400, "Malformed request"),
    ("20g", "GET", "/v1/models", None, 400, "Missing model name"),
    ("20h", "POST", "/v1/models/foo/versions/18446744073709551615:regress", b"{}", 400, "Failed to convert version"),
]  # fmt: skip

EXAMPLE_ROWS: list[tuple[str, str, dict[str, Any], Any]] = [
    ("4", "/v1/models/default:classify", {"signature_name": "classify_x_to_y", "examples": [{"x": 2.0}]}, {"results": [[["", 3.0]]]}),
    ("5", "/v1/models/default:regress", {"signature_name": "regress_x_to_y", "examples": [{"x": 2.0}]}, {"results": [3.0]}),
    ("11", f"/v1/models/{H2}:regress", {"signature_name": "regress_x_to_y", "examples": [{"x": 80.0}]}, {"results": [42]}),
    ("11v", f"/v1/models/{H2}/versions/123:regress", {"signature_name": "regress_x_to_y", "examples": [{"x": 80.0}]}, {"results": [42]}),
    ("11l", f"/v1/models/{H2}/labels/Version_Label:regress", {"signature_name": "regress_x_to_y", "examples": [{"x": 80.0}]}, {"results": [42]}),
    ("12", f"/v1/models/{H2}:classify", {"signature_name": "classify_x_to_y", "examples": [{"x": 20.0}]}, {"results": [[["", 12]]]}),
    ("12l", f"/v1/models/{H2}/labels/Version_Label:classify", {"signature_name": "classify_x_to_y", "examples": [{"x": 10.0}]}, {"results": [[["", 7]]]}),
    ("16", f"/v1/models/{H3}:regress", {"signature_name": "tensorflow/serving/regress", "examples": [{"x": 1.0}, {"x": 2.0}]}, {"results": [3.5, 4.0]}),
]  # fmt: skip


def _request(server: Server, method: str, path: str, body: Any) -> httpx.Response:
    content = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
    with httpx.Client(base_url=f"http://{server.rest}", timeout=30) as client:
        return client.request(method, path, content=content)


@pytest.mark.parametrize("runtime", ["tf", "onnx"])
@pytest.mark.parametrize("row", PREDICT_ROWS, ids=[r[0] for r in PREDICT_ROWS])
def test_predict_and_status_rows(
    servers: dict[str, Server], runtime: str, row: tuple[str, str, str, Any, int, Any]
) -> None:
    """Predict, status and not-found rows answer TF Serving's status and JSON."""
    _, method, path, body, status, answer = row
    response = _request(servers[runtime], method, path, body)
    assert response.headers["content-type"] == "application/json"
    assert (response.status_code, response.json()) == (status, answer)


@pytest.mark.parametrize("runtime", ["tf", "onnx"])
@pytest.mark.parametrize("row", ERROR_ROWS, ids=[r[0] for r in ERROR_ROWS])
def test_error_rows(
    servers: dict[str, Server], runtime: str, row: tuple[str, str, str, bytes | None, int, str]
) -> None:
    """Malformed requests answer TF Serving's HTTP status and error text."""
    _, method, path, body, status, message = row
    response = _request(servers[runtime], method, path, body)
    assert response.status_code == status
    assert message in response.json()["error"]


@pytest.mark.parametrize("row", EXAMPLE_ROWS, ids=[r[0] for r in EXAMPLE_ROWS])
def test_classify_and_regress_rows(
    servers: dict[str, Server], row: tuple[str, str, dict[str, Any], Any]
) -> None:
    """Classify and regress give TF Serving's "results"; on ONNX, its missing-signature error."""
    _, path, body, answer = row
    response = _request(servers["tf"], "POST", path, body)
    assert (response.status_code, response.json()) == (200, answer)
    onnx = _request(servers["onnx"], "POST", path, body)
    assert onnx.status_code == 400
    assert onnx.json() == {
        "error": f'Serving signature name: "{body["signature_name"]}" not found in signature def'
    }


@pytest.mark.parametrize(
    ("path", "golden", "name"),
    [
        ("/v1/models/default/metadata", "half_plus_two_model_metadata.json", "default"),
        (f"/v1/models/{H2}/metadata", f"{H2}_metadata.json", H2),
    ],
)
def test_metadata_equals_golden_files(
    servers: dict[str, Server], path: str, golden: str, name: str
) -> None:
    """Rows 7 and 14: metadata equals TF Serving's golden JSON; ONNX synthesizes a predict one."""
    response = _request(servers["tf"], "GET", path, None)
    assert response.status_code == 200
    assert response.json() == json.loads((FIXTURES / golden).read_text())
    onnx = _request(servers["onnx"], "GET", path, None).json()
    assert onnx["model_spec"] == {"name": name, "signature_name": "", "version": "123"}
    signatures = onnx["metadata"]["signature_def"]["signature_def"]
    assert signatures["serving_default"]["method_name"] == "tensorflow/serving/predict"
    assert signatures["serving_default"]["inputs"]["x"]["name"] == "x:0"
