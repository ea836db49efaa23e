"""KServe v2 / Open Inference Protocol REST (JSON only; no binary tensor extension yet)."""

from __future__ import annotations

import math
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

import veil
from veil.errors import NotFoundError, ProtocolError
from veil.serving._dataplane import DataPlane, Resolved
from veil.serving._dtypes import by_kserve, by_numpy
from veil.serving._http import guarded, json_response, read_body
from veil.serving._json_tensors import array_from_json, dumps, json_value, loads
from veil.serving._onnx import TensorSpec

__all__ = ["kserve_routes"]

_PLATFORM = "onnx_onnxv1"


def kserve_routes(dataplane: DataPlane, *, max_request_bytes: int) -> list[Route]:
    """Starlette routes for the OIP REST endpoints (paths are case-sensitive, as in the spec)."""
    api = _KServe(dataplane, max_request_bytes)
    model = "/v2/models/{name}"
    versioned = "/v2/models/{name}/versions/{version}"
    return [
        Route("/v2", guarded(api.server_metadata), methods=["GET"]),
        Route("/v2/health/live", guarded(api.live), methods=["GET"]),
        Route("/v2/health/ready", guarded(api.ready), methods=["GET"]),
        Route(model + "/ready", guarded(api.model_ready), methods=["GET"]),
        Route(versioned + "/ready", guarded(api.model_ready), methods=["GET"]),
        Route(model, guarded(api.model_metadata), methods=["GET"]),
        Route(versioned, guarded(api.model_metadata), methods=["GET"]),
        Route(model + "/infer", guarded(api.infer), methods=["POST"]),
        Route(versioned + "/infer", guarded(api.infer), methods=["POST"]),
    ]


class _KServe:
    def __init__(self, dataplane: DataPlane, max_request_bytes: int) -> None:
        self._dataplane = dataplane
        self._limit = max_request_bytes

    async def server_metadata(self, request: Request) -> Response:
        return json_response({"name": "veil", "version": veil.__version__, "extensions": []})

    async def live(self, request: Request) -> Response:
        return json_response({"live": True})

    async def ready(self, request: Request) -> Response:
        ready = self._dataplane.ready()
        return json_response({"ready": ready}, 200 if ready else 503)

    async def model_ready(self, request: Request) -> Response:
        name = request.path_params["name"]
        try:
            self._resolve(request)
        except NotFoundError:
            self._dataplane.status(name)  # unknown model → 404 with its message
            return json_response({"name": name, "ready": False}, 503)
        return json_response({"name": name, "ready": True})

    async def model_metadata(self, request: Request) -> Response:
        target = self._resolve(request)
        return json_response(
            {
                "name": target.name,
                "versions": [str(target.version)],
                "platform": _PLATFORM,
                "inputs": [_tensor_metadata(spec) for spec in target.model.inputs],
                "outputs": [_tensor_metadata(spec) for spec in target.model.outputs],
            }
        )

    async def infer(self, request: Request) -> Response:
        body = await read_body(request, self._limit)
        target = self._resolve(request)
        document = loads(body)
        if not isinstance(document, dict) or not isinstance(document.get("inputs"), list):
            raise ProtocolError("The inference request must be an object with an 'inputs' list.")
        specs = {spec.name: spec for spec in target.model.inputs}
        inputs = {}
        for item in document["inputs"]:
            name, array = _input(item, specs)
            if name in inputs:
                raise ProtocolError(f"Input {name} appears more than once.")
            inputs[name] = array
        requested = document.get("outputs") or []
        if not isinstance(requested, list) or not all(
            isinstance(item, dict) and isinstance(item.get("name"), str) for item in requested
        ):
            raise ProtocolError("'outputs' must be a list of objects with a 'name'.")
        outputs = await self._dataplane.predict(
            target, inputs, [item["name"] for item in requested]
        )
        answer: dict[str, Any] = {"model_name": target.name, "model_version": str(target.version)}
        if isinstance(document.get("id"), str):
            answer["id"] = document["id"]
        answer["outputs"] = [
            {
                "name": name,
                "datatype": _datatype(array.dtype),
                "shape": list(array.shape),
                "data": json_value(name, array.reshape(-1)),
            }
            for name, array in outputs.items()
        ]
        return json_response(None, body=dumps(answer, arrays=outputs.values()))

    def _resolve(self, request: Request) -> Resolved:
        version_text = request.path_params.get("version")
        version = None
        if version_text is not None:
            if not (version_text.isascii() and version_text.isdigit()):
                raise ProtocolError(f"Model version {version_text!r} is not an integer.")
            version = int(version_text)
        return self._dataplane.resolve(request.path_params["name"], version=version)


def _input(item: Any, specs: dict[str, TensorSpec]) -> tuple[str, Any]:
    if not isinstance(item, dict) or not isinstance(item.get("name"), str):
        raise ProtocolError("Each input must be an object with a 'name'.")
    name = item["name"]
    spec = specs.get(name)
    if spec is None:
        raise ProtocolError(f"Unknown input {name}; the model's inputs are {', '.join(specs)}.")
    shape, datatype = item.get("shape"), item.get("datatype")
    if not isinstance(shape, list) or not all(
        isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape
    ):
        raise ProtocolError(f"Input {name} needs a 'shape' list of non-negative integers.")
    if by_kserve(str(datatype)) != spec.dtype:
        raise ProtocolError(
            f"Input {name} has datatype {datatype} but the model expects {spec.dtype.kserve}."
        )
    if "data" not in item:
        raise ProtocolError(f"Input {name} has no 'data'.")
    array = array_from_json(item["data"], spec, "inputs")
    if array.size != math.prod(shape):
        raise ProtocolError(
            f"Input {name} has {array.size} values but shape {shape} needs {math.prod(shape)}."
        )
    return name, array.reshape(shape)


def _tensor_metadata(spec: TensorSpec) -> dict[str, Any]:
    shape = [-1] if spec.shape is None else [-1 if d is None else d for d in spec.shape]
    return {"name": spec.name, "datatype": spec.dtype.kserve, "shape": shape}


def _datatype(dtype: Any) -> str:
    found = by_numpy(dtype)
    return found.kserve if found is not None else str(dtype)
