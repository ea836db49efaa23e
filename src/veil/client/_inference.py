"""InferenceClient: TF Serving REST/gRPC and KServe v2 calls, with TLS pinned to a verified root.

A client must never send inputs to an endpoint it has not verified. The client is therefore
built from a :class:`VerifiedCoordinator` (``verify_coordinator(...)`` checked the coordinator's
evidence); the server's certificate must chain to that coordinator root, which only marbles the
coordinator activated under the manifest have::

    verified = verify_coordinator("coordinator:4433", policy)
    with InferenceClient("inference:8501", coordinator=verified) as client:
        outputs = client.predict("mnist", {"x": batch})
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from typing import Any, Literal

import httpx
import numpy as np

from veil.client._coordinator import VerifiedCoordinator
from veil.errors import ConfigurationError, NetworkError, NotFoundError, ProtocolError

__all__ = ["InferenceClient"]

Array = np.ndarray[Any, Any]

# numpy dtype → (TF DataType number, KServe datatype)
_DTYPES: dict[str, tuple[int, str]] = {
    "float32": (1, "FP32"),
    "float64": (2, "FP64"),
    "int32": (3, "INT32"),
    "uint8": (4, "UINT8"),
    "int16": (5, "INT16"),
    "int8": (6, "INT8"),
    "int64": (9, "INT64"),
    "bool": (10, "BOOL"),
    "uint16": (17, "UINT16"),
    "float16": (19, "FP16"),
    "uint32": (22, "UINT32"),
    "uint64": (23, "UINT64"),
}
_TF_TO_NUMPY = {number: np.dtype(name) for name, (number, _) in _DTYPES.items()}
_TYPED_FIELDS = {
    1: "float_val",
    2: "double_val",
    3: "int_val",
    4: "int_val",
    5: "int_val",
    6: "int_val",
    9: "int64_val",
    10: "bool_val",
    17: "int_val",
    19: "half_val",
    22: "uint32_val",
    23: "uint64_val",
}
_KSERVE_TO_NUMPY = {kserve: np.dtype(name) for name, (_, kserve) in _DTYPES.items()}


class InferenceClient:
    """Calls one inference endpoint over TLS that must chain to the verified coordinator root.

    ``address`` is ``host:port`` of the REST listener (``protocol="rest"``) or of the gRPC one
    (``protocol="grpc"``). ``client_cert`` (PEM chain, PEM key) is sent when the server requires
    client certificates.
    """

    def __init__(
        self,
        address: str,
        *,
        coordinator: VerifiedCoordinator,
        protocol: Literal["rest", "grpc"] = "rest",
        client_cert: tuple[bytes, bytes] | None = None,
        timeout: float = 60,
    ) -> None:
        """Pin TLS to ``coordinator.root_pem``; nothing is sent before the first call."""
        if not isinstance(coordinator, VerifiedCoordinator):
            raise ConfigurationError(
                "InferenceClient needs the VerifiedCoordinator returned by verify_coordinator(); "
                "verify the deployment before sending it data."
            )
        self._init(address, coordinator.root_pem, protocol, client_cert, timeout)

    @classmethod
    def from_verified_root(
        cls,
        address: str,
        *,
        root_pem: bytes,
        protocol: Literal["rest", "grpc"] = "rest",
        client_cert: tuple[bytes, bytes] | None = None,
        timeout: float = 60,
    ) -> InferenceClient:
        """Use a coordinator root that ``veil verify`` verified and saved earlier."""
        client = cls.__new__(cls)
        client._init(address, root_pem, protocol, client_cert, timeout)
        return client

    def _init(
        self,
        address: str,
        root_pem: bytes,
        protocol: str,
        client_cert: tuple[bytes, bytes] | None,
        timeout: float,
    ) -> None:
        if b"-----BEGIN CERTIFICATE-----" not in root_pem:
            raise ConfigurationError("The coordinator root is not a PEM certificate.")
        if protocol not in ("rest", "grpc"):
            raise ConfigurationError(f"Unknown protocol {protocol!r}; use rest or grpc.")
        self._address = address
        self._protocol = protocol
        self._timeout = timeout
        self._http: httpx.Client | None = None
        self._channel: Any = None
        if protocol == "rest":
            context = ssl.create_default_context(cadata=root_pem.decode("ascii"))
            if client_cert is not None:
                _load_client_cert(context, client_cert)
            self._http = httpx.Client(
                base_url=f"https://{address}", verify=context, timeout=timeout
            )
        else:
            import grpc

            credentials = grpc.ssl_channel_credentials(
                root_certificates=root_pem,
                private_key=client_cert[1] if client_cert else None,
                certificate_chain=client_cert[0] if client_cert else None,
            )
            self._channel = grpc.secure_channel(
                address,
                credentials,
                options=[
                    ("grpc.max_receive_message_length", 2**31 - 1),
                    ("grpc.max_send_message_length", 2**31 - 1),
                ],
            )

    def __enter__(self) -> InferenceClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection."""
        if self._http is not None:
            self._http.close()
        if self._channel is not None:
            self._channel.close()

    def predict(
        self,
        model: str,
        inputs: Mapping[str, Array] | Array,
        *,
        version: int | None = None,
        label: str | None = None,
        signature_name: str = "",
    ) -> dict[str, Array]:
        """TF Serving Predict: named input arrays (or one array) → named output arrays."""
        named = dict(inputs) if isinstance(inputs, Mapping) else None
        if self._protocol == "grpc":
            if named is None:
                raise ConfigurationError("gRPC Predict needs inputs keyed by input name.")
            return self._grpc_predict(model, named, version, label, signature_name)
        body: dict[str, Any] = {
            "inputs": {k: np.asarray(v).tolist() for k, v in named.items()}
            if named is not None
            else np.asarray(inputs).tolist()
        }
        if signature_name:
            body["signature_name"] = signature_name
        answer = self._post(f"{_tfs_path(model, version, label)}:predict", body)
        outputs = answer.get("outputs")
        if isinstance(outputs, dict):
            return {k: np.asarray(v) for k, v in outputs.items()}
        # One output: TF Serving's columnar answer drops its name; the signature has it.
        meta = self._get(_tfs_path(model, version, label) + "/metadata")
        signatures = meta["metadata"]["signature_def"]["signature_def"]
        names = list(signatures[signature_name or "serving_default"]["outputs"])
        return {names[0] if len(names) == 1 else "outputs": np.asarray(outputs)}

    def predict_json(self, model: str, body: Mapping[str, Any]) -> Any:
        """Send a raw TF Serving REST predict body (``instances`` or ``inputs``)."""
        if self._protocol != "rest":
            raise ConfigurationError("predict_json needs protocol='rest'.")
        return self._post(f"{_tfs_path(model, None, None)}:predict", body)

    def infer(
        self, model: str, inputs: Mapping[str, Array], *, version: int | None = None
    ) -> dict[str, Array]:
        """KServe v2 ``/infer`` with JSON tensors (REST only)."""
        if self._protocol != "rest":
            raise ConfigurationError("KServe v2 calls need protocol='rest'.")
        tensors = []
        for name, value in inputs.items():
            array = np.asarray(value)
            kind = _DTYPES.get(array.dtype.name)
            if kind is None:
                raise ConfigurationError(f"Input {name}: dtype {array.dtype} is not supported.")
            tensors.append(
                {
                    "name": name,
                    "shape": list(array.shape),
                    "datatype": kind[1],
                    "data": array.reshape(-1).tolist(),
                }
            )
        path = f"/v2/models/{model}" + (f"/versions/{version}" if version is not None else "")
        answer = self._post(f"{path}/infer", {"inputs": tensors})
        return {
            item["name"]: np.asarray(
                item["data"], dtype=_KSERVE_TO_NUMPY.get(item["datatype"])
            ).reshape(item["shape"])
            for item in answer.get("outputs", [])
        }

    def status(self, model: str) -> Any:
        """TF Serving model status (REST)."""
        return self._get(_tfs_path(model, None, None))

    def metadata(self, model: str) -> Any:
        """TF Serving model metadata (REST)."""
        return self._get(_tfs_path(model, None, None) + "/metadata")

    def _post(self, path: str, body: Any) -> Any:
        assert self._http is not None  # noqa: S101 - REST protocol
        try:
            response = self._http.post(path, json=body)
        except httpx.HTTPError as exc:
            raise _network(self._address, exc) from None
        return _answer(response)

    def _get(self, path: str) -> Any:
        if self._http is None:
            raise ConfigurationError("status and metadata need protocol='rest'.")
        try:
            response = self._http.get(path)
        except httpx.HTTPError as exc:
            raise _network(self._address, exc) from None
        return _answer(response)

    def _grpc_predict(
        self,
        model: str,
        inputs: Mapping[str, Array],
        version: int | None,
        label: str | None,
        signature_name: str,
    ) -> dict[str, Array]:
        import grpc

        from veil.client._tfs_wire import PredictRequest, PredictResponse

        request = PredictRequest()
        request.model_spec.name = model
        request.model_spec.signature_name = signature_name
        if version is not None:
            request.model_spec.version.value = version
        if label is not None:
            request.model_spec.version_label = label
        for name, value in inputs.items():
            array = np.asarray(value)
            kind = _DTYPES.get(array.dtype.name)
            if kind is None:
                raise ConfigurationError(f"Input {name}: dtype {array.dtype} is not supported.")
            tensor = request.inputs[name]
            tensor.dtype = kind[0]
            for size in array.shape:
                tensor.tensor_shape.dim.add(size=size)
            tensor.tensor_content = np.ascontiguousarray(
                array, array.dtype.newbyteorder("<")
            ).tobytes()
        call = self._channel.unary_unary(
            "/tensorflow.serving.PredictionService/Predict",
            request_serializer=PredictRequest.SerializeToString,
            response_deserializer=PredictResponse.FromString,
        )
        try:
            response = call(request, timeout=self._timeout)
        except grpc.RpcError as exc:
            code, details = exc.code(), exc.details()
            if code == grpc.StatusCode.UNAVAILABLE:
                raise NetworkError(f"cannot reach {self._address}: {details}") from None
            if code == grpc.StatusCode.NOT_FOUND:
                raise NotFoundError(str(details)) from None
            raise ProtocolError(f"the server answered {code.name}: {details}") from None
        return {name: _from_tensor(tensor) for name, tensor in response.outputs.items()}


def _from_tensor(tensor: Any) -> Array:
    dtype = _TF_TO_NUMPY.get(tensor.dtype)
    shape = [dim.size for dim in tensor.tensor_shape.dim]
    if tensor.dtype == 7:
        array = np.empty(len(tensor.string_val), dtype=object)
        array[:] = list(tensor.string_val)
        return array.reshape(shape)
    if dtype is None:
        raise ProtocolError(f"The server sent a tensor of unsupported dtype {tensor.dtype}.")
    if tensor.tensor_content:
        return (
            np.frombuffer(tensor.tensor_content, dtype=dtype.newbyteorder("<"))
            .astype(dtype)
            .reshape(shape)
        )
    values = getattr(tensor, _TYPED_FIELDS[tensor.dtype])
    if tensor.dtype == 19:
        flat = np.asarray(values, dtype=np.uint16).view(np.float16)
    else:
        flat = np.asarray(values).astype(dtype)
    count = int(np.prod(shape)) if shape else 1
    if flat.size == 1 and count != 1:
        return np.full(shape, flat[0], dtype=dtype)
    return flat.reshape(shape)


def _tfs_path(model: str, version: int | None, label: str | None) -> str:
    path = f"/v1/models/{model}"
    if version is not None:
        return f"{path}/versions/{version}"
    if label is not None:
        return f"{path}/labels/{label}"
    return path


def _answer(response: httpx.Response) -> Any:
    try:
        document = response.json()
    except ValueError:
        raise ProtocolError(
            f"the server answered HTTP {response.status_code} without JSON"
        ) from None
    if response.status_code == 200:
        return document
    message = document.get("error", "") if isinstance(document, dict) else ""
    if response.status_code == 404:
        raise NotFoundError(str(message))
    raise ProtocolError(f"the server answered HTTP {response.status_code}: {message}")


def _network(address: str, exc: httpx.HTTPError) -> Exception:
    if "CERTIFICATE_VERIFY_FAILED" in str(exc):
        from veil.errors import VerificationError

        return VerificationError(
            f"the server at {address} does not present a certificate from the verified "
            "coordinator; it is not part of the attested deployment"
        )
    return NetworkError(f"cannot reach the inference server at {address}: {exc}")


def _load_client_cert(context: ssl.SSLContext, client_cert: tuple[bytes, bytes]) -> None:
    import os

    fd = os.memfd_create("veil-client-tls", os.MFD_CLOEXEC)
    try:
        os.write(fd, client_cert[0].rstrip(b"\n") + b"\n" + client_cert[1])
        context.load_cert_chain(f"/proc/self/fd/{fd}")
    finally:
        os.close(fd)
