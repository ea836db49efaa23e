"""Write the OpenAPI documents of the APIs that do not publish one yet (run: python make_specs.py).

``coordinator-mesh.json`` describes the marble mesh API, ``inference-rest.json`` the inference
server's TF Serving (``/v1``) and KServe v2 (``/v2``) REST API as veil serves them. scripts/fuzz.py
hands them to schemathesis; responses are checked against the schemas below (errors are
``{"error": str}`` on the inference API and JSend on the coordinator).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent

NAME = {
    "name": "name",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "minLength": 1},
}
VERSION = {
    "name": "version",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "pattern": "^[0-9]{1,19}$"},
}
TF_ERROR = {"type": "object", "required": ["error"], "properties": {"error": {"type": "string"}}}
NUMBERS: dict[str, Any] = {"type": "array", "items": {}}


def _json(schema: dict[str, Any], description: str = "") -> dict[str, Any]:
    return {
        "description": description or "JSON",
        "content": {"application/json": {"schema": schema}},
    }


def _responses(ok: dict[str, Any]) -> dict[str, Any]:
    return {"200": _json(ok, "success"), "default": _json(TF_ERROR, "TF Serving error")}


STATUS = {
    "type": "object",
    "required": ["model_version_status"],
    "properties": {
        "model_version_status": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["version", "state", "status"],
                "properties": {
                    "version": {"type": "string"},
                    "state": {"enum": ["START", "LOADING", "AVAILABLE", "UNLOADING", "END"]},
                    "status": {"type": "object"},
                },
            },
        }
    },
}
PREDICT_REQUEST = {
    "type": "object",
    "properties": {
        "signature_name": {"type": "string"},
        "instances": {
            "type": "array",
            "items": {"type": "array", "items": {"type": "number"}, "minItems": 64, "maxItems": 64},
            "maxItems": 16,
        },
        "inputs": {},
    },
}
PREDICT_RESPONSE = {"type": "object", "properties": {"predictions": {}, "outputs": {}}}
KSERVE_TENSOR = {
    "type": "object",
    "required": ["name", "shape", "datatype", "data"],
    "properties": {
        "name": {"type": "string"},
        "shape": {
            "type": "array",
            "items": {"type": "integer", "minimum": 0, "maximum": 64},
            "maxItems": 4,
        },
        "datatype": {"enum": ["FP32", "FP64", "INT64", "INT32", "BOOL", "BYTES"]},
        "data": {"type": "array", "maxItems": 256},
        "parameters": {"type": "object"},
    },
}
KSERVE_REQUEST = {
    "type": "object",
    "required": ["inputs"],
    "properties": {
        "id": {"type": "string"},
        "inputs": {"type": "array", "items": KSERVE_TENSOR, "maxItems": 3},
        "outputs": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["name"],
                "properties": {"name": {"type": "string"}},
            },
        },
        "parameters": {"type": "object"},
    },
}
KSERVE_RESPONSE = {
    "type": "object",
    "required": ["model_name", "outputs"],
    "properties": {
        "model_name": {"type": "string"},
        "model_version": {"type": "string"},
        "id": {"type": "string"},
        "outputs": {
            "type": "array",
            "items": {"type": "object", "required": ["name", "datatype", "shape", "data"]},
        },
    },
}
MODEL_METADATA = {
    "type": "object",
    "required": ["name", "versions", "platform", "inputs", "outputs"],
}


def _post(
    schema: dict[str, Any], response: dict[str, Any], params: list[dict[str, Any]]
) -> dict[str, Any]:
    return {
        "post": {
            "parameters": params,
            "requestBody": {"required": True, "content": {"application/json": {"schema": schema}}},
            "responses": _responses(response),
        }
    }


def _get(response: dict[str, Any], params: list[dict[str, Any]]) -> dict[str, Any]:
    return {"get": {"parameters": params, "responses": _responses(response)}}


def inference() -> dict[str, Any]:
    paths = {
        "/v1/models/{name}": _get(STATUS, [NAME]),
        "/v1/models/{name}/versions/{version}": _get(STATUS, [NAME, VERSION]),
        "/v1/models/{name}/metadata": _get(
            {"type": "object", "required": ["model_spec", "metadata"]}, [NAME]
        ),
        "/v1/models/{name}/versions/{version}/metadata": _get({"type": "object"}, [NAME, VERSION]),
        "/v1/models/{name}:predict": _post(PREDICT_REQUEST, PREDICT_RESPONSE, [NAME]),
        "/v1/models/{name}/versions/{version}:predict": _post(
            PREDICT_REQUEST, PREDICT_RESPONSE, [NAME, VERSION]
        ),
        "/v2": _get({"type": "object", "required": ["name", "version"]}, []),
        "/v2/health/live": _get({"type": "object", "required": ["live"]}, []),
        "/v2/health/ready": _get({"type": "object", "required": ["ready"]}, []),
        "/v2/models/{name}": _get(MODEL_METADATA, [NAME]),
        "/v2/models/{name}/ready": _get({"type": "object", "required": ["name", "ready"]}, [NAME]),
        "/v2/models/{name}/versions/{version}": _get(MODEL_METADATA, [NAME, VERSION]),
        "/v2/models/{name}/infer": _post(KSERVE_REQUEST, KSERVE_RESPONSE, [NAME]),
        "/v2/models/{name}/versions/{version}/infer": _post(
            KSERVE_REQUEST, KSERVE_RESPONSE, [NAME, VERSION]
        ),
        "/healthz": _get({"type": "object"}, []),
    }
    # The digits model of the deployment: examples that reach the model, not just the router.
    digits = {"name": {"value": "digits"}}
    for path, item in paths.items():
        for operation in item.values():
            for param in operation["parameters"]:
                if param["name"] == "name":
                    param["examples"] = digits
                if param["name"] == "version":
                    param["examples"] = {"one": {"value": "1"}}
            if "requestBody" in operation and path.endswith(":predict"):
                operation["requestBody"]["content"]["application/json"]["examples"] = {
                    "row": {"value": {"instances": [[0.0] * 64]}}
                }
            if "requestBody" in operation and path.endswith("/infer"):
                operation["requestBody"]["content"]["application/json"]["examples"] = {
                    "one": {
                        "value": {
                            "inputs": [
                                {
                                    "name": "X",
                                    "shape": [1, 64],
                                    "datatype": "FP32",
                                    "data": [0.0] * 64,
                                }
                            ]
                        }
                    }
                }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "veil inference server REST API (TF Serving v1 + KServe v2)",
            "version": "1",
        },
        "paths": paths,
    }


JSEND = {
    "type": "object",
    "required": ["status"],
    "properties": {
        "status": {"enum": ["success", "fail", "error"]},
        "data": {},
        "message": {"type": "string"},
    },
}


def mesh() -> dict[str, Any]:
    b64 = {"type": "string", "contentEncoding": "base64"}
    body = {
        "type": "object",
        "required": ["marbleType", "uuid", "csr", "evidence", "tee"],
        "properties": {
            "marbleType": {"type": "string"},
            "uuid": {"type": "string"},
            "csr": b64,
            "evidence": b64,
            "tee": {"enum": ["simulated", "sgx", "tdx", "sev-snp"]},
        },
    }
    responses = {"200": _json(JSEND), "default": _json(JSEND)}
    return {
        "openapi": "3.1.0",
        "info": {"title": "veil coordinator mesh API (marble activation)", "version": "2"},
        "paths": {
            "/api/v2/marble/activate": {
                "post": {
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": body}},
                    },
                    "responses": responses,
                }
            },
            "/api/v2/marble/parameters": {"get": {"responses": responses}},
        },
    }


if __name__ == "__main__":
    (HERE / "inference-rest.json").write_text(json.dumps(inference(), indent=2) + "\n")
    (HERE / "coordinator-mesh.json").write_text(json.dumps(mesh(), indent=2) + "\n")
