"""ONNX models that compute TF Serving's test functions, with an input of any shape."""

from __future__ import annotations

from onnx import TensorProto, helper


def _affine(name: str, offset: float) -> bytes:
    graph = helper.make_graph(
        [
            helper.make_node("Mul", ["x", "half"], ["xh"]),
            helper.make_node("Add", ["xh", "offset"], ["y"]),
        ],
        name,
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, None)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        initializer=[
            helper.make_tensor("half", TensorProto.FLOAT, [], [0.5]),
            helper.make_tensor("offset", TensorProto.FLOAT, [], [offset]),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    # No onnx.checker: it wants a shape, and these inputs deliberately have none (any rank).
    return model.SerializeToString()


def half_plus_two_onnx() -> bytes:
    """``y = 0.5 x + 2`` for ``x`` of any shape."""
    return _affine("half_plus_two", 2.0)


def half_plus_three_onnx() -> bytes:
    """``y = 0.5 x + 3`` for ``x`` of any shape."""
    return _affine("half_plus_three", 3.0)
