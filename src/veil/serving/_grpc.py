"""TF Serving gRPC API on grpc.aio: PredictionService (Predict, GetModelMetadata), ModelService."""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import grpc

from veil.errors import Error, ProtocolError
from veil.serving._dataplane import DataPlane, Resolved, run_examples, tf_code
from veil.serving._examples import Classification, examples_from_input
from veil.serving._model_config import models_from_proto
from veil.serving._proto import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    inference_pb2,
    model_management_pb2,
    model_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
    regression_pb2,
)
from veil.serving._runtime import CLASSIFY_METHOD, REGRESS_METHOD
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


async def _answer(
    context: grpc.aio.ServicerContext,
    call: Callable[[], Awaitable[Reply]],
    *,
    metrics: tuple[DataPlane, str, str] | None = None,
) -> Reply:
    """Run ``call``; veil errors become gRPC statuses with TF Serving's messages.

    ``metrics`` = (data plane, model name, API) counts the request in the Prometheus metrics.
    """
    started = time.perf_counter()
    status = "OK"
    try:
        return await call()
    except Error as exc:
        status = tf_code(exc)
        await context.abort(getattr(grpc.StatusCode, status), exc.message)
    except Exception:  # noqa: BLE001 - logged with traceback, answered as INTERNAL
        status = "INTERNAL"
        request_id = secrets.token_hex(8)
        _log.exception("grpc request failed", extra={"request_id": request_id})
        await context.abort(
            grpc.StatusCode.INTERNAL, f"Internal error (request id {request_id}); see server logs."
        )
    finally:
        if metrics is not None and metrics[1]:
            dataplane, model, api = metrics
            elapsed = time.perf_counter() - started
            dataplane.metrics.observe(model, api, status, elapsed, entrypoint="GRPC")
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
            signature = target.signature(request.model_spec.signature_name)
            inputs = {name: array_from_proto(name, proto) for name, proto in request.inputs.items()}
            outputs = await self._dataplane.predict(
                target, inputs, list(request.output_filter), signature=signature
            )
            response = predict_pb2.PredictResponse(
                model_spec=model_spec(target.name, target.version, signature.key)
            )
            for name, array in outputs.items():
                response.outputs[name].CopyFrom(array_to_proto(array))
            return response

        return await _answer(
            context, call, metrics=(self._dataplane, request.model_spec.name, "Predict")
        )

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
            response = get_model_metadata_pb2.GetModelMetadataResponse(
                model_spec=model_spec(target.name, target.version, "")
            )
            response.metadata[_SIGNATURE_DEF].Pack(signature_def_map(target.model))
            return response

        return await _answer(context, call)

    async def Classify(  # noqa: N802 - gRPC method name
        self,
        request: classification_pb2.ClassificationRequest,
        context: grpc.aio.ServicerContext,
    ) -> classification_pb2.ClassificationResponse:
        async def call() -> classification_pb2.ClassificationResponse:
            target = _resolve(self._dataplane, request.model_spec)
            name = request.model_spec.signature_name
            result = await run_examples(
                self._dataplane, target, name, CLASSIFY_METHOD, examples_from_input(request.input)
            )
            response = classification_pb2.ClassificationResponse(
                model_spec=model_spec(target.name, target.version, target.signature(name).key)
            )
            _fill_classification(response.result, result)
            return response

        return await _answer(
            context, call, metrics=(self._dataplane, request.model_spec.name, "Classify")
        )

    async def Regress(  # noqa: N802 - gRPC method name
        self, request: regression_pb2.RegressionRequest, context: grpc.aio.ServicerContext
    ) -> regression_pb2.RegressionResponse:
        async def call() -> regression_pb2.RegressionResponse:
            target = _resolve(self._dataplane, request.model_spec)
            name = request.model_spec.signature_name
            values = await run_examples(
                self._dataplane, target, name, REGRESS_METHOD, examples_from_input(request.input)
            )
            response = regression_pb2.RegressionResponse(
                model_spec=model_spec(target.name, target.version, target.signature(name).key)
            )
            for value in values:
                response.result.regressions.add(value=float(value))
            return response

        return await _answer(
            context, call, metrics=(self._dataplane, request.model_spec.name, "Regress")
        )

    async def MultiInference(  # noqa: N802 - gRPC method name
        self, request: inference_pb2.MultiInferenceRequest, context: grpc.aio.ServicerContext
    ) -> inference_pb2.MultiInferenceResponse:
        async def call() -> inference_pb2.MultiInferenceResponse:
            if not request.tasks:
                raise ProtocolError("Tasks is empty")
            names = {task.model_spec.name for task in request.tasks}
            if len(names) != 1:
                raise ProtocolError(
                    "All ModelSpecs in a MultiInferenceRequest must access the same model name."
                )
            examples = examples_from_input(request.input)
            response = inference_pb2.MultiInferenceResponse()
            for task in request.tasks:
                if task.method_name not in (CLASSIFY_METHOD, REGRESS_METHOD):
                    raise ProtocolError(f"Unsupported signature method_name: {task.method_name}")
                target = _resolve(self._dataplane, task.model_spec)
                name = task.model_spec.signature_name
                result = await run_examples(
                    self._dataplane, target, name, task.method_name, examples
                )
                item = response.results.add(
                    model_spec=model_spec(target.name, target.version, target.signature(name).key)
                )
                if isinstance(result, Classification):
                    _fill_classification(item.classification_result, result)
                else:
                    for value in result:
                        item.regression_result.regressions.add(value=float(value))
            return response

        return await _answer(
            context,
            call,
            metrics=(
                self._dataplane,
                request.tasks[0].model_spec.name if request.tasks else "",
                "MultiInference",
            ),
        )


def _fill_classification(target: Any, result: Classification) -> None:
    for row in result.classes:
        classifications = target.classifications.add()
        for label, score in row:
            classifications.classes.add(label=label, score=float(score))


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

    async def HandleReloadConfigRequest(  # noqa: N802 - gRPC method name
        self,
        request: model_management_pb2.ReloadConfigRequest,
        context: grpc.aio.ServicerContext,
    ) -> model_management_pb2.ReloadConfigResponse:
        async def call() -> model_management_pb2.ReloadConfigResponse:
            models = models_from_proto(request.config, source="ReloadConfigRequest")
            await self._dataplane.repository.reconfigure(models)
            return model_management_pb2.ReloadConfigResponse(
                status=get_model_status_pb2.StatusProto(error_code="OK")
            )

        return await _answer(context, call)
