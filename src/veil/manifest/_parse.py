"""Decode a JSON manifest document into the frozen types, naming the JSON path of every fault.

Like Go's encoding/json, keys match field names case-insensitively (veil: ASCII letters only) and
``null`` means "absent". Unlike it, unknown fields, two keys for one field and values of the
wrong JSON type are errors.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from types import MappingProxyType
from typing import Any, TypeVar

from veil.errors import ManifestError
from veil.manifest._canonical import join_path
from veil.manifest._model import (
    TEE,
    Config,
    FileValue,
    Infrastructure,
    Marble,
    Package,
    Parameters,
    ResourceType,
    Role,
    SealMode,
    SecretSpec,
    SecretType,
    TLSIncoming,
    TLSOutgoing,
    TLSTag,
    User,
)

__all__ = ["parse_manifest"]

T = TypeVar("T")
_TEES: Mapping[str, TEE] = {
    "sgx": "sgx",
    "tdx": "tdx",
    "sev-snp": "sev-snp",
    "simulated": "simulated",
}
_SECRET_TYPES: Mapping[str, SecretType] = {
    "symmetric-key": "symmetric-key",
    "cert-rsa": "cert-rsa",
    "cert-ecdsa": "cert-ecdsa",
    "cert-ed25519": "cert-ed25519",
    "plain": "plain",
}
_RESOURCE_TYPES: Mapping[str, ResourceType] = {
    "Packages": "Packages",
    "Secrets": "Secrets",
    "Manifest": "Manifest",
}
_SEAL_MODES: Mapping[str, SealMode] = {
    "": "ProductKey",
    "ProductKey": "ProductKey",
    "UniqueKey": "UniqueKey",
    "Disabled": "Disabled",
}


def _raw_message(exc: ManifestError) -> str:
    return exc.message[len(exc.path) + 2 :] if exc.path else exc.message


@contextmanager
def _under(path: str) -> Iterator[None]:
    """Re-raise a ManifestError from inside with ``path`` prefixed to its own relative path."""
    try:
        yield
    except ManifestError as exc:
        inner = exc.path
        full = (
            path if not inner else f"{path}{inner}" if inner.startswith("[") else f"{path}.{inner}"
        )
        raise ManifestError(_raw_message(exc), path=full) from None


def _kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, str):
        return "a string"
    return "an array" if isinstance(value, list) else "an object"


def _expect(value: object, kind: type[T], what: str, path: str) -> T:
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ManifestError(f"expected {what}, got {_kind(value)}", path=path)
    return value


def _str(value: object, path: str) -> str:
    return _expect(value, str, "a string", path)


def _bool(value: object, path: str) -> bool:
    return _expect(value, bool, "true or false", path)


def _int(value: object, path: str) -> int:
    return _expect(value, int, "an integer", path)


def _strings(value: object, path: str) -> tuple[str, ...]:
    items = _expect(value, list, "an array of strings", path)
    return tuple(_str(item, join_path(path, i)) for i, item in enumerate(items))


def _fields(value: object, path: str, known: tuple[str, ...]) -> dict[str, Any]:
    obj: dict[str, object] = _expect(value, dict, "an object", path)
    lookup = {name.lower(): name for name in known}
    seen: dict[str, str] = {}
    out: dict[str, Any] = {}
    for key, item in obj.items():
        name = lookup.get(key.lower()) if key.isascii() else None
        if name is None:
            raise ManifestError(
                f"unknown field {key!r}; the fields here are {', '.join(known)}",
                path=join_path(path, key),
            )
        if name in seen:
            raise ManifestError(
                f"{seen[name]!r} and {key!r} both set {name} (keys match field names "
                "case-insensitively); keep one",
                path=join_path(path, key),
            )
        seen[name] = key
        if item is not None:
            out[name] = item
    return out


def _map(value: object, path: str, parse: Callable[[str, object], T]) -> Mapping[str, T]:
    if value is None:
        return MappingProxyType({})
    obj: dict[str, object] = _expect(value, dict, "an object", path)
    result: dict[str, T] = {}
    for name, item in obj.items():
        with _under(join_path(path, name)):
            result[name] = parse(name, item)
    return MappingProxyType(result)


def _choice(value: object, path: str, choices: Mapping[str, T]) -> T:
    text = _str(value, path)
    if text not in choices:
        raise ManifestError(
            f"{text!r} is not one of {', '.join(c for c in choices if c)}", path=path
        )
    return choices[text]


def _base64(value: object, path: str) -> bytes:
    try:
        return base64.b64decode(_str(value, path), validate=True)
    except binascii.Error:
        raise ManifestError(
            "not valid base64 (standard alphabet, with padding)", path=path
        ) from None


_PACKAGE_FIELDS = (
    "UniqueID",
    "SignerID",
    "ProductID",
    "SecurityVersion",
    "Debug",
    "AcceptedTCBStatuses",
    "AcceptedAdvisories",
    "TEE",
)


def _package(_: str, value: object) -> Package:
    f = _fields(value, "", _PACKAGE_FIELDS)
    return Package(
        unique_id=_str(f["UniqueID"], "UniqueID") if "UniqueID" in f else None,
        signer_id=_str(f["SignerID"], "SignerID") if "SignerID" in f else None,
        product_id=_int(f["ProductID"], "ProductID") if "ProductID" in f else None,
        security_version=(
            _int(f["SecurityVersion"], "SecurityVersion") if "SecurityVersion" in f else None
        ),
        debug=_bool(f.get("Debug", False), "Debug"),
        accepted_tcb_statuses=_strings(f.get("AcceptedTCBStatuses", []), "AcceptedTCBStatuses"),
        accepted_advisories=_strings(f.get("AcceptedAdvisories", []), "AcceptedAdvisories"),
        tee=_choice(f.get("TEE", "sgx"), "TEE", _TEES),
    )


def _infrastructure(_: str, value: object) -> Infrastructure:
    f = _fields(value, "", ("CPUSVN", "QESVN", "PCESVN", "RootCA"))
    return Infrastructure(
        cpu_svn=_base64(f["CPUSVN"], "CPUSVN") if "CPUSVN" in f else None,
        qe_svn=_int(f["QESVN"], "QESVN") if "QESVN" in f else None,
        pce_svn=_int(f["PCESVN"], "PCESVN") if "PCESVN" in f else None,
        root_ca=_base64(f["RootCA"], "RootCA") if "RootCA" in f else None,
    )


def _file_value(_: str, value: object) -> FileValue:
    if isinstance(value, str):
        return FileValue(data=value.encode("utf-8"))
    if not isinstance(value, dict):
        raise ManifestError(
            f"expected a string or an object {{Data, Encoding, NoTemplates}}, got {_kind(value)}"
        )
    f = _fields(value, "", ("Data", "Encoding", "NoTemplates"))
    text = _str(f.get("Data", ""), "Data")
    encoding = _str(f.get("Encoding", ""), "Encoding")
    if encoding in ("", "string"):
        data = text.encode("utf-8")
    elif encoding == "base64":
        data = _base64(text, "Data")
    elif encoding == "hex":
        try:
            data = binascii.unhexlify(text)
        except (binascii.Error, ValueError):
            raise ManifestError("not valid hex", path="Data") from None
    else:
        raise ManifestError(
            f"unknown encoding {encoding!r}; use string, base64 or hex", path="Encoding"
        )
    return FileValue(data=data, no_templates=_bool(f.get("NoTemplates", False), "NoTemplates"))


def _parameters(value: object) -> Parameters:
    f = _fields(value, "", ("Files", "Env", "Argv"))
    return Parameters(
        files=_map(f.get("Files"), "Files", _file_value),
        env=_map(f.get("Env"), "Env", _file_value),
        argv=_strings(f.get("Argv", []), "Argv"),
    )


def _marble(name: str, value: object) -> Marble:
    fields = ("Package", "MaxActivations", "Parameters", "TLS", "DisableSecretBinding")
    f = _fields(value, "", fields)
    parameters = Parameters()
    if "Parameters" in f:
        with _under("Parameters"):
            parameters = _parameters(f["Parameters"])
    return Marble(
        name=name,
        package=_str(f.get("Package", ""), "Package"),
        max_activations=_int(f.get("MaxActivations", 0), "MaxActivations"),
        parameters=parameters,
        tls=_strings(f.get("TLS", []), "TLS"),
        disable_secret_binding=_bool(f.get("DisableSecretBinding", False), "DisableSecretBinding"),
    )


def _secret(_: str, value: object) -> SecretSpec:
    fields = ("Type", "Size", "Shared", "UserDefined", "ValidFor", "Cert")
    f = _fields(value, "", fields)
    if "Type" not in f:
        raise ManifestError("every secret needs a Type", path="Type")
    cert = f.get("Cert")
    if cert is not None:
        _expect(cert, dict, "an object (a Go x509.Certificate template)", "Cert")
    return SecretSpec(
        type=_choice(f["Type"], "Type", _SECRET_TYPES),
        size=_int(f.get("Size", 0), "Size"),
        shared=_bool(f.get("Shared", False), "Shared"),
        user_defined=_bool(f.get("UserDefined", False), "UserDefined"),
        valid_for=_int(f["ValidFor"], "ValidFor") if "ValidFor" in f else None,
        cert=cert,
    )


def _user(_: str, value: object) -> User:
    f = _fields(value, "", ("Certificate", "Roles"))
    return User(
        certificate_pem=_str(f.get("Certificate", ""), "Certificate"),
        roles=_strings(f.get("Roles", []), "Roles"),
    )


def _role(_: str, value: object) -> Role:
    f = _fields(value, "", ("ResourceType", "ResourceNames", "Actions"))
    return Role(
        resource_type=_choice(f.get("ResourceType", ""), "ResourceType", _RESOURCE_TYPES),
        resource_names=_strings(f.get("ResourceNames", []), "ResourceNames"),
        actions=_strings(f.get("Actions", []), "Actions"),
    )


def _entries(value: object, path: str, parse: Callable[[object], T]) -> tuple[T, ...]:
    items = _expect(value, list, "an array of objects", path)
    result: list[T] = []
    for index, item in enumerate(items):
        with _under(join_path(path, index)):
            result.append(parse(item))
    return tuple(result)


def _outgoing(value: object) -> TLSOutgoing:
    f = _fields(value, "", ("Addr", "Port"))
    return TLSOutgoing(addr=_str(f.get("Addr", ""), "Addr"), port=_str(f.get("Port", ""), "Port"))


def _incoming(value: object) -> TLSIncoming:
    f = _fields(value, "", ("Port", "Cert", "DisableClientAuth"))
    return TLSIncoming(
        port=_str(f.get("Port", ""), "Port"),
        cert=_str(f.get("Cert", ""), "Cert") or None,
        disable_client_auth=_bool(f.get("DisableClientAuth", False), "DisableClientAuth"),
    )


def _tls_tag(_: str, value: object) -> TLSTag:
    f = _fields(value, "", ("Outgoing", "Incoming"))
    return TLSTag(
        outgoing=_entries(f.get("Outgoing", []), "Outgoing", _outgoing),
        incoming=_entries(f.get("Incoming", []), "Incoming", _incoming),
    )


def _recovery_key(_: str, value: object) -> str:
    return _str(value, "")


def _config(value: object) -> Config:
    fields = (
        "SealMode",
        "FeatureGates",
        "UpdateThreshold",
        "RecoveryThreshold",
        "RotateRootSecret",
    )
    f = _fields(value, "", fields)
    return Config(
        seal_mode=_choice(f.get("SealMode", ""), "SealMode", _SEAL_MODES),
        feature_gates=_strings(f.get("FeatureGates", []), "FeatureGates"),
        update_threshold=_int(f.get("UpdateThreshold", 0), "UpdateThreshold"),
        recovery_threshold=_int(f.get("RecoveryThreshold", 0), "RecoveryThreshold"),
        rotate_root_secret=_bool(f.get("RotateRootSecret", False), "RotateRootSecret"),
    )


TOP_LEVEL = (
    "Packages",
    "Infrastructures",
    "Marbles",
    "Users",
    "Secrets",
    "RecoveryKeys",
    "Roles",
    "TLS",
    "Config",
)


def parse_manifest(document: object) -> dict[str, Any]:
    """Decode a whole document into the keyword arguments of the typed manifest fields."""
    f = _fields(document, "", TOP_LEVEL)
    config = Config()
    if "Config" in f:
        with _under("Config"):
            config = _config(f["Config"])
    return {
        "packages": _map(f.get("Packages"), "Packages", _package),
        "infrastructures": _map(f.get("Infrastructures"), "Infrastructures", _infrastructure),
        "marbles": _map(f.get("Marbles"), "Marbles", _marble),
        "secrets": _map(f.get("Secrets"), "Secrets", _secret),
        "users": _map(f.get("Users"), "Users", _user),
        "roles": _map(f.get("Roles"), "Roles", _role),
        "recovery_keys": _map(f.get("RecoveryKeys"), "RecoveryKeys", _recovery_key),
        "tls": _map(f.get("TLS"), "TLS", _tls_tag),
        "config": config,
    }
