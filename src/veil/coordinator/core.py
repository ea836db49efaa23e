"""Pure coordinator rules: states, activation admission, secret authorization.

Nothing here does I/O or reads a clock; the service passes in what it has read. Every function
either returns what was decided or raises a ``veil.errors`` error that says who must act.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping

from veil.attestation import Policy
from veil.errors import (
    AuthorizationError,
    ConfigurationError,
    ManifestError,
    NotFoundError,
    ProtocolError,
    StateError,
)
from veil.manifest import Manifest

MAX_USER_SECRET_SIZE = 64 * 1024


class Status(enum.IntEnum):
    """Coordinator states, with MarbleRun's numeric codes."""

    UNINITIALIZED = 0
    RECOVERY = 1
    ACCEPTING_MANIFEST = 2
    ACCEPTING_MARBLES = 3

    @property
    def message(self) -> str:
        """MarbleRun-style status message."""
        return _MESSAGES[self]


_MESSAGES = {
    Status.UNINITIALIZED: "Coordinator is starting.",
    Status.RECOVERY: "Coordinator is in recovery mode. Either upload a key to unseal the saved "
    "state, or set a new manifest.",
    Status.ACCEPTING_MANIFEST: "Coordinator is ready to accept a manifest.",
    Status.ACCEPTING_MARBLES: "Coordinator is running correctly and ready to accept marbles.",
}


def require_status(current: Status, *allowed: Status, action: str) -> None:
    """Raise :class:`StateError` unless the coordinator is in one of ``allowed``."""
    if current not in allowed:
        raise StateError(f"cannot {action}: {current.message}", retryable=False)


def package_policy(manifest: Manifest, marble_type: str) -> Policy:
    """The attestation policy a marble of ``marble_type`` must satisfy (from its package)."""
    marble = manifest.marbles.get(marble_type)
    if marble is None:
        raise NotFoundError(f"marble type {marble_type!r} is not in the manifest")
    pkg = manifest.packages[marble.package]
    try:
        return Policy(
            tee=pkg.tee,
            unique_id=bytes.fromhex(pkg.unique_id) if pkg.unique_id else None,
            signer_id=bytes.fromhex(pkg.signer_id) if pkg.signer_id else None,
            product_id=pkg.product_id,
            min_security_version=pkg.security_version,
            debug=pkg.debug,
            accepted_tcb_statuses=tuple(pkg.accepted_tcb_statuses),
            accepted_advisories=tuple(pkg.accepted_advisories) or None,
        )
    except (ConfigurationError, ValueError) as exc:
        raise ManifestError(
            f"package {marble.package!r} cannot be turned into a policy: {exc}",
            path=f"Packages.{marble.package}",
        ) from None


def admit_activation(manifest: Manifest, marble_type: str, activations_so_far: int) -> None:
    """Raise unless another activation of ``marble_type`` is allowed (``MaxActivations``)."""
    marble = manifest.marbles.get(marble_type)
    if marble is None:
        raise NotFoundError(f"marble type {marble_type!r} is not in the manifest")
    if marble.max_activations and activations_so_far >= marble.max_activations:
        raise AuthorizationError(
            f"marble type {marble_type!r} reached its MaxActivations "
            f"({marble.max_activations}); no further activation is allowed"
        )


def authenticate_user(manifest: Manifest, cert_der: bytes | None) -> str:
    """The manifest user presenting ``cert_der``; raise if none or unknown."""
    if cert_der is None:
        raise AuthorizationError(
            "this request needs a client certificate of a manifest user", authenticated=False
        )
    user = manifest.user_for_certificate(cert_der)
    if user is None:
        raise AuthorizationError(
            "the client certificate belongs to no user of the manifest", authenticated=False
        )
    return user


def authorize_secret_write(manifest: Manifest, user: str, values: Mapping[str, bytes]) -> None:
    """Raise unless ``user`` may write every secret in ``values`` and each value fits its type."""
    if not values:
        raise ProtocolError("no secrets given")
    for name, value in values.items():
        spec = manifest.secrets.get(name)
        if spec is None:
            raise NotFoundError(f"secret {name!r} is not defined in the manifest")
        if not spec.user_defined:
            raise AuthorizationError(f"secret {name!r} is not user-defined and cannot be written")
        if not manifest.allows(
            user, action="WriteSecret", resource_type="Secrets", resource_name=name
        ):
            raise AuthorizationError(f"user {user!r} is not allowed to write secret {name!r}")
        if len(value) > MAX_USER_SECRET_SIZE:
            raise ProtocolError(f"the value of secret {name!r} is too large")
        if spec.type == "symmetric-key" and spec.size and len(value) * 8 != spec.size:
            raise ProtocolError(
                f"secret {name!r} must be a {spec.size}-bit key, got {len(value) * 8} bits"
            )


def authorize_secret_read(manifest: Manifest, user: str, names: Iterable[str]) -> None:
    """Raise unless ``user`` may read every secret in ``names``."""
    for name in names:
        spec = manifest.secrets.get(name)
        if spec is None:
            raise NotFoundError(f"secret {name!r} is not defined in the manifest")
        if not manifest.allows(
            user, action="ReadSecret", resource_type="Secrets", resource_name=name
        ):
            raise AuthorizationError(f"user {user!r} is not allowed to read secret {name!r}")
