"""The benchmark's models and request bodies, built offline into bench/work (never committed).

- ``digits``: the demo MLP (``veil.testing.train_digits_model``), input ``X`` float[?,64].
- ``resnet50``: the ``onnx`` wheel's ``light_resnet50`` (ResNet-50 graph whose weights are
  ``ConstantOfShape`` fills) with every fill replaced by random He-init weights: 25.6 M params,
  about 102 MB, ResNet-50 FLOPs; input ``gpu_0/data_0`` float[1,3,224,224].
- ``big``: a 1 GB model (one MatMul, 8192 x 30518 float32, then ReduceMean) for load timing.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

SEED = 20261205


@dataclass(frozen=True)
class BenchModel:
    name: str
    path: Path  # plaintext .onnx in bench/work/models/<name>/1/model.onnx
    input_name: str
    input: np.ndarray  # one batch-1 input


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)


def digits(work: Path) -> BenchModel:
    path = work / "models" / "digits" / "1" / "model.onnx"
    x_file = work / "models" / "digits-x.npy"
    if not path.exists() or not x_file.exists():
        from veil.testing import train_digits_model

        model = train_digits_model()
        _write(path, model.onnx_bytes)
        np.save(x_file, model.x_test[:1])
    return BenchModel("digits", path, "X", np.load(x_file).astype(np.float32))


def resnet50(work: Path) -> BenchModel:
    path = work / "models" / "resnet50" / "1" / "model.onnx"
    if not path.exists():
        _write(path, _build_resnet50())
    rng = np.random.default_rng(SEED)
    x = rng.random((1, 3, 224, 224), dtype=np.float32)
    return BenchModel("resnet50", path, "gpu_0/data_0", x)


def _build_resnet50() -> bytes:
    import onnx
    from onnx import helper, numpy_helper

    light = Path(onnx.__file__).parent / "backend/test/data/light/light_resnet50.onnx"
    model = onnx.load(str(light))
    graph = model.graph
    inits = {i.name: i for i in graph.initializer}
    rng = np.random.default_rng(SEED)
    new_nodes, new_inits, used_shapes = [], [], set()
    for node in graph.node:
        if node.op_type == "ConstantOfShape" and node.input[0] in inits:
            shape = tuple(int(d) for d in numpy_helper.to_array(inits[node.input[0]]))
            fan_in = int(np.prod(shape[1:])) if len(shape) > 1 else max(shape[0], 1)
            value = (rng.standard_normal(shape, dtype=np.float32) * np.sqrt(2.0 / fan_in)).astype(
                np.float32
            )
            if len(shape) == 1:  # biases, BN scale/shift/mean/var: keep them benign
                offset = 1.0 if "var" in node.output[0] or "scale" in node.output[0] else 0.0
                value = np.abs(value) * 0.1 + offset
            new_inits.append(numpy_helper.from_array(value, node.output[0]))
            used_shapes.add(node.input[0])
            continue
        new_nodes.append(node)
    still_used = {i for n in new_nodes for i in n.input}
    keep = [i for i in graph.initializer if i.name in still_used]
    data_input = next(i for i in graph.input if i.name == "gpu_0/data_0")
    new_graph = helper.make_graph(
        new_nodes, graph.name, [data_input], list(graph.output), initializer=keep + new_inits
    )
    out = helper.make_model(new_graph, opset_imports=list(model.opset_import))
    out.ir_version = 7
    onnx.checker.check_model(out)
    return out.SerializeToString()


def big_model_bytes(rows: int = 8192, cols: int = 30518) -> bytes:
    """A ~1 GB ONNX model: ``ReduceMean(MatMul(X[?, rows], W[rows, cols]), axes=1)``."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(SEED)
    weight = rng.standard_normal((rows, cols), dtype=np.float32)
    weight *= np.float32(1.0 / np.sqrt(rows))
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["X", "W"], ["H"]),
            helper.make_node("ReduceMean", ["H"], ["Y"], keepdims=1, axes=[1]),
        ],
        "big",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, ["N", rows])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, ["N", 1])],
        initializer=[numpy_helper.from_array(weight, "W")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 7
    return model.SerializeToString()


def v2_json(m: BenchModel) -> bytes:
    """The KServe v2 / Open Inference Protocol JSON body (the same bytes for every server)."""
    doc = {
        "inputs": [
            {
                "name": m.input_name,
                "shape": list(m.input.shape),
                "datatype": "FP32",
                "data": [float(v) for v in m.input.ravel()],
            }
        ]
    }
    return json.dumps(doc, separators=(",", ":")).encode()


def tfs_json(m: BenchModel) -> bytes:
    """TF Serving's row format ``{"instances": [...]}`` (veil's drop-in REST API)."""
    return json.dumps({"instances": m.input.tolist()}, separators=(",", ":")).encode()


def tfs_grpc(m: BenchModel) -> bytes:
    """A serialised TF Serving ``PredictRequest`` with ``tensor_content`` (veil's gRPC API).

    The bench builds it with veil's generated protos (the TF Serving ``.proto`` files).
    """
    from veil.serving._proto import predict_pb2, tensor_pb2, tensor_shape_pb2, types_pb2

    req = predict_pb2.PredictRequest()
    req.model_spec.name = m.name
    tensor = tensor_pb2.TensorProto(
        dtype=types_pb2.DT_FLOAT,
        tensor_shape=tensor_shape_pb2.TensorShapeProto(
            dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=d) for d in m.input.shape]
        ),
        tensor_content=m.input.tobytes(),
    )
    req.inputs[m.input_name].CopyFrom(tensor)
    return req.SerializeToString()
