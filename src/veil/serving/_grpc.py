"""TF Serving gRPC API on grpc.aio: PredictionService (Predict, GetModelMetadata), ModelService."""

from __future__ import annotations

import logging
import secrets
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import grpc
from google.protobuf import any_pb2

from veil.errors import Error, ProtocolError
from veil.serving._dataplane import DataPlane, Resolved, tf_code
from veil.serving._proto import (
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)
from veil.serving._tensors import array_from_proto, array_to_proto
from veil.serving._tfs_protos import model_spec, signature_def_map, status_response

__all__ = ["add_services", "server_options"]

_log = logging.getLogger(__name__)
_MAX_MESSAGE = 2**31 - 1
_SIGNATURE_DEF = "signature_def"

Reply = TypeVar("Reply")


def server_options() -> list[tuple[str, int]]:
    """grpc.aio server options: TF Serving's 2 GiB message limits, no port sharing."""
    return [
        ("grpc.max_send_message_length", _MAX_MESSAGE),
        ("grpc.max_receive_message_length", _MAX_MESSAGE),
        ("grpc.so_reuseport", 0),
    ]


def add_services(server: grpc.aio.Server, dataplane: DataPlane) -> None:
    """Register PredictionService and ModelService on ``server``."""
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(
        _PredictionService(dataplane), server
    )
    model_service_pb2_grpc.add_ModelServiceServicer_to_server(_ModelService(dataplane), server)


async def _answer(context: grpc.aio.ServicerContext, call: Callable[[], Awaitable[Reply]]) -> Reply:
    """Run ``call``; veil errors become gRPC statuses with TF Serving's messages."""
    try:
        return await call()
    except Error as exc:
        await context.abort(getattr(grpc.StatusCode, tf_code(exc)), exc.message)
    except Exception:  # noqa: BLE001 - logged with traceback, answered as INTERNAL
        request_id = secrets.token_hex(8)
        _log.exception("grpc request failed", extra={"request_id": request_id})
        await context.abort(
            grpc.StatusCode.INTERNAL, f"Internal error (request id {request_id}); see server logs."
        )
    raise AssertionError("unreachable: abort raises")


def _resolve(dataplane: DataPlane, spec: Any) -> Resolved:
    if not spec.name:
        raise ProtocolError("Missing ModelSpec")
    choice = spec.WhichOneof("version_choice")
    version = spec.version.value if choice == "version" else None
    label = spec.version_label if choice == "version_label" else None
    return dataplane.resolve(spec.name, version=version, label=label)


class _PredictionService(prediction_service_pb2_grpc.PredictionServiceServicer):  # type: ignore[misc]
    def __init__(self, dataplane: DataPlane) -> None:
        self._dataplane = dataplane

    async def Predict(  # noqa: N802 - gRPC method name
        self, request: predict_pb2.PredictRequest, context: grpc.aio.ServicerContext
    ) -> predict_pb2.PredictResponse:
        async def call() -> predict_pb2.PredictResponse:
            if not request.HasField("model_spec"):
                raise ProtocolError("Missing ModelSpec")
            target = _resolve(self._dataplane, request.model_spec)
            signature = self._dataplane.check_signature(request.model_spec.signature_name)
            inputs = {name: array_from_proto(name, proto) for name, proto in request.inputs.items()}
            outputs = await self._dataplane.predict(target, inputs, list(request.output_filter))
            response = predict_pb2.PredictResponse(
                model_spec=model_spec(target.name, target.version, signature)
            )
            for name, array in outputs.items():
                response.outputs[name].CopyFrom(array_to_proto(array))
            return response

        return await _answer(context, call)

    async def GetModelMetadata(  # noqa: N802 - gRPC method name
        self,
        request: get_model_metadata_pb2.GetModelMetadataRequest,
        context: grpc.aio.ServicerContext,
    ) -> get_model_metadata_pb2.GetModelMetadataResponse:
        async def call() -> get_model_metadata_pb2.GetModelMetadataResponse:
            if not request.HasField("model_spec"):
                raise ProtocolError("Missing ModelSpec")
            if not request.metadata_field:
                raise ProtocolError(
                    "GetModelMetadataRequest must specify at least one metadata_field"
                )
            for field in request.metadata_field:
                if field != _SIGNATURE_DEF:
                    raise ProtocolError(f"Metadata field {field} is not supported")
            target = _resolve(self._dataplane, request.model_spec)
            packed = any_pb2.Any()
            packed.Pack(signature_def_map(target.model))
            response = get_model_metadata_pb2.GetModelMetadataResponse(
                model_spec=model_spec(target.name, target.version, "")
            )
            response.metadata[_SIGNATURE_DEF].CopyFrom(packed)
            return response

        return await _answer(context, call)


class _ModelService(model_service_pb2_grpc.ModelServiceServicer):  # type: ignore[misc]
    def __init__(self, dataplane: DataPlane) -> None:
        self._dataplane = dataplane

    async def GetModelStatus(  # noqa: N802 - gRPC method name
        self,
        request: get_model_status_pb2.GetModelStatusRequest,
        context: grpc.aio.ServicerContext,
    ) -> get_model_status_pb2.GetModelStatusResponse:
        async def call() -> get_model_status_pb2.GetModelStatusResponse:
            spec: model_pb2.ModelSpec = request.model_spec
            if not spec.name:
                raise ProtocolError("Missing ModelSpec")
            choice = spec.WhichOneof("version_choice")
            statuses = self._dataplane.status(
                spec.name,
                version=spec.version.value if choice == "version" else None,
                label=spec.version_label if choice == "version_label" else None,
            )
            return status_response(statuses)

        return await _answer(context, call)
