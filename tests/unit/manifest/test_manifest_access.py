"""Users are found by exact certificate, and roles grant additive, case-insensitive permissions."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from veil.manifest import Manifest

Doc = dict[str, Any]


@pytest.fixture
def access_manifest(
    make_doc: Callable[[], Doc], make_cert: Callable[[str], tuple[str, bytes]]
) -> tuple[Manifest, dict[str, bytes]]:
    """A manifest with an admin (manifest updates + package updates) and a reader of one secret."""
    doc = make_doc()
    doc["Packages"]["other"] = {"UniqueID": "cd" * 32}
    doc["Secrets"] = {
        "shared": {"Type": "symmetric-key", "Size": 128, "Shared": True},
        "model": {"Type": "symmetric-key", "Size": 256, "UserDefined": True},
    }
    admin_pem, admin_der = make_cert("admin")
    reader_pem, reader_der = make_cert("reader")
    doc["Users"] = {
        "admin": {"Certificate": admin_pem, "Roles": ["updater", "pkg-admin"]},
        "reader": {"Certificate": reader_pem, "Roles": ["reader", "writer"]},
    }
    doc["Roles"] = {
        "updater": {"ResourceType": "Manifest", "Actions": ["updatemanifest"]},
        "pkg-admin": {
            "ResourceType": "Packages",
            "ResourceNames": ["pkg"],
            "Actions": ["UpdateSecurityVersion"],
        },
        "reader": {
            "ResourceType": "Secrets",
            "ResourceNames": ["shared"],
            "Actions": ["ReadSecret"],
        },
        "writer": {
            "ResourceType": "Secrets",
            "ResourceNames": ["model"],
            "Actions": ["WriteSecret"],
        },
    }
    doc["Config"] = {"UpdateThreshold": 1}
    return Manifest(doc), {"admin": admin_der, "reader": reader_der}


def test_user_for_certificate_matches_exact_der(
    access_manifest: tuple[Manifest, dict[str, bytes]],
    make_cert: Callable[[str], tuple[str, bytes]],
) -> None:
    """The user whose certificate DER matches exactly is returned; other certificates get None."""
    manifest, ders = access_manifest
    assert manifest.user_for_certificate(ders["admin"]) == "admin"
    assert manifest.user_for_certificate(ders["reader"]) == "reader"
    assert manifest.user_for_certificate(make_cert("admin")[1]) is None
    assert manifest.user_for_certificate(ders["admin"][:-1]) is None


@pytest.mark.parametrize(
    ("user", "permission", "expected"),
    [
        pytest.param("admin", ("UpdateManifest", "Manifest", None), True, id="manifest-update"),
        pytest.param("admin", ("UPDATEMANIFEST", "Manifest", None), True, id="case-insensitive"),
        pytest.param(
            "admin", ("UpdateManifest", "Manifest", "pkg"), False, id="manifest-with-name"
        ),
        pytest.param("admin", ("UpdateSecurityVersion", "Packages", "pkg"), True, id="package"),
        pytest.param(
            "admin", ("UpdateSecurityVersion", "Packages", "other"), False, id="other-package"
        ),
        pytest.param(
            "admin", ("UpdateSecurityVersion", "Packages", None), False, id="package-no-name"
        ),
        pytest.param("admin", ("ReadSecret", "Secrets", "shared"), False, id="admin-no-secrets"),
        pytest.param("reader", ("readsecret", "Secrets", "shared"), True, id="read"),
        pytest.param("reader", ("WriteSecret", "Secrets", "model"), True, id="additive-write"),
        pytest.param("reader", ("ReadSecret", "Secrets", "model"), False, id="write-is-not-read"),
        pytest.param("reader", ("WriteSecret", "Secrets", "shared"), False, id="read-is-not-write"),
        pytest.param("reader", ("UpdateManifest", "Manifest", None), False, id="reader-no-update"),
        pytest.param("mallory", ("ReadSecret", "Secrets", "shared"), False, id="unknown-user"),
    ],
)
def test_allows(
    access_manifest: tuple[Manifest, dict[str, bytes]],
    user: str,
    permission: tuple[str, str, str | None],
    expected: bool,
) -> None:
    """A permission is granted only when one of the user's roles names the action and resource."""
    manifest, _ = access_manifest
    action, resource_type, resource_name = permission
    assert (
        manifest.allows(
            user, action=action, resource_type=resource_type, resource_name=resource_name
        )
        is expected
    )
