"""KServe v2 / Open Inference Protocol REST, with Triton's binary tensor data extension.

Binary requests carry ``Inference-Header-Content-Length: <n>``: the first n body bytes are the JSON
header, the rest the raw tensors of inputs with a ``binary_data_size`` parameter, in order
(little-endian, row-major; BYTES elements are 4-byte length-prefixed). Outputs are sent binary when
the request asks (``binary_data_output`` or an output's ``binary_data``), as tritonclient does by
default.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
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

_HEADER_LENGTH = "inference-header-content-length"


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
        return json_response(
            {
                "name": "veil",
                "version": veil.__version__,
                "extensions": ["binary_tensor_data"],
            }
        )

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
        signature = target.signature("")
        return json_response(
            {
                "name": target.name,
                "versions": [str(target.version)],
                "platform": target.model.platform,
                "inputs": [_tensor_metadata(spec) for spec in signature.inputs],
                "outputs": [_tensor_metadata(spec) for spec in signature.outputs],
            }
        )

    async def infer(self, request: Request) -> Response:
        body = await read_body(request, self._limit)
        target = self._resolve(request)
        signature = target.signature("")
        header_length = request.headers.get(_HEADER_LENGTH)
        binary = b""
        if header_length is not None:
            if not header_length.isdigit() or int(header_length) > len(body):
                raise ProtocolError(
                    f"Inference-Header-Content-Length {header_length!r} does not fit the body."
                )
            body, binary = body[: int(header_length)], body[int(header_length) :]
        document = loads(body)
        if not isinstance(document, dict) or not isinstance(document.get("inputs"), list):
            raise ProtocolError("The inference request must be an object with an 'inputs' list.")
        specs = {spec.name: spec for spec in signature.inputs}
        inputs = {}
        offset = 0
        for item in document["inputs"]:
            name, array, used = _input(item, specs, binary, offset)
            offset += used
            if name in inputs:
                raise ProtocolError(f"Input {name} appears more than once.")
            inputs[name] = array
        if offset != len(binary):
            raise ProtocolError(
                f"The request has {len(binary) - offset} bytes of binary data no input claims."
            )
        requested = document.get("outputs") or []
        if not isinstance(requested, list) or not all(
            isinstance(item, dict) and isinstance(item.get("name"), str) for item in requested
        ):
            raise ProtocolError("'outputs' must be a list of objects with a 'name'.")
        parameters = document.get("parameters") or {}
        if not isinstance(parameters, dict):
            raise ProtocolError("'parameters' must be an object.")
        all_binary = parameters.get("binary_data_output") is True
        binary_outputs = {
            item["name"]
            for item in requested
            if (item.get("parameters") or {}).get("binary_data", all_binary) is True
        }
        outputs = await self._dataplane.predict(
            target, inputs, [item["name"] for item in requested], signature=signature
        )
        if all_binary and not requested:
            binary_outputs = set(outputs)
        answer: dict[str, Any] = {"model_name": target.name, "model_version": str(target.version)}
        if isinstance(document.get("id"), str):
            answer["id"] = document["id"]
        answer["outputs"] = []
        chunks = []
        for name, array in outputs.items():
            entry: dict[str, Any] = {
                "name": name,
                "datatype": _datatype(array.dtype),
                "shape": list(array.shape),
            }
            if name in binary_outputs:
                raw = to_raw(array)
                chunks.append(raw)
                entry["parameters"] = {"binary_data_size": len(raw)}
            else:
                entry["data"] = json_value(name, array.reshape(-1))
            answer["outputs"].append(entry)
        header = dumps(answer, arrays=[a for n, a in outputs.items() if n not in binary_outputs])
        if not chunks:
            return json_response(None, body=header)
        return Response(
            header + b"".join(chunks),
            media_type="application/octet-stream",
            headers={"Inference-Header-Content-Length": str(len(header))},
        )

    def _resolve(self, request: Request) -> Resolved:
        version_text = request.path_params.get("version")
        version = None
        if version_text is not None:
            if not (version_text.isascii() and version_text.isdigit()):
                raise ProtocolError(f"Model version {version_text!r} is not an integer.")
            version = int(version_text)
        return self._dataplane.resolve(request.path_params["name"], version=version)


def _input(
    item: Any, specs: dict[str, TensorSpec], binary: bytes, offset: int
) -> tuple[str, Any, int]:
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
    if len(shape) > 64:
        raise ProtocolError(f"Input {name}: {len(shape)} dimensions; at most 64 are supported.")
    if by_kserve(str(datatype)) != spec.dtype:
        raise ProtocolError(
            f"Input {name} has datatype {datatype} but the model expects {spec.dtype.kserve}."
        )
    size = (item.get("parameters") or {}).get("binary_data_size")
    used = 0
    if size is not None:
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise ProtocolError(f"Input {name}: binary_data_size must be a non-negative integer.")
        if offset + size > len(binary):
            raise ProtocolError(f"Input {name}: binary_data_size runs past the end of the body.")
        array = from_raw(name, binary[offset : offset + size], spec.dtype, shape)
        used = size
    elif "data" not in item:
        raise ProtocolError(f"Input {name} has no 'data'.")
    else:
        array = array_from_json(item["data"], spec, "inputs")
    if array.size != math.prod(shape):
        raise ProtocolError(
            f"Input {name} has {array.size} values but shape {shape} needs {math.prod(shape)}."
        )
    return name, array.reshape(shape), used


def from_raw(name: str, raw: bytes, dtype: Any, shape: list[int]) -> Any:
    """Decode one binary tensor (BYTES: 4-byte little-endian length before each element)."""
    count = math.prod(shape)
    if dtype.is_string:
        items = []
        position = 0
        while position < len(raw):
            if position + 4 > len(raw):
                raise ProtocolError(f"Input {name}: truncated BYTES element length.")
            length = int.from_bytes(raw[position : position + 4], "little")
            position += 4
            if position + length > len(raw):
                raise ProtocolError(f"Input {name}: truncated BYTES element.")
            items.append(raw[position : position + length])
            position += length
        array = np.empty(len(items), dtype=object)
        array[:] = items
        return array
    wire = dtype.numpy.newbyteorder("<")
    if len(raw) != count * wire.itemsize:
        raise ProtocolError(
            f"Input {name}: {len(raw)} bytes of binary data but shape {shape} of "
            f"{dtype.kserve} needs {count * wire.itemsize}."
        )
    return np.frombuffer(raw, dtype=wire).astype(dtype.numpy)


def to_raw(array: Any) -> bytes:
    """Encode one output tensor in the binary tensor layout."""
    if array.dtype.kind in "OUS":
        parts = []
        for item in array.reshape(-1):
            data = item.encode() if isinstance(item, str) else bytes(item)
            parts.append(len(data).to_bytes(4, "little") + data)
        return b"".join(parts)
    if array.dtype == np.bool_:
        return np.ascontiguousarray(array, dtype=np.uint8).tobytes()
    return np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<")).tobytes()


def _tensor_metadata(spec: TensorSpec) -> dict[str, Any]:
    shape = [-1] if spec.shape is None else [-1 if d is None else d for d in spec.shape]
    return {"name": spec.name, "datatype": spec.dtype.kserve, "shape": shape}


def _datatype(dtype: Any) -> str:
    found = by_numpy(dtype)
    return found.kserve if found is not None else str(dtype)
