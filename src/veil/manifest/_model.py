"""Frozen manifest types. Each validates its own rules on construction; :class:`Manifest` also
checks every cross-reference and template, so an invalid manifest cannot exist as an object."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import InitVar, dataclass, field
from types import MappingProxyType
from typing import Any, Literal

from veil.errors import ManifestError
from veil.manifest import _validate
from veil.manifest._canonical import canonical_json, load_json
from veil.manifest._template import Node, parse_template

__all__ = [
    "DEFAULT_TCB_STATUSES",
    "TEE",
    "Config",
    "FileValue",
    "Infrastructure",
    "Manifest",
    "Marble",
    "Package",
    "Parameters",
    "ResourceType",
    "Role",
    "SealMode",
    "SecretSpec",
    "SecretType",
    "TLSIncoming",
    "TLSOutgoing",
    "TLSTag",
    "User",
]

TEE = Literal["sgx", "tdx", "sev-snp", "simulated"]
SecretType = Literal["symmetric-key", "cert-rsa", "cert-ecdsa", "cert-ed25519", "plain"]
ResourceType = Literal["Packages", "Secrets", "Manifest"]
SealMode = Literal["ProductKey", "UniqueKey", "Disabled"]
DEFAULT_TCB_STATUSES: tuple[str, ...] = ("UpToDate", "SWHardeningNeeded")


def _freeze(value: object) -> object:
    if isinstance(value, Mapping):
        return MappingProxyType({k: _freeze(v) for k, v in value.items()})
    if isinstance(value, list | tuple):
        return tuple(_freeze(v) for v in value)
    return value


def _frozen_map(value: Mapping[str, Any]) -> Mapping[str, Any]:
    return MappingProxyType(dict(value))


def _empty_map() -> Mapping[str, Any]:
    return MappingProxyType({})


@dataclass(frozen=True, kw_only=True)
class Package:
    """An allowed enclave (``Packages.NAME``): UniqueID, or SignerID+ProductID+SecurityVersion.

    ``tee`` (JSON ``"TEE"``) is veil's addition; identities are normalised to lowercase hex.
    """

    unique_id: str | None = None
    signer_id: str | None = None
    product_id: int | None = None
    security_version: int | None = None
    debug: bool = False
    accepted_tcb_statuses: tuple[str, ...] = DEFAULT_TCB_STATUSES
    accepted_advisories: tuple[str, ...] = ()
    tee: TEE = "sgx"

    def __post_init__(self) -> None:
        unique_id, signer_id = _validate.check_package(self)
        object.__setattr__(self, "unique_id", unique_id)
        object.__setattr__(self, "signer_id", signer_id)
        if not self.accepted_tcb_statuses:
            object.__setattr__(self, "accepted_tcb_statuses", DEFAULT_TCB_STATUSES)


@dataclass(frozen=True, kw_only=True)
class Infrastructure:
    """An allowed platform (``Infrastructures.NAME``); parsed and range-checked only."""

    cpu_svn: bytes | None = None
    qe_svn: int | None = None
    pce_svn: int | None = None
    root_ca: bytes | None = None

    def __post_init__(self) -> None:
        _validate.check_infrastructure(self)


@dataclass(frozen=True, kw_only=True)
class FileValue:
    """A File or Env value: decoded ``data`` and whether template processing is off."""

    data: bytes
    no_templates: bool = False
    _nodes: tuple[Node, ...] | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        nodes = None if self.no_templates else parse_template(self.data)
        object.__setattr__(self, "_nodes", nodes)


@dataclass(frozen=True, kw_only=True)
class Parameters:
    """``Marbles.NAME.Parameters``: Files (path → value), Env (name → value) and Argv."""

    files: Mapping[str, FileValue] = field(default_factory=_empty_map)
    env: Mapping[str, FileValue] = field(default_factory=_empty_map)
    argv: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "files", _frozen_map(self.files))
        object.__setattr__(self, "env", _frozen_map(self.env))
        _validate.check_parameters(self)


@dataclass(frozen=True, kw_only=True)
class Marble:
    """A marble type (``Marbles.NAME``). ``name`` is the manifest key, used in error paths."""

    name: str = ""
    package: str
    max_activations: int = 0
    parameters: Parameters = field(default_factory=Parameters)
    tls: tuple[str, ...] = ()
    disable_secret_binding: bool = False

    def __post_init__(self) -> None:
        _validate.check_marble(self)


@dataclass(frozen=True, kw_only=True)
class SecretSpec:
    """A secret definition (``Secrets.NAME``); ``size`` in bits, ``cert`` a Go x509 template."""

    type: SecretType
    size: int = 0
    shared: bool = False
    user_defined: bool = False
    valid_for: int | None = None
    cert: Mapping[str, Any] | None = None

    def __post_init__(self) -> None:
        if self.cert is not None:
            object.__setattr__(self, "cert", _freeze(self.cert))
        _validate.check_secret(self)


@dataclass(frozen=True, kw_only=True)
class User:
    """A user (``Users.NAME``): a PEM X.509 certificate and role names.

    ``certificate_der`` is derived from the PEM and is what authentication compares.
    """

    certificate_pem: str
    roles: tuple[str, ...] = ()
    certificate_der: bytes = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "certificate_der", _validate.check_user(self))


@dataclass(frozen=True, kw_only=True)
class Role:
    """A role (``Roles.NAME``): actions on named resources of one type (Manifest: no names)."""

    resource_type: ResourceType
    resource_names: tuple[str, ...] = ()
    actions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        _validate.check_role(self)


@dataclass(frozen=True, kw_only=True)
class TLSOutgoing:
    """``TLS.TAG.Outgoing[i]``: connections to ``addr:port`` are elevated to TLS."""

    addr: str
    port: str

    def __post_init__(self) -> None:
        _validate.check_tls_outgoing(self)


@dataclass(frozen=True, kw_only=True)
class TLSIncoming:
    """``TLS.TAG.Incoming[i]``: mTLS on ``port``, or TLS with secret ``cert`` and no client auth."""

    port: str
    cert: str | None = None
    disable_client_auth: bool = False

    def __post_init__(self) -> None:
        _validate.check_tls_incoming(self)


@dataclass(frozen=True, kw_only=True)
class TLSTag:
    """A Transparent-TLS tag (``TLS.TAG``)."""

    outgoing: tuple[TLSOutgoing, ...] = ()
    incoming: tuple[TLSIncoming, ...] = ()


@dataclass(frozen=True, kw_only=True)
class Config:
    """``Config``: seal mode, feature gates, update/recovery thresholds, root-secret rotation."""

    seal_mode: SealMode = "ProductKey"
    feature_gates: tuple[str, ...] = ()
    update_threshold: int = 0
    recovery_threshold: int = 0
    rotate_root_secret: bool = False

    def __post_init__(self) -> None:
        _validate.check_config(self)


@dataclass(frozen=True, eq=False)
class Manifest:
    """A validated MarbleRun-compatible manifest.

    Build it with :meth:`from_json` (or ``Manifest(document)`` from an already decoded JSON
    object). Construction runs every MarbleRun ``Check()`` rule, veil's stricter rules, the user
    and recovery-key parsing and the template dry run; any fault raises
    :class:`~veil.errors.ManifestError` whose ``path`` names the field. Two manifests are equal
    when their canonical bytes are.
    """

    document: InitVar[Mapping[str, Any]]
    packages: Mapping[str, Package] = field(init=False)
    marbles: Mapping[str, Marble] = field(init=False)
    secrets: Mapping[str, SecretSpec] = field(init=False)
    users: Mapping[str, User] = field(init=False)
    roles: Mapping[str, Role] = field(init=False)
    recovery_keys: Mapping[str, str] = field(init=False)
    infrastructures: Mapping[str, Infrastructure] = field(init=False)
    tls: Mapping[str, TLSTag] = field(init=False)
    config: Config = field(init=False)
    _canonical: bytes = field(init=False, repr=False)

    def __post_init__(self, document: Mapping[str, Any]) -> None:
        from veil.manifest import _parse, _references
        from veil.manifest._template import check_templates

        canonical = canonical_json(document)
        parsed = _parse.parse_manifest(json.loads(canonical))
        for name, value in parsed.items():
            object.__setattr__(self, name, value)
        object.__setattr__(self, "_canonical", canonical)
        _references.check_manifest(self)
        check_templates(self)

    @classmethod
    def from_json(cls, data: bytes | str) -> Manifest:
        """Parse and validate manifest JSON; raise ``ManifestError(path=…)`` on any fault.

        JSON keys match field names case-insensitively (ASCII only), as Go's encoding/json does;
        a key that matches no field, or two keys that match the same field, are errors.
        """
        document = load_json(data)
        if not isinstance(document, dict):
            raise ManifestError("the manifest must be a JSON object")
        return cls(document)

    def canonical_bytes(self) -> bytes:
        """The canonical JSON of the document as given (see :func:`canonical_json`)."""
        return self._canonical

    def fingerprint(self) -> str:
        """Lowercase hex SHA-256 of :meth:`canonical_bytes`."""
        return hashlib.sha256(self._canonical).hexdigest()

    def document_copy(self) -> dict[str, Any]:
        """A fresh, mutable copy of the document as given (e.g. to derive an updated manifest)."""
        result: dict[str, Any] = json.loads(self._canonical)
        return result

    def user_for_certificate(self, cert_der: bytes) -> str | None:
        """The name of the user whose certificate is exactly ``cert_der`` (DER), or ``None``."""
        for name, user in self.users.items():
            if user.certificate_der == cert_der:
                return name
        return None

    def allows(
        self, user: str, *, action: str, resource_type: str, resource_name: str | None = None
    ) -> bool:
        """Whether any of ``user``'s roles grants ``action`` (case-insensitive) on the resource.

        Roles are additive. Packages and Secrets permissions need a ``resource_name`` listed in
        the role; Manifest permissions take no ``resource_name``. Unknown users get ``False``.
        """
        account = self.users.get(user)
        if account is None:
            return False
        wanted = action.lower()
        for role_name in account.roles:
            role = self.roles[role_name]
            if role.resource_type != resource_type:
                continue
            if wanted not in (a.lower() for a in role.actions):
                continue
            if resource_type == "Manifest":
                if resource_name is None:
                    return True
            elif resource_name is not None and resource_name in role.resource_names:
                return True
        return False

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Manifest):
            return NotImplemented
        return self._canonical == other._canonical

    def __hash__(self) -> int:
        return hash(self._canonical)
