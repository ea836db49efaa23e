"""Settings of the inference server: models, listeners and TLS material (all frozen)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from veil.errors import ConfigurationError

__all__ = [
    "DEFAULT_MAX_REQUEST_BYTES",
    "BatchingConfig",
    "ModelConfig",
    "ServingConfig",
    "TLSMaterial",
    "VersionPolicy",
]

DEFAULT_MAX_REQUEST_BYTES = 64 * 1024 * 1024

# TF Serving's URL grammar allows any name without "/" or ":"; we also forbid control characters
# and whitespace so that names are safe in logs and paths.
_MODEL_NAME = re.compile(r"[^/:\s\x00-\x1f\x7f]+")
_LABEL = re.compile(r"[A-Za-z0-9_]+")


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
class VersionPolicy:
    """TF Serving's ServableVersionPolicy: the latest N versions, all, or a specific set."""

    kind: str = "latest"  # "latest" | "all" | "specific"
    num_versions: int = 1
    versions: frozenset[int] = frozenset()

    def __post_init__(self) -> None:
        if self.kind not in ("latest", "all", "specific"):
            raise ConfigurationError(f"Unknown version policy {self.kind!r}.")
        if self.kind == "latest" and self.num_versions < 1:
            raise ConfigurationError("The latest policy needs num_versions >= 1.")
        if self.kind == "specific" and not self.versions:
            raise ConfigurationError("The specific version policy needs at least one version.")

    @classmethod
    def latest(cls, num_versions: int = 1) -> VersionPolicy:
        """Serve the ``num_versions`` highest versions."""
        return cls("latest", num_versions=num_versions)

    @classmethod
    def all(cls) -> VersionPolicy:
        """Serve every version found."""
        return cls("all")

    @classmethod
    def specific(cls, versions: Iterable[int]) -> VersionPolicy:
        """Serve exactly these versions (when present)."""
        return cls("specific", versions=frozenset(versions))

    def select(self, found: Iterable[int]) -> set[int]:
        """The versions to serve out of those ``found`` on disk."""
        numbers = sorted(set(found), reverse=True)
        if self.kind == "all":
            return set(numbers)
        if self.kind == "specific":
            return set(numbers) & self.versions
        return set(numbers[: self.num_versions])


@dataclass(frozen=True)
class BatchingConfig:
    """Adaptive server-side batching of one model (off unless configured).

    Requests that arrive within ``max_wait_s`` of each other are concatenated along dimension 0
    into one run of at most ``max_batch_size`` rows, then split again.
    """

    max_batch_size: int = 32
    max_wait_s: float = 0.002

    def __post_init__(self) -> None:
        if self.max_batch_size < 1 or not 0 <= self.max_wait_s <= 10:
            raise ConfigurationError(
                "Batching needs max_batch_size >= 1 and max_wait_s between 0 and 10 s."
            )


@dataclass(frozen=True)
class ModelConfig:
    """One served model: ``<base_path>/<integer version>/`` holding one model.

    A version directory holds ``model.onnx``, ``model.onnx.veil`` (ONNX encrypted with
    :mod:`veil.modelcrypto`, associated data ``model_associated_data(name)``), a TensorFlow
    SavedModel (``saved_model.pb`` + ``variables/``, needs ``veil[tensorflow]``) or
    ``saved_model.tar.veil`` (an encrypted tar of a SavedModel directory). Encrypted versions wait
    for :meth:`InferenceServer.set_model_key`. ``version_policy`` picks the served versions (TF
    Serving's default: the latest one); ``version_labels`` maps labels to versions.
    """

    name: str
    base_path: str
    platform: str = ""
    version_policy: VersionPolicy = field(default_factory=VersionPolicy)
    version_labels: tuple[tuple[str, int], ...] = ()
    batching: BatchingConfig | None = None

    @property
    def labels(self) -> dict[str, int]:
        """Label → version."""
        return dict(self.version_labels)

    def __post_init__(self) -> None:
        for label, version in self.version_labels:
            if not _LABEL.fullmatch(label):
                raise ConfigurationError(
                    f"Version label {label!r} of model {self.name!r} is invalid; use letters, "
                    "digits and '_'."
                )
            if version < 0:
                raise ConfigurationError(f"Label {label!r} points to a negative version.")
        if self.platform not in ("", "tensorflow", "onnx"):
            raise ConfigurationError(
                f"Model {self.name!r} has model_platform {self.platform!r}; use tensorflow or onnx."
            )
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
    ``file_system_poll_wait_s`` polls the base paths for new versions (0 = only at start and on
    reload). ``cors`` adds TF Serving's CORS headers; ``metrics`` serves Prometheus text at
    ``/monitoring/prometheus/metrics``.
    """

    models: tuple[ModelConfig, ...]
    host: str = "127.0.0.1"
    rest_port: int = 8501
    grpc_port: int = 8500
    tls: TLSMaterial | None = None
    max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES
    file_system_poll_wait_s: float = 0
    cors: bool = False
    metrics: bool = True

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
        if self.file_system_poll_wait_s < 0:
            raise ConfigurationError("file_system_poll_wait_s must not be negative.")
        if self.max_request_bytes < 1:
            raise ConfigurationError("max_request_bytes must be positive.")
