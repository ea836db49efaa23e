"""TF Serving gRPC API: Predict (tensor_content and typed fields), metadata, status, errors."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import grpc
import numpy as np
import pytest

from veil.serving import ModelConfig
from veil.serving._proto import (
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
    tensor_pb2,
    types_pb2,
)

from ._support import Digits, ServerThread, half_plus_two_onnx


@pytest.fixture
def channel(
    serve: Callable[..., ServerThread], model_dir: Callable[..., ModelConfig], digits: Digits
) -> Iterator[grpc.Channel]:
    """A plaintext channel to a server with half_plus_two (version 123) and digits."""
    server = serve(
        model_dir("half_plus_two", half_plus_two_onnx(), version=123),
        model_dir("digits", digits.onnx),
    )
    with grpc.insecure_channel(server.grpc_target) as open_channel:
        yield open_channel


def float_tensor(values: list[float], *, content: bool) -> tensor_pb2.TensorProto:
    """A DT_FLOAT vector, as raw tensor_content or as float_val."""
    tensor = tensor_pb2.TensorProto(dtype=types_pb2.DT_FLOAT)
    tensor.tensor_shape.dim.add(size=len(values))
    if content:
        tensor.tensor_content = np.asarray(values, dtype="<f4").tobytes()
    else:
        tensor.float_val.extend(values)
    return tensor


def predict(
    channel: grpc.Channel, request: predict_pb2.PredictRequest
) -> predict_pb2.PredictResponse:
    """Call PredictionService/Predict."""
    stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
    response: predict_pb2.PredictResponse = stub.Predict(request, timeout=10)
    return response


@pytest.mark.parametrize("content", [True, False])
def test_predict_accepts_tensor_content_and_float_val(channel: grpc.Channel, content: bool) -> None:
    """Predict decodes both encodings and replies with typed float_val like TF Serving."""
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "half_plus_two"
    request.inputs["x"].CopyFrom(float_tensor([2.0, 3.0, 4.0], content=content))
    response = predict(channel, request)
    output = response.outputs["y"]
    assert output.dtype == types_pb2.DT_FLOAT
    assert [dim.size for dim in output.tensor_shape.dim] == [3]
    assert list(output.float_val) == [3.0, 3.5, 4.0]
    assert not output.tensor_content
    assert response.model_spec.name == "half_plus_two"
    assert response.model_spec.version.value == 123
    assert response.model_spec.signature_name == "serving_default"


def test_single_value_is_broadcast(channel: grpc.Channel) -> None:
    """A typed field with one value fills the whole shape."""
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "half_plus_two"
    tensor = request.inputs["x"]
    tensor.dtype = types_pb2.DT_FLOAT
    tensor.tensor_shape.dim.add(size=4)
    tensor.float_val.append(2.0)
    assert list(predict(channel, request).outputs["y"].float_val) == [3.0] * 4


def test_classifier_outputs_and_output_filter(channel: grpc.Channel, digits: Digits) -> None:
    """int64 labels come back in int64_val; output_filter limits the outputs."""
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "digits"
    request.model_spec.version.value = 1
    tensor = request.inputs["X"]
    tensor.dtype = types_pb2.DT_FLOAT
    tensor.tensor_shape.dim.add(size=len(digits.rows))
    tensor.tensor_shape.dim.add(size=64)
    tensor.tensor_content = digits.rows.astype("<f4").tobytes()
    response = predict(channel, request)
    assert set(response.outputs) == {"label", "probabilities"}
    assert response.outputs["label"].dtype == types_pb2.DT_INT64
    assert len(response.outputs["label"].int64_val) == len(digits.rows)
    request.output_filter.append("label")
    assert set(predict(channel, request).outputs) == {"label"}


def test_get_model_metadata_packs_a_signature_def_map(channel: grpc.Channel) -> None:
    """GetModelMetadata returns a SignatureDefMap in an Any under "signature_def"."""
    stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
    request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
    request.model_spec.name = "half_plus_two"
    response = stub.GetModelMetadata(request, timeout=10)
    packed = response.metadata["signature_def"]
    assert packed.type_url == "type.googleapis.com/tensorflow.serving.SignatureDefMap"
    signatures = get_model_metadata_pb2.SignatureDefMap()
    assert packed.Unpack(signatures)
    signature = signatures.signature_def["serving_default"]
    assert signature.method_name == "tensorflow/serving/predict"
    assert signature.inputs["x"].name == "x:0"
    assert signature.inputs["x"].dtype == types_pb2.DT_FLOAT
    assert [dim.size for dim in signature.inputs["x"].tensor_shape.dim] == [-1]
    assert response.model_spec.version.value == 123


def test_get_model_status(channel: grpc.Channel) -> None:
    """ModelService/GetModelStatus reports the served version as AVAILABLE with OK."""
    stub = model_service_pb2_grpc.ModelServiceStub(channel)
    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = "half_plus_two"
    (status,) = stub.GetModelStatus(request, timeout=10).model_version_status
    assert status.version == 123
    assert status.state == get_model_status_pb2.ModelVersionStatus.AVAILABLE
    assert status.status.error_code == 0
    assert status.status.error_message == ""


def _error(call: Callable[[], object]) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as caught:
        call()
    error = caught.value
    return error.code(), error.details()


def test_errors_are_grpc_statuses_with_tf_messages(channel: grpc.Channel) -> None:
    """Unknown models, versions, signatures and dtypes map to NOT_FOUND / INVALID_ARGUMENT."""
    prediction = prediction_service_pb2_grpc.PredictionServiceStub(channel)
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "nope"
    assert _error(lambda: prediction.Predict(request, timeout=10)) == (
        grpc.StatusCode.NOT_FOUND,
        "Servable not found for request: Latest(nope)",
    )
    request.model_spec.name = "half_plus_two"
    request.model_spec.version.value = 5
    assert _error(lambda: prediction.Predict(request, timeout=10)) == (
        grpc.StatusCode.NOT_FOUND,
        "Servable not found for request: Specific(half_plus_two, 5)",
    )
    request.model_spec.ClearField("version")
    request.model_spec.signature_name = "other"
    assert _error(lambda: prediction.Predict(request, timeout=10)) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        'Serving signature name: "other" not found in signature def',
    )
    request.model_spec.signature_name = ""
    tensor = request.inputs["x"]
    tensor.dtype = types_pb2.DT_DOUBLE
    tensor.tensor_shape.dim.add(size=1)
    tensor.double_val.append(1.0)
    assert _error(lambda: prediction.Predict(request, timeout=10)) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "Expects arg[0] to be float but double is provided",
    )
    status = model_service_pb2_grpc.ModelServiceStub(channel)
    status_request = get_model_status_pb2.GetModelStatusRequest()
    status_request.model_spec.name = "nope"
    assert _error(lambda: status.GetModelStatus(status_request, timeout=10)) == (
        grpc.StatusCode.NOT_FOUND,
        "Could not find any versions of model nope",
    )


def test_inconsistent_tensor_is_invalid_argument(channel: grpc.Channel) -> None:
    """tensor_content whose size does not match the shape is rejected."""
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "half_plus_two"
    tensor = request.inputs["x"]
    tensor.dtype = types_pb2.DT_FLOAT
    tensor.tensor_shape.dim.add(size=3)
    tensor.tensor_content = b"\x00" * 8
    code, message = _error(lambda: predict(channel, request))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert "tensor_content has 8 bytes" in message


def test_classify_on_onnx_is_a_missing_signature(channel: grpc.Channel) -> None:
    """Classify on an ONNX model answers TF Serving's missing-signature error."""
    from veil.serving._proto import classification_pb2

    call = channel.unary_unary(
        "/tensorflow.serving.PredictionService/Classify",
        request_serializer=classification_pb2.ClassificationRequest.SerializeToString,
        response_deserializer=classification_pb2.ClassificationResponse.FromString,
    )
    request = classification_pb2.ClassificationRequest()
    request.model_spec.name = "half_plus_two"
    request.model_spec.signature_name = "classify_x_to_y"
    request.input.example_list.examples.add().features.feature["x"].float_list.value.append(1.0)
    code, message = _error(lambda: call(request, timeout=10))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert message == 'Serving signature name: "classify_x_to_y" not found in signature def'
