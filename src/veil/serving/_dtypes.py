"""One table of tensor element types: numpy, ONNX, TensorFlow (DT_*) and KServe v2 names."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["DType", "by_kserve", "by_numpy", "by_onnx", "by_tf"]


@dataclass(frozen=True)
class DType:
    """A tensor element type under every name the protocols use."""

    numpy: np.dtype[np.generic]
    onnx: str  # onnxruntime NodeArg.type, e.g. "tensor(float)"
    tf_enum: int  # tensorflow.DataType number
    tf_name: str  # TF's DataTypeString, used in its error messages ("float")
    kserve: str  # KServe v2 / OIP datatype ("FP32")

    @property
    def tf_enum_name(self) -> str:
        """The ``DT_*`` enum name, as printed in JSON metadata."""
        return "DT_" + self.tf_name.upper()

    @property
    def is_string(self) -> bool:
        """Whether elements are strings (numpy object arrays)."""
        return self.tf_enum == 7


_TABLE = (
    DType(np.dtype(np.float32), "tensor(float)", 1, "float", "FP32"),
    DType(np.dtype(np.float64), "tensor(double)", 2, "double", "FP64"),
    DType(np.dtype(np.int32), "tensor(int32)", 3, "int32", "INT32"),
    DType(np.dtype(np.uint8), "tensor(uint8)", 4, "uint8", "UINT8"),
    DType(np.dtype(np.int16), "tensor(int16)", 5, "int16", "INT16"),
    DType(np.dtype(np.int8), "tensor(int8)", 6, "int8", "INT8"),
    DType(np.dtype(object), "tensor(string)", 7, "string", "BYTES"),
    DType(np.dtype(np.int64), "tensor(int64)", 9, "int64", "INT64"),
    DType(np.dtype(np.bool_), "tensor(bool)", 10, "bool", "BOOL"),
    DType(np.dtype(np.uint16), "tensor(uint16)", 17, "uint16", "UINT16"),
    DType(np.dtype(np.float16), "tensor(float16)", 19, "half", "FP16"),
    DType(np.dtype(np.uint32), "tensor(uint32)", 22, "uint32", "UINT32"),
    DType(np.dtype(np.uint64), "tensor(uint64)", 23, "uint64", "UINT64"),
)
_BY_ONNX = {row.onnx: row for row in _TABLE}
_BY_TF = {row.tf_enum: row for row in _TABLE}
_BY_KSERVE = {row.kserve: row for row in _TABLE}
_BY_NUMPY = {row.numpy: row for row in _TABLE}


def by_onnx(onnx_type: str) -> DType | None:
    """The type of an onnxruntime ``NodeArg.type``, or None for non-tensor / unsupported types."""
    return _BY_ONNX.get(onnx_type)


def by_tf(tf_enum: int) -> DType | None:
    """The type of a ``tensorflow.DataType`` number, or None if unsupported."""
    return _BY_TF.get(tf_enum)


def by_kserve(name: str) -> DType | None:
    """The type of a KServe v2 datatype name, or None if unsupported."""
    return _BY_KSERVE.get(name)


def by_numpy(dtype: np.dtype[np.generic]) -> DType | None:
    """The type of a numpy dtype (``<U``/``S`` strings count as object strings), or None."""
    if dtype.kind in "USO":
        return _BY_TF[7]
    return _BY_NUMPY.get(dtype)
