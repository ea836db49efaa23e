"""TF Serving's config files in protobuf text format: ``--model_config_file``, ``--ssl_config_file``.

Parsed with protobuf's ``text_format`` into veil's own copies of ``ModelServerConfig`` and
``SSLConfig`` (same field numbers), then turned into frozen settings.
"""

from __future__ import annotations

from google.protobuf import text_format

from veil.errors import ConfigurationError
from veil.serving._config import ModelConfig, TLSMaterial, VersionPolicy
from veil.serving._proto import model_server_config_pb2, ssl_config_pb2

__all__ = ["models_from_proto", "parse_model_config", "parse_ssl_config"]

_PLATFORMS = {"": "", "tensorflow": "tensorflow", "onnx": "onnx"}


def parse_model_config(text: str, *, source: str = "model config") -> tuple[ModelConfig, ...]:
    """The models of a ``model_config_list`` in text format."""
    proto = model_server_config_pb2.ModelServerConfig()
    try:
        text_format.Parse(text, proto)
    except text_format.ParseError as exc:
        raise ConfigurationError(f"{source} is not a valid ModelServerConfig: {exc}.") from None
    return models_from_proto(proto, source=source)


def models_from_proto(
    proto: model_server_config_pb2.ModelServerConfig, *, source: str = "model config"
) -> tuple[ModelConfig, ...]:
    """ModelConfigs from a ModelServerConfig message."""
    if proto.WhichOneof("config") != "model_config_list":
        raise ConfigurationError(f"{source} has no model_config_list.")
    models = []
    for config in proto.model_config_list.config:
        if config.model_platform not in _PLATFORMS:
            raise ConfigurationError(
                f"{source}: model {config.name!r} has model_platform {config.model_platform!r}; "
                "use tensorflow or onnx."
            )
        models.append(
            ModelConfig(
                name=config.name,
                base_path=config.base_path,
                platform=config.model_platform,
                version_policy=_policy(config.model_version_policy),
                version_labels=tuple(sorted(config.version_labels.items())),
            )
        )
    return tuple(models)


def parse_ssl_config(text: str, *, source: str = "SSL config") -> TLSMaterial:
    """TLS material from an SSLConfig (PEM contents inline, as TF Serving expects)."""
    proto = ssl_config_pb2.SSLConfig()
    try:
        text_format.Parse(_escape_newlines_in_strings(text), proto)
    except text_format.ParseError as exc:
        raise ConfigurationError(f"{source} is not a valid SSLConfig: {exc}.") from None
    if proto.client_verify and not proto.custom_ca:
        raise ConfigurationError(f"{source}: client_verify needs custom_ca.")
    return TLSMaterial(
        cert_chain_pem=proto.server_cert.encode(),
        private_key_pem=proto.server_key.encode(),
        client_ca_pem=proto.custom_ca.encode() if proto.client_verify else None,
    )


def _policy(
    proto: model_server_config_pb2.FileSystemStoragePathSourceConfig.ServableVersionPolicy,
) -> VersionPolicy:
    choice = proto.WhichOneof("policy_choice")
    if choice == "all":
        return VersionPolicy.all()
    if choice == "specific":
        return VersionPolicy.specific(proto.specific.versions)
    if choice == "latest":
        return VersionPolicy.latest(proto.latest.num_versions or 1)
    return VersionPolicy.latest(1)


def _escape_newlines_in_strings(text: str) -> str:
    """Allow PEM blocks with raw line breaks inside quotes (as MarbleRun templates write them)."""
    result = []
    quote = ""
    escaped = False
    for char in text:
        if quote:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == quote:
                quote = ""
            elif char == "\n":
                result.append("\\n")
                continue
        elif char in "\"'":
            quote = char
        result.append(char)
    return "".join(result)
