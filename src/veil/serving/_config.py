"""Settings of the inference server: models, listeners and TLS material (all frozen)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from veil.errors import ConfigurationError

__all__ = ["DEFAULT_MAX_REQUEST_BYTES", "ModelConfig", "ServingConfig", "TLSMaterial"]

DEFAULT_MAX_REQUEST_BYTES = 64 * 1024 * 1024

# TF Serving's URL grammar allows any name without "/" or ":"; we also forbid control characters
# and whitespace so that names are safe in logs and paths.
_MODEL_NAME = re.compile(r"[^/:\s\x00-\x1f\x7f]+")


@dataclass(frozen=True)
class TLSMaterial:
    """PEM server certificate chain and private key; ``client_ca_pem`` requires client certificates.

    The private key is never written to disk: it is handed to OpenSSL through an anonymous
    in-memory file. ``client_ca_pem`` (one or more CA certificates) turns on mutual TLS on both the
    REST and the gRPC listener.
    """

    cert_chain_pem: bytes = field(repr=False)
    private_key_pem: bytes = field(repr=False)
    client_ca_pem: bytes | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if b"-----BEGIN" not in self.cert_chain_pem:
            raise ConfigurationError("The TLS certificate chain is not PEM; pass PEM bytes.")
        if b"PRIVATE KEY-----" not in self.private_key_pem:
            raise ConfigurationError("The TLS private key is not a PEM private key.")
        if self.client_ca_pem is not None and b"-----BEGIN" not in self.client_ca_pem:
            raise ConfigurationError("The client CA is not PEM; pass PEM bytes or None.")


@dataclass(frozen=True)
class ModelConfig:
    """One served model: ``<base_path>/<integer version>/model.onnx`` or ``model.onnx.veil``.

    The highest integer version directory is served (TF Serving's "latest" policy). A
    ``model.onnx.veil`` file is encrypted with :mod:`veil.modelcrypto` (associated data
    ``model_associated_data(name)``) and waits for :meth:`InferenceServer.set_model_key`.
    """

    name: str
    base_path: str

    def __post_init__(self) -> None:
        if not _MODEL_NAME.fullmatch(self.name):
            raise ConfigurationError(
                f"Model name {self.name!r} is not usable in URLs; use a name without '/', ':' "
                "or whitespace."
            )
        if not self.base_path:
            raise ConfigurationError(f"Model {self.name!r} has an empty base_path.")


@dataclass(frozen=True)
class ServingConfig:
    """Listeners and models of an :class:`InferenceServer`; port 0 picks a free port.

    ``max_request_bytes`` caps every REST request body (413 above it).
    """

    models: tuple[ModelConfig, ...]
    host: str = "127.0.0.1"
    rest_port: int = 8501
    grpc_port: int = 8500
    tls: TLSMaterial | None = None
    max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES

    def __post_init__(self) -> None:
        names = [model.name for model in self.models]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ConfigurationError(
                f"Model names must be unique; repeated: {', '.join(duplicates)}."
            )
        for port_name, port in (("rest_port", self.rest_port), ("grpc_port", self.grpc_port)):
            if not 0 <= port <= 65535:
                raise ConfigurationError(f"{port_name} must be between 0 and 65535, not {port}.")
        if self.rest_port == self.grpc_port != 0:
            raise ConfigurationError("rest_port and grpc_port must differ.")
        if self.max_request_bytes < 1:
            raise ConfigurationError("max_request_bytes must be positive.")
