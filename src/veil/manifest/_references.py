"""Cross-reference rules over a whole manifest: MarbleRun's ``Check()``, users, recovery keys."""

from __future__ import annotations

from typing import TYPE_CHECKING

from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    PublicFormat,
    load_pem_public_key,
)

from veil.errors import ManifestError
from veil.manifest._validate import RSA_MIN_BITS

if TYPE_CHECKING:
    from veil.manifest._model import Manifest

__all__ = ["check_manifest"]


def _check_roles(manifest: Manifest) -> None:
    for role_name, role in manifest.roles.items():
        actions = {a.lower() for a in role.actions}
        for index, name in enumerate(role.resource_names):
            path = f"Roles.{role_name}.ResourceNames[{index}]"
            if role.resource_type == "Packages" and name not in manifest.packages:
                raise ManifestError(f"role {role_name} names undefined package {name!r}", path=path)
            if role.resource_type != "Secrets":
                continue
            secret = manifest.secrets.get(name)
            if secret is None:
                raise ManifestError(f"role {role_name} names undefined secret {name!r}", path=path)
            if "writesecret" in actions and not secret.user_defined:
                raise ManifestError(
                    f"role {role_name} grants WriteSecret on secret {name}, but the secret is not "
                    "user-defined",
                    path=path,
                )
            if "readsecret" in actions and not (secret.shared or secret.user_defined):
                raise ManifestError(
                    f"role {role_name} grants ReadSecret on per-marble secret {name}; only shared "
                    "or user-defined secrets can be read",
                    path=path,
                )


def _check_recovery(manifest: Manifest) -> None:
    seen: dict[bytes, str] = {}
    for name, pem in manifest.recovery_keys.items():
        path = f"RecoveryKeys.{name}"
        try:
            key = load_pem_public_key(pem.encode("utf-8"))
        except (ValueError, TypeError):
            key = None
        if not isinstance(key, rsa.RSAPublicKey):
            raise ManifestError("a recovery key must be a PEM RSA public key (PKIX)", path=path)
        if key.key_size < RSA_MIN_BITS:  # veil: MarbleRun takes any size
            raise ManifestError(f"a recovery key needs at least {RSA_MIN_BITS} bits", path=path)
        der = key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
        if der in seen:  # veil: a repeated key would let one holder count twice
            raise ManifestError(f"the same key is already given as {seen[der]}", path=path)
        seen[der] = name
    threshold = manifest.config.recovery_threshold
    if threshold > len(manifest.recovery_keys):
        raise ManifestError(
            f"RecoveryThreshold {threshold} exceeds the number of recovery keys "
            f"({len(manifest.recovery_keys)})",
            path="Config.RecoveryThreshold",
        )


def check_manifest(manifest: Manifest) -> None:
    """Check cross-references: MarbleRun's ``Check()`` and the user/recovery-key steps."""
    if not manifest.packages:
        raise ManifestError("define at least one package", path="Packages")
    if not manifest.marbles:
        raise ManifestError("define at least one marble", path="Marbles")
    for name, marble in manifest.marbles.items():
        if marble.package not in manifest.packages:
            raise ManifestError(
                f"marble {name} uses package {marble.package!r}, which is not defined",
                path=f"Marbles.{name}.Package",
            )
        for index, tag in enumerate(marble.tls):
            if tag not in manifest.tls:
                raise ManifestError(
                    f"marble {name} uses TLS tag {tag!r}, which is not defined",
                    path=f"Marbles.{name}.TLS[{index}]",
                )
    for tag_name, tls_tag in manifest.tls.items():
        for index, entry in enumerate(tls_tag.incoming):
            if entry.cert is None:
                continue
            secret = manifest.secrets.get(entry.cert)
            if secret is None or not secret.type.startswith("cert-"):
                raise ManifestError(
                    f"Cert must name a certificate secret; {entry.cert!r} is not one",
                    path=f"TLS.{tag_name}.Incoming[{index}].Cert",
                )
    certificates: dict[bytes, str] = {}
    for user_name, user in manifest.users.items():
        for index, role in enumerate(user.roles):
            if role not in manifest.roles:
                raise ManifestError(
                    f"user {user_name} has role {role!r}, which is not defined",
                    path=f"Users.{user_name}.Roles[{index}]",
                )
        if user.certificate_der in certificates:
            raise ManifestError(
                f"user {certificates[user.certificate_der]} already uses this certificate; each "
                "user needs their own",
                path=f"Users.{user_name}.Certificate",
            )
        certificates[user.certificate_der] = user_name
    _check_roles(manifest)
    updaters = sum(
        1
        for user in manifest.users.values()
        if any(
            manifest.roles[r].resource_type == "Manifest"
            and "updatemanifest" in {a.lower() for a in manifest.roles[r].actions}
            for r in user.roles
        )
    )
    if manifest.config.update_threshold > updaters:
        raise ManifestError(
            f"UpdateThreshold {manifest.config.update_threshold} exceeds the {updaters} users "
            "allowed to update the manifest",
            path="Config.UpdateThreshold",
        )
    _check_recovery(manifest)
