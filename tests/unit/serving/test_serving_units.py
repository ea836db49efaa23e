"""Pure parts of the server: settings validation and tensor conversions."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from veil.errors import ConfigurationError, ProtocolError
from veil.serving import ModelConfig, ServingConfig, TLSMaterial
from veil.serving._dtypes import by_onnx
from veil.serving._json_tensors import array_from_json, dumps
from veil.serving._onnx import TensorSpec
from veil.serving._proto import tensor_pb2, types_pb2
from veil.serving._repository import ModelRepository
from veil.serving._tensors import array_from_proto, array_to_proto


def spec(onnx_type: str, shape: tuple[int | None, ...] = (None,)) -> TensorSpec:
    """A tensor spec of the given ONNX type."""
    dtype = by_onnx(onnx_type)
    assert dtype is not None
    return TensorSpec(name="t", dtype=dtype, shape=shape)


@pytest.mark.parametrize(
    "make",
    [
        lambda: ModelConfig(name="a/b", base_path="/m"),
        lambda: ModelConfig(name="a", base_path=""),
        lambda: ServingConfig(models=(ModelConfig("a", "/x"), ModelConfig("a", "/y"))),
        lambda: ServingConfig(models=(), rest_port=70000),
        lambda: ServingConfig(models=(), rest_port=9000, grpc_port=9000),
        lambda: TLSMaterial(cert_chain_pem=b"nope", private_key_pem=b"nope"),
    ],
)
def test_invalid_settings_raise_configuration_error(make: object) -> None:
    """Settings that cannot work are refused when constructed."""
    with pytest.raises(ConfigurationError):
        make()  # type: ignore[operator]


def test_tls_material_repr_hides_the_key() -> None:
    """The private key never appears in reprs (and so in logs)."""
    material = TLSMaterial(
        cert_chain_pem=b"-----BEGIN CERTIFICATE-----",
        private_key_pem=b"-----BEGIN PRIVATE KEY-----s3cr3t",
    )
    assert "s3cr3t" not in repr(material)


def test_json_int_input_rejects_floats_and_out_of_range() -> None:
    """Integer inputs accept only integers that fit the type."""
    assert array_from_json([1, 2], spec("tensor(int32)"), "inputs").dtype == np.int32
    with pytest.raises(ProtocolError, match="Type: Number is not of expected type: int32"):
        array_from_json([1, 2.5], spec("tensor(int32)"), "inputs")
    with pytest.raises(ProtocolError, match="out of range"):
        array_from_json([2**40], spec("tensor(int32)"), "inputs")


def test_json_strings_and_b64() -> None:
    """String inputs take text or {"b64": ...} values; string outputs ending in _bytes are b64."""
    array = array_from_json(["a", {"b64": "AAE="}], spec("tensor(string)"), "inputs")
    assert array.tolist() == ["a", b"\x00\x01"]
    from veil.serving._json_tensors import json_value

    assert json_value("out_bytes", np.array([b"\x00"], dtype=object)) == [{"b64": "AA=="}]
    assert json_value("out", np.array(["x"], dtype=object)) == ["x"]


def test_dumps_writes_non_finite_tokens() -> None:
    """Non-finite floats are written as NaN / Infinity, finite ones by orjson."""
    values = np.array([np.nan, -np.inf, 1.5], dtype=np.float32)
    assert dumps({"p": values}, arrays=[values]) == b'{"p":[NaN,-Infinity,1.5]}'
    finite = np.array([0.1], dtype=np.float32)
    assert dumps({"p": finite}, arrays=[finite]) == b'{"p":[0.1]}'


@pytest.mark.parametrize(
    "array",
    [
        np.arange(6, dtype=np.float32).reshape(2, 3),
        np.array([1, -2], dtype=np.int8),
        np.array([2**40], dtype=np.int64),
        np.array([True, False]),
        np.array([1.5, -2.0], dtype=np.float16),
        np.array([2**63], dtype=np.uint64),
        np.array(["ab", "c"], dtype=object),
    ],
)
def test_proto_round_trip(array: np.ndarray) -> None:
    """Typed-field TensorProtos decode back to the same array."""
    decoded = array_from_proto("t", array_to_proto(array))
    if array.dtype == object:
        assert decoded.tolist() == [item.encode() for item in array.tolist()]
    else:
        assert decoded.dtype == array.dtype
        np.testing.assert_array_equal(decoded, array)


def test_proto_rejects_bad_counts_and_types() -> None:
    """Wrong value counts and unsupported dtypes are ProtocolErrors."""
    tensor = tensor_pb2.TensorProto(dtype=types_pb2.DT_FLOAT)
    tensor.tensor_shape.dim.add(size=3)
    tensor.float_val.extend([1.0, 2.0])
    with pytest.raises(ProtocolError, match="do not fill shape"):
        array_from_proto("t", tensor)
    with pytest.raises(ProtocolError, match="not supported"):
        array_from_proto("t", tensor_pb2.TensorProto(dtype=types_pb2.DT_COMPLEX64))


def test_repository_refuses_missing_base_path_and_ambiguous_versions(tmp_path: Path) -> None:
    """A missing base path, or a version with both plaintext and encrypted files, is an error."""
    import asyncio

    missing = ModelRepository([ModelConfig("m", str(tmp_path / "missing"))])
    with pytest.raises(ConfigurationError, match="not a directory"):
        asyncio.run(missing.load_all())
    (tmp_path / "m" / "1").mkdir(parents=True)
    (tmp_path / "m" / "1" / "model.onnx").write_bytes(b"x")
    (tmp_path / "m" / "1" / "model.onnx.veil").write_bytes(b"x")
    both = ModelRepository([ModelConfig("m", str(tmp_path / "m"))])
    with pytest.raises(ConfigurationError, match="keep only one"):
        asyncio.run(both.load_all())


def test_invalid_plaintext_model_is_an_error_status(tmp_path: Path) -> None:
    """A file onnxruntime rejects leaves the version in END with a message, not a crash."""
    import asyncio

    (tmp_path / "m" / "4").mkdir(parents=True)
    (tmp_path / "m" / "4" / "model.onnx").write_bytes(b"not onnx")
    repository = ModelRepository([ModelConfig("m", str(tmp_path / "m"))])
    asyncio.run(repository.load_all())
    (status,) = repository.statuses("m", None)
    assert (status.version, status.state.name, status.error_code) == (4, "END", "INVALID_ARGUMENT")
    assert "onnxruntime could not load model m version 4" in status.error_message
    assert repository.summary() == {"m": "ERROR"}


def test_serve_forever_returns_after_stop(tmp_path: Path) -> None:
    """serve_forever serves a started server and returns once stop() is called."""
    import asyncio

    import httpx

    from veil.serving import InferenceServer

    from ._support import half_plus_two_onnx

    (tmp_path / "m" / "1").mkdir(parents=True)
    (tmp_path / "m" / "1" / "model.onnx").write_bytes(half_plus_two_onnx())
    config = ServingConfig(
        models=(ModelConfig("m", str(tmp_path / "m")),), rest_port=0, grpc_port=0
    )

    async def main() -> None:
        server = InferenceServer(config)
        await server.start()
        task = asyncio.create_task(server.serve_forever())
        async with httpx.AsyncClient() as client:
            response = await client.get(f"http://127.0.0.1:{server.rest_port}/healthz")
        assert response.status_code == 200
        await server.stop()
        await asyncio.wait_for(task, 10)

    asyncio.run(main())
