"""Pure rules of manifest updates (MarbleRun semantics): no I/O, no clock.

* A **security-version update** is a document whose only section is ``Packages`` and whose packages
  each give only ``SecurityVersion``; the caller needs ``UpdateSecurityVersion`` on every package
  named, the packages must exist and the version must not go down. It applies at once.
* A **full update** is any other manifest; it needs ``UpdateThreshold`` acknowledgements (0: every
  user holding ``UpdateManifest``) from users holding ``UpdateManifest``, the submitter first.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from veil.errors import AuthorizationError, ManifestError, ProtocolError
from veil.manifest import Manifest

__all__ = [
    "apply_security_versions",
    "authorize_update",
    "parse_security_version_update",
    "required_acknowledgers",
    "secrets_to_drop",
]

UINT32_MAX = 2**32 - 1


def _lookup(doc: Mapping[str, Any], name: str) -> tuple[str, Any] | None:
    for key, value in doc.items():
        if key.lower() == name.lower():
            return key, value
    return None


def parse_security_version_update(raw: bytes) -> dict[str, int] | None:
    """``{package: SecurityVersion}`` if ``raw`` is a package-only update, else None.

    Raises :class:`ManifestError` naming the field when it is a package-only document with
    anything but ``SecurityVersion`` in it.
    """
    try:
        doc = json.loads(raw)
    except (ValueError, RecursionError):
        raise ManifestError("the update is not valid JSON") from None
    if not isinstance(doc, dict):
        raise ManifestError("the update must be a JSON object")
    sections = {k.lower() for k, v in doc.items() if v not in (None, {}, [])}
    if sections != {"packages"}:
        return None
    found = _lookup(doc, "Packages")
    assert found is not None  # noqa: S101 - sections says it is there
    key, packages = found
    if not isinstance(packages, dict):
        raise ManifestError("expected an object", path=key)
    result: dict[str, int] = {}
    for name, pkg in packages.items():
        path = f"{key}.{name}"
        if not isinstance(pkg, dict):
            raise ManifestError("expected an object", path=path)
        for field in pkg:
            if field.lower() != "securityversion":
                raise ManifestError(
                    "a package update may only set SecurityVersion", path=f"{path}.{field}"
                )
        svn = _lookup(pkg, "SecurityVersion")
        if svn is None:
            raise ManifestError("a package update must set SecurityVersion", path=path)
        value = svn[1]
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= UINT32_MAX:
            raise ManifestError("must be an integer from 0 to 4294967295", path=f"{path}.{svn[0]}")
        result[str(name)] = value
    if not result:
        raise ManifestError("name at least one package", path=key)
    return result


def apply_security_versions(
    manifest: Manifest, overrides: Mapping[str, int], *, user: str | None = None
) -> Manifest:
    """The manifest with raised security versions; check ``user``'s roles when given."""
    for name, svn in overrides.items():
        path = f"Packages.{name}.SecurityVersion"
        package = manifest.packages.get(name)
        if package is None:
            raise ManifestError(f"package {name!r} is not in the manifest", path=f"Packages.{name}")
        if user is not None and not manifest.allows(
            user, action="UpdateSecurityVersion", resource_type="Packages", resource_name=name
        ):
            raise AuthorizationError(
                f"user {user!r} is not allowed to update the security version of package {name!r}"
            )
        current = package.security_version or 0
        if user is not None and svn < current:
            raise ManifestError(
                f"the security version cannot go down (from {current} to {svn})", path=path
            )
    if not overrides:
        return manifest
    doc = manifest.document_copy()
    packages_key = _lookup(doc, "Packages")
    assert packages_key is not None  # noqa: S101 - every manifest has packages
    packages = packages_key[1]
    for name, svn in overrides.items():
        pkg = packages[name]
        field = _lookup(pkg, "SecurityVersion")
        pkg[field[0] if field else "SecurityVersion"] = svn
    return Manifest(doc)


def _updaters(manifest: Manifest) -> list[str]:
    return sorted(
        name
        for name in manifest.users
        if manifest.allows(name, action="UpdateManifest", resource_type="Manifest")
    )


def authorize_update(manifest: Manifest, user: str) -> None:
    """Raise unless ``user`` holds ``UpdateManifest``."""
    if not manifest.allows(user, action="UpdateManifest", resource_type="Manifest"):
        raise AuthorizationError(f"user {user!r} is not allowed to update the manifest")


def required_acknowledgers(manifest: Manifest) -> tuple[list[str], int]:
    """(users who may acknowledge, acknowledgements needed) under the current manifest."""
    updaters = _updaters(manifest)
    threshold = manifest.config.update_threshold or len(updaters)
    return updaters, threshold


def secrets_to_drop(old: Manifest, new: Manifest) -> list[str]:
    """Secrets whose stored values must go: dropped, or with a changed definition."""
    return sorted(name for name, spec in old.secrets.items() if new.secrets.get(name) != spec)


def check_not_same(old: Manifest, new: Manifest) -> None:
    """Raise when a full update would not change anything."""
    if old.fingerprint() == new.fingerprint():
        raise ProtocolError("the update is the manifest already in force")
