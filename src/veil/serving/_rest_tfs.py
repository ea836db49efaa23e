"""TF Serving REST API (``/v1/...``): predict, model status and metadata, with TF's exact errors."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote

import numpy as np
from starlette.requests import Request
from starlette.responses import Response

from veil.errors import ProtocolError
from veil.serving._dataplane import DataPlane, run_examples
from veil.serving._examples import Classification, examples_from_json
from veil.serving._http import guarded, json_response, read_body
from veil.serving._json_tensors import columnar_inputs, dumps, json_value, loads, row_inputs
from veil.serving._runtime import CLASSIFY_METHOD, REGRESS_METHOD
from veil.serving._tfs_protos import model_spec, signature_def_map, status_response, to_json_dict

__all__ = ["TfServingRest"]

Array = np.ndarray[Any, Any]

# The regexes of TF Serving's http_rest_api_util.cc, matched case-insensitively on the whole path.
_V1 = re.compile(r"/v1/.*", re.IGNORECASE | re.DOTALL)
_TARGET = r"/v1/models/([^/:]+)(?:/versions/(\d+)|/labels/([^/:]+))?"
_POST = re.compile(_TARGET + r":(predict|classify|regress)", re.IGNORECASE)
_GET = re.compile(_TARGET + r"(/metadata)?", re.IGNORECASE)
_MODELS = re.compile(r"/v1/models/?", re.IGNORECASE)
_INT64_MAX = 2**63 - 1


class TfServingRest:
    """Handles every request whose path matches ``(?i)/v1/.*``."""

    def __init__(self, dataplane: DataPlane, *, max_request_bytes: int) -> None:
        self._dataplane = dataplane
        self._limit = max_request_bytes
        self.endpoint = guarded(self._handle)

    @staticmethod
    def claims(path: str) -> bool:
        """Whether ``path`` belongs to the TF Serving API."""
        return _V1.fullmatch(path) is not None

    async def _handle(self, request: Request) -> Response:
        path = request.scope.get("raw_path", b"").decode("latin-1") or request.url.path
        method = request.method
        if method == "POST" and (match := _POST.fullmatch(path)):
            name, version, label = _target(match)
            verb = match.group(4).lower()
            if verb != "predict":
                return await self._examples(request, name, version, label, verb)
            return await self._predict(request, name, version, label)
        if method == "GET" and _MODELS.fullmatch(path):
            raise ProtocolError("Missing model name in request.")
        if method == "GET" and (match := _GET.fullmatch(path)):
            name, version, label = _target(match)
            if match.group(4):
                return self._metadata(name, version, label)
            statuses = self._dataplane.status(name, version=version, label=label)
            return json_response(to_json_dict(status_response(statuses)))
        raise ProtocolError(f"Malformed request: {method} {path}")

    async def _predict(
        self, request: Request, name: str, version: int | None, label: str | None
    ) -> Response:
        body = await read_body(request, self._limit)
        target = self._dataplane.resolve(name, version=version, label=label)
        document = loads(body)
        if not isinstance(document, dict):
            raise ProtocolError("JSON Parse error: the request body must be a JSON object.")
        signature_name = document.get("signature_name", "")
        if not isinstance(signature_name, str):
            raise ProtocolError("'signature_name' key must be a string value.")
        signature = target.signature(signature_name)
        row = "instances" in document
        if row and "inputs" in document:
            raise ProtocolError(
                "Not formatted correctly expecting only one of 'inputs' or 'instances' keys exists"
            )
        if not row and "inputs" not in document:
            raise ProtocolError("Missing 'inputs' or 'instances' key")
        specs = signature.inputs
        if row:
            inputs = row_inputs(document["instances"], specs)
        else:
            inputs = columnar_inputs(document["inputs"], specs)
        outputs = await self._dataplane.predict(target, inputs, signature=signature)
        answer = _predictions(outputs) if row else _columns(outputs)
        return json_response(None, body=dumps(answer, arrays=outputs.values()))

    async def _examples(
        self, request: Request, name: str, version: int | None, label: str | None, verb: str
    ) -> Response:
        body = await read_body(request, self._limit)
        target = self._dataplane.resolve(name, version=version, label=label)
        document = loads(body)
        if not isinstance(document, dict):
            raise ProtocolError("JSON Parse error: the request body must be a JSON object.")
        signature_name = document.get("signature_name", "")
        if not isinstance(signature_name, str):
            raise ProtocolError("'signature_name' key must be a string value.")
        method = CLASSIFY_METHOD if verb == "classify" else REGRESS_METHOD
        examples = examples_from_json(document)
        result = await run_examples(self._dataplane, target, signature_name, method, examples)
        if isinstance(result, Classification):
            answer: Any = [[[label_, score] for label_, score in row] for row in result.classes]
        else:
            answer = result
        return json_response({"results": answer})

    def _metadata(self, name: str, version: int | None, label: str | None) -> Response:
        target = self._dataplane.resolve(name, version=version, label=label)
        return json_response(
            {
                "model_spec": to_json_dict(model_spec(target.name, target.version, "")),
                "metadata": {"signature_def": to_json_dict(signature_def_map(target.model))},
            }
        )


def _target(match: re.Match[str]) -> tuple[str, int | None, str | None]:
    name, version_text, label = match.group(1, 2, 3)
    version = None
    if version_text is not None:
        version = int(version_text)
        if version > _INT64_MAX:
            raise ProtocolError(f"Failed to convert version: {version_text} to numeric.")
    return unquote(name), version, None if label is None else unquote(label)


def _predictions(outputs: Mapping[str, Array]) -> dict[str, Any]:
    """Row format: one output → a bare list; several → one object per batch item."""
    batch = None
    for name, array in outputs.items():
        if array.ndim == 0:
            raise ProtocolError(f"Tensor name: {name} has no shape information ")
        if batch is not None and array.shape[0] != batch:
            raise ProtocolError(
                f"Tensor name: {name} has inconsistent batch size: {array.shape[0]} "
                f"expecting: {batch}"
            )
        batch = array.shape[0]
    if len(outputs) == 1:
        ((name, array),) = outputs.items()
        return {"predictions": json_value(name, array)}
    rows = [
        {name: json_value(name, array[i]) for name, array in outputs.items()}
        for i in range(batch or 0)
    ]
    return {"predictions": rows}


def _columns(outputs: Mapping[str, Array]) -> dict[str, Any]:
    """Columnar format: one output → its value; several → an object keyed by output name."""
    if len(outputs) == 1:
        ((name, array),) = outputs.items()
        return {"outputs": json_value(name, array)}
    return {"outputs": {name: json_value(name, array) for name, array in outputs.items()}}
