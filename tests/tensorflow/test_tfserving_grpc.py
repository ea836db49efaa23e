"""tensorflow-serving-api's own stubs, unchanged, against veil's gRPC port."""

from __future__ import annotations

import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    inference_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
    regression_pb2,
)

from tests.tensorflow.conftest import Server

H2 = "saved_model_half_plus_two_2_versions"


@pytest.fixture(params=["tf", "onnx"])
def channel(request: pytest.FixtureRequest, servers: dict[str, Server]) -> grpc.Channel:
    """An insecure channel to the SavedModel server and to the ONNX one."""
    with grpc.insecure_channel(servers[request.param].grpc) as opened:
        yield opened


def test_predict_with_typed_and_tensor_content_inputs(channel: grpc.Channel) -> None:
    """PredictionServiceStub.Predict works with tf.make_tensor_proto and *_val inputs."""
    stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "default"
    request.inputs["x"].CopyFrom(tf.make_tensor_proto(np.array([[1.0], [2.0]], np.float32)))
    response = stub.Predict(request, timeout=30)
    np.testing.assert_array_equal(tf.make_ndarray(response.outputs["y"]), [[2.5], [3.0]])
    assert response.model_spec.version.value == 123
    assert response.model_spec.signature_name == "serving_default"
    typed = predict_pb2.PredictRequest()
    typed.model_spec.name = H2
    typed.model_spec.version_label = "Version_Label"
    typed.inputs["x"].dtype = tf.float32.as_datatype_enum
    typed.inputs["x"].tensor_shape.dim.add(size=3)
    typed.inputs["x"].float_val.extend([1.0, 2.0, 5.0])
    answer = stub.Predict(typed, timeout=30)
    np.testing.assert_array_equal(tf.make_ndarray(answer.outputs["y"]), [2.5, 3.0, 4.5])


def test_get_model_metadata_unpacks_a_signature_def_map(channel: grpc.Channel) -> None:
    """GetModelMetadata's Any unpacks into tensorflow_serving's SignatureDefMap."""
    stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
    request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
    request.model_spec.name = "default"
    response = stub.GetModelMetadata(request, timeout=30)
    signatures = get_model_metadata_pb2.SignatureDefMap()
    assert response.metadata["signature_def"].Unpack(signatures)
    default = signatures.signature_def["serving_default"]
    assert default.inputs["x"].name == "x:0"
    assert default.inputs["x"].dtype == tf.float32.as_datatype_enum
    assert response.model_spec.version.value == 123


def test_get_model_status_reports_available(channel: grpc.Channel) -> None:
    """ModelServiceStub.GetModelStatus reports version 123 AVAILABLE with error code OK."""
    stub = model_service_pb2_grpc.ModelServiceStub(channel)
    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = H2
    response = stub.GetModelStatus(request, timeout=30)
    (status,) = response.model_version_status
    assert (status.version, status.state, status.status.error_code) == (
        123,
        get_model_status_pb2.ModelVersionStatus.AVAILABLE,
        0,
    )


def test_unknown_model_is_not_found(channel: grpc.Channel) -> None:
    """An unknown model answers NOT_FOUND with TF Serving's message."""
    stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "half"
    request.inputs["x"].CopyFrom(tf.make_tensor_proto([1.0]))
    with pytest.raises(grpc.RpcError) as info:
        stub.Predict(request, timeout=30)
    assert info.value.code() == grpc.StatusCode.NOT_FOUND
    assert info.value.details() == "Servable not found for request: Latest(half)"


def _example(x: float) -> tf.train.Example:
    return tf.train.Example(
        features=tf.train.Features(
            feature={"x": tf.train.Feature(float_list=tf.train.FloatList(value=[x]))}
        )
    )


def test_classify_regress_and_multi_inference(servers: dict[str, Server]) -> None:
    """Classify, Regress and MultiInference answer like TF Serving on the SavedModel."""
    with grpc.insecure_channel(servers["tf"].grpc) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        classify = classification_pb2.ClassificationRequest()
        classify.model_spec.name = H2
        classify.model_spec.signature_name = "classify_x_to_y"
        classify.input.example_list.examples.append(_example(20.0))
        result = stub.Classify(classify, timeout=30).result
        assert [(c.label, c.score) for c in result.classifications[0].classes] == [("", 12.0)]
        regress = regression_pb2.RegressionRequest()
        regress.model_spec.name = H2
        regress.model_spec.signature_name = "regress_x_to_y"
        regress.input.example_list.examples.extend([_example(80.0), _example(2.0)])
        values = stub.Regress(regress, timeout=30).result.regressions
        assert [r.value for r in values] == [42.0, 3.0]
        multi = inference_pb2.MultiInferenceRequest()
        for signature, method in (("classify_x_to_y", "classify"), ("regress_x_to_y2", "regress")):
            task = multi.tasks.add(method_name=f"tensorflow/serving/{method}")
            task.model_spec.name = H2
            task.model_spec.signature_name = signature
        multi.input.example_list.examples.append(_example(2.0))
        results = stub.MultiInference(multi, timeout=30).results
        assert results[0].classification_result.classifications[0].classes[0].score == 3.0
        assert results[1].regression_result.regressions[0].value == 4.0
