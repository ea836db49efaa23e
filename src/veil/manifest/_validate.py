"""Rules for single manifest objects: MarbleRun's ``Manifest.Check()`` plus veil's stricter ones.

``check_<type>`` functions validate one object and raise ``ManifestError`` with a path relative to
that object (the parser prefixes it). Cross-references live in ``_references``. Rules that are
veil's own (stricter than MarbleRun) are marked "veil:".
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from veil.errors import ManifestError
from veil.manifest._template import ENV_ENCODERS, FILE_ENCODERS, Action

if TYPE_CHECKING:
    from veil.manifest._model import (
        Config,
        Infrastructure,
        Marble,
        Package,
        Parameters,
        Role,
        SecretSpec,
        TLSIncoming,
        TLSOutgoing,
        User,
    )

__all__ = [
    "check_config",
    "check_infrastructure",
    "check_marble",
    "check_package",
    "check_parameters",
    "check_role",
    "check_secret",
    "check_tls_incoming",
    "check_tls_outgoing",
    "check_user",
]

UINT64_MAX = 2**64 - 1
UINT16_MAX = 2**16 - 1
_HEX64 = re.compile(r"[0-9a-fA-F]{64}\Z")
_PORT = re.compile(r"[1-9][0-9]{0,4}\Z")
TCB_STATUSES = frozenset(
    {
        "UpToDate",
        "SWHardeningNeeded",
        "ConfigurationNeeded",
        "ConfigurationAndSWHardeningNeeded",
        "OutOfDate",
        "OutOfDateConfigurationNeeded",
    }
)
FEATURE_GATES = frozenset({"SignQuoteEndpoint", "MonotonicCounter", "AzureHSMSealing"})
ACTIONS = {
    "Packages": frozenset({"updatesecurityversion"}),
    "Secrets": frozenset({"readsecret", "writesecret"}),
    "Manifest": frozenset({"updatemanifest"}),
}
ECDSA_SIZES = frozenset({224, 256, 384, 521})
RSA_MIN_BITS = 2048
RSA_MAX_BITS = 16384


def _uint(value: int | None, path: str, maximum: int = UINT64_MAX) -> None:
    if value is not None and not 0 <= value <= maximum:
        raise ManifestError(f"must be an integer from 0 to {maximum}", path=path)


def _identity(value: str | None, path: str, *, debug: bool) -> str | None:
    if not value:  # Go: an empty string is the same as no value
        return None
    if _HEX64.match(value):
        return value.lower()
    if debug:  # MarbleRun accepts placeholders; a debug package then never matches real evidence
        return value
    # veil: MarbleRun never checks the format, so a typo would silently match nothing.
    raise ManifestError(
        "must be 64 hexadecimal digits (a 32-byte measurement); placeholders are only accepted "
        "in Debug packages",
        path=path,
    )


def check_package(package: Package) -> tuple[str | None, str | None]:
    """Check one package; return ``(unique_id, signer_id)`` normalised to lowercase hex."""
    debug = package.debug
    unique_id = _identity(package.unique_id, "UniqueID", debug=debug)
    signer_id = _identity(package.signer_id, "SignerID", debug=debug)
    _uint(package.product_id, "ProductID")
    _uint(package.security_version, "SecurityVersion")
    signer_part = (
        signer_id is not None
        or package.product_id is not None
        or package.security_version is not None
    )
    if unique_id is not None and signer_part and not debug:
        raise ManifestError(
            "give either UniqueID alone, or SignerID with ProductID and SecurityVersion, not both",
            path="UniqueID",
        )
    if unique_id is None and not debug:
        for name, part in (
            ("SignerID", signer_id),
            ("ProductID", package.product_id),
            ("SecurityVersion", package.security_version),
        ):
            if part is None:
                raise ManifestError(
                    f"missing {name}: a package without UniqueID needs SignerID, ProductID and "
                    "SecurityVersion (only Debug packages may omit them)",
                    path=name,
                )
    for index, status in enumerate(package.accepted_tcb_statuses):
        if status not in TCB_STATUSES:  # veil: typos would otherwise weaken nothing but confuse
            raise ManifestError(
                f"unknown TCB status {status!r}; use one of {', '.join(sorted(TCB_STATUSES))}",
                path=f"AcceptedTCBStatuses[{index}]",
            )
    for index, advisory in enumerate(package.accepted_advisories):
        if not advisory:
            raise ManifestError(
                "an advisory ID must not be empty", path=f"AcceptedAdvisories[{index}]"
            )
    if package.tee not in ("sgx", "tdx", "sev-snp", "simulated"):
        raise ManifestError("TEE must be one of sgx, tdx, sev-snp, simulated", path="TEE")
    return unique_id, signer_id


def check_infrastructure(infra: Infrastructure) -> None:
    """Check one infrastructure: CPUSVN is 16 bytes, QESVN and PCESVN are uint16."""
    if infra.cpu_svn is not None and len(infra.cpu_svn) != 16:
        raise ManifestError("CPUSVN must be 16 bytes (base64 in JSON)", path="CPUSVN")
    _uint(infra.qe_svn, "QESVN", UINT16_MAX)
    _uint(infra.pce_svn, "PCESVN", UINT16_MAX)


def _check_encoders(value_nodes: object, allowed: frozenset[str], path: str, kind: str) -> None:
    if not isinstance(value_nodes, tuple):
        return
    for node in value_nodes:
        if isinstance(node, Action) and node.encoder not in allowed:
            raise ManifestError(
                f"{node.describe()}: {node.encoder} is not allowed in {kind}; use one of "
                f"{', '.join(sorted(allowed))}",
                path=path,
            )


def check_parameters(params: Parameters) -> None:
    """Check Files/Env names, NUL bytes, and that each template uses an encoder the field allows."""
    for name, value in params.files.items():
        path = f"Files.{name}"
        if not name or "\x00" in name:
            raise ManifestError("a file path must be non-empty and free of NUL bytes", path=path)
        _check_encoders(value._nodes, FILE_ENCODERS, path, "Files")
    for name, value in params.env.items():
        path = f"Env.{name}"
        if not name or "=" in name or "\x00" in name:
            raise ManifestError(
                "an environment variable name must be non-empty without '=' or NUL", path=path
            )
        if b"\x00" in value.data:
            raise ManifestError("environment values must not contain NUL bytes", path=path)
        _check_encoders(value._nodes, ENV_ENCODERS, path, "Env")
    for index, arg in enumerate(params.argv):
        if "\x00" in arg:
            raise ManifestError("arguments must not contain NUL bytes", path=f"Argv[{index}]")


def check_marble(marble: Marble) -> None:
    """Check one marble's own fields (its package and TLS tags are cross-checked later)."""
    if not marble.package:
        raise ManifestError("every marble must name its Package", path="Package")
    _uint(marble.max_activations, "MaxActivations")
    for index, tag in enumerate(marble.tls):
        if not tag:
            raise ManifestError("a TLS tag name must not be empty", path=f"TLS[{index}]")


def _not_after_set(cert: object) -> bool:
    if not isinstance(cert, Mapping):
        return False
    for key, value in cert.items():
        if key.lower() != "notafter" or value is None:
            continue
        if not isinstance(value, str):
            raise ManifestError("NotAfter must be an RFC 3339 time string", path=f"Cert.{key}")
        try:
            when = datetime.fromisoformat(value)
        except ValueError:
            raise ManifestError(
                "NotAfter must be an RFC 3339 time such as 2030-01-01T00:00:00Z", path=f"Cert.{key}"
            ) from None
        return when.year > 1  # Go's zero time (0001-01-01) means "not set"
    return False


def check_secret(secret: SecretSpec) -> None:
    """Check type, MarbleRun's size rules and that ValidFor and Cert.NotAfter are not both set."""
    kind, size = secret.type, secret.size
    _uint(size, "Size")
    _uint(secret.valid_for, "ValidFor")
    if kind == "symmetric-key":
        if size == 0 or size % 8:
            raise ManifestError(
                "a symmetric-key needs a Size in bits, a multiple of 8", path="Size"
            )
    elif kind == "cert-rsa":
        if (size or not secret.user_defined) and not (
            RSA_MIN_BITS <= size <= RSA_MAX_BITS and size % 8 == 0
        ):
            raise ManifestError(
                f"a cert-rsa Size must be {RSA_MIN_BITS} to {RSA_MAX_BITS} bits, a multiple of 8",
                path="Size",
            )
    elif kind == "cert-ecdsa":
        if (size or not secret.user_defined) and size not in ECDSA_SIZES:
            raise ManifestError("a cert-ecdsa Size must be 224, 256, 384 or 521", path="Size")
    elif kind == "cert-ed25519":
        if size:
            raise ManifestError("cert-ed25519 has a fixed key size; omit Size", path="Size")
    elif kind != "plain":
        raise ManifestError(
            f"unknown secret type {kind!r}; use symmetric-key, cert-rsa, cert-ecdsa, "
            "cert-ed25519 or plain",
            path="Type",
        )
    if kind.startswith("cert-") and _not_after_set(secret.cert) and secret.valid_for:
        raise ManifestError(
            "both ValidFor and Cert.NotAfter are set, so the validity is ambiguous; keep one",
            path="ValidFor",
        )


def check_user(user: User) -> bytes:
    """Check a user: a single PEM X.509 certificate and non-empty role names; return its DER."""
    if not user.certificate_pem:
        raise ManifestError("every user needs a PEM Certificate", path="Certificate")
    try:
        certs = x509.load_pem_x509_certificates(user.certificate_pem.encode("utf-8"))
    except ValueError:
        certs = []
    if len(certs) != 1:
        raise ManifestError(
            "the certificate is not one PEM-encoded X.509 certificate; paste the user's PEM",
            path="Certificate",
        )
    for index, role in enumerate(user.roles):
        if not role:
            raise ManifestError("a role name must not be empty", path=f"Roles[{index}]")
    return certs[0].public_bytes(Encoding.DER)


def check_role(role: Role) -> None:
    """Check resource type, actions valid for it (case-insensitive) and Manifest roles' names."""
    allowed = ACTIONS.get(role.resource_type)
    if allowed is None:
        raise ManifestError(
            f"unknown resource type {role.resource_type!r}; use Packages, Secrets or Manifest",
            path="ResourceType",
        )
    for index, action in enumerate(role.actions):
        if action.lower() not in allowed:
            raise ManifestError(
                f"unknown action {action!r} for resource type {role.resource_type}",
                path=f"Actions[{index}]",
            )
    if role.resource_type == "Manifest" and role.resource_names:
        raise ManifestError("a Manifest role takes no ResourceNames", path="ResourceNames")
    for index, name in enumerate(role.resource_names):
        if not name:
            raise ManifestError("a resource name must not be empty", path=f"ResourceNames[{index}]")


def _check_port(port: str) -> None:
    if not _PORT.match(port) or int(port) > UINT16_MAX:
        raise ManifestError("Port must be a decimal port number from 1 to 65535", path="Port")


def check_tls_outgoing(entry: TLSOutgoing) -> None:
    """Check an outgoing TLS entry: both Addr and Port are required."""
    if not entry.addr or any(c.isspace() for c in entry.addr):
        raise ManifestError("Addr is required and must not contain spaces", path="Addr")
    _check_port(entry.port)


def check_tls_incoming(entry: TLSIncoming) -> None:
    """Check an incoming TLS entry: Port required; Cert if and only if DisableClientAuth."""
    _check_port(entry.port)
    if entry.cert and not entry.disable_client_auth:
        raise ManifestError(
            "Cert is set, so DisableClientAuth must be true", path="DisableClientAuth"
        )
    if not entry.cert and entry.disable_client_auth:
        raise ManifestError(
            "DisableClientAuth needs a Cert (a secret) to serve instead of the marble certificate",
            path="DisableClientAuth",
        )


def check_config(config: Config) -> None:
    """Check seal mode, feature gates and thresholds."""
    if config.seal_mode not in ("ProductKey", "UniqueKey", "Disabled"):
        raise ManifestError("SealMode must be ProductKey, UniqueKey or Disabled", path="SealMode")
    for index, gate in enumerate(config.feature_gates):
        if gate not in FEATURE_GATES:
            raise ManifestError(
                f"unknown feature gate {gate!r}; use one of {', '.join(sorted(FEATURE_GATES))}",
                path=f"FeatureGates[{index}]",
            )
    _uint(config.update_threshold, "UpdateThreshold")
    _uint(config.recovery_threshold, "RecoveryThreshold")
    if config.recovery_threshold == 1:
        raise ManifestError(
            "RecoveryThreshold is 0 (all keys) or at least 2 (k of n)", path="RecoveryThreshold"
        )
