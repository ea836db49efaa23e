"""Every MarbleRun sample manifest gets the verdict that the fixtures README gives."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from veil.errors import ManifestError
from veil.manifest import Manifest

from .conftest import SIGNER_ID

VALID_AS_IS = [
    "helloworld_manifest.json",
    "helloc++_manifest.json",
    "gramine-hello_manifest.json",
    "occlum-hello_manifest.json",
    "estore_manifest.json",
    "gramine-nginx_manifest.json",
    "gramine-redis_manifest.json",
]


def test_readme_lists_every_fixture(fixtures_dir: Path) -> None:
    """Each JSON fixture in the shared folder is covered by one of the tests in this module."""
    covered = {
        *VALID_AS_IS,
        "marblerun-tensorflow-demo_manifest.json",
        "marblerun-tensorflow-demo_pfKey.json",
        "samples_sample-manifest.json",
        "samples_manifest-template.json",
    }
    assert {p.name for p in fixtures_dir.glob("*.json")} == covered


@pytest.mark.parametrize("name", VALID_AS_IS)
def test_valid_sample_manifests_parse(fixtures_dir: Path, name: str) -> None:
    """A sample manifest the README calls valid parses and has a stable 64-hex fingerprint."""
    data = (fixtures_dir / name).read_bytes()
    manifest = Manifest.from_json(data)
    assert manifest.fingerprint() == Manifest.from_json(data).fingerprint()
    assert len(manifest.fingerprint()) == 64


def test_debug_placeholders_are_kept_verbatim(fixtures_dir: Path) -> None:
    """A Debug package keeps its non-hex UniqueID placeholder, as MarbleRun does."""
    manifest = Manifest.from_json((fixtures_dir / "helloworld_manifest.json").read_bytes())
    assert (
        manifest.packages["world"].unique_id
        == "<replace with mrenclave obtained by `ego uniqueid hello`>"
    )


def test_redis_sample_uses_signer_identity(fixtures_dir: Path) -> None:
    """The gramine-redis sample pins SignerID, ProductID 13 and SecurityVersion 1."""
    manifest = Manifest.from_json((fixtures_dir / "gramine-redis_manifest.json").read_bytes())
    package = manifest.packages["redis-package"]
    assert (package.signer_id, package.product_id, package.security_version) == (SIGNER_ID, 13, 1)
    assert set(manifest.marbles) == {"redis-main", "redis-replica"}


def test_estore_sample_has_feature_gate(fixtures_dir: Path) -> None:
    """The estore sample enables the MonotonicCounter feature gate."""
    manifest = Manifest.from_json((fixtures_dir / "estore_manifest.json").read_bytes())
    assert manifest.config.feature_gates == ("MonotonicCounter",)
    assert manifest.secrets["encryptionKey"].size == 128


def test_tensorflow_demo_needs_a_real_certificate(fixtures_dir: Path) -> None:
    """The tensorflow demo is rejected while tf-admin's Certificate is the USER_CERT placeholder."""
    with pytest.raises(ManifestError) as info:
        Manifest.from_json((fixtures_dir / "marblerun-tensorflow-demo_manifest.json").read_bytes())
    assert info.value.path == "Users.tf-admin.Certificate"


def test_tensorflow_demo_is_valid_after_substitution(
    fixtures_dir: Path, make_cert: Callable[[str], tuple[str, bytes]]
) -> None:
    """With a real PEM certificate for tf-admin the demo is valid and tf-admin may manage pfKey."""
    doc = json.loads((fixtures_dir / "marblerun-tensorflow-demo_manifest.json").read_text())
    pem, der = make_cert("tf-admin")
    doc["Users"]["tf-admin"]["Certificate"] = pem
    manifest = Manifest(doc)
    assert manifest.user_for_certificate(der) == "tf-admin"
    for action in ("WriteSecret", "ReadSecret"):
        assert manifest.allows(
            "tf-admin", action=action, resource_type="Secrets", resource_name="pfKey"
        )
    assert manifest.packages["tensorflow-package"].product_id == 15


def test_pfkey_body_is_not_a_manifest(fixtures_dir: Path) -> None:
    """The pfKey.json secret-upload body is rejected as a manifest, naming its unknown field."""
    with pytest.raises(ManifestError) as info:
        Manifest.from_json((fixtures_dir / "marblerun-tensorflow-demo_pfKey.json").read_bytes())
    assert info.value.path == "pfKey"


def test_sample_manifest_is_invalid_for_each_readme_reason(
    fixtures_dir: Path, make_cert: Callable[[str], tuple[str, bytes]]
) -> None:
    """sample-manifest.json fails on non-PEM users and on WriteSecret for generated secrets."""
    doc: dict[str, Any] = json.loads((fixtures_dir / "samples_sample-manifest.json").read_text())

    def error_path() -> str:
        with pytest.raises(ManifestError) as info:
            Manifest(doc)
        return info.value.path

    # veil checks each marble's templates as it parses it: `raw` is not an Env encoder.
    assert error_path() == "Marbles.backendFirst.Parameters.Env.API_KEY"
    doc["Marbles"]["backendFirst"]["Parameters"]["Env"]["API_KEY"] = "{{ string .Secrets.apiKey }}"
    assert error_path() == "Users.Admin.Certificate"  # names are checked in sorted order
    for user in doc["Users"].values():
        user["Certificate"] = make_cert("u")[0]
    assert error_path() == "Roles.secrets-admin.ResourceNames[0]"
    doc["Roles"]["secrets-admin"]["Actions"] = ["ReadSecret"]
    Manifest(doc)


def test_manifest_template_is_invalid_for_each_readme_reason(
    fixtures_dir: Path,
    make_cert: Callable[[str], tuple[str, bytes]],
    make_rsa_public_pem: Callable[[int], str],
) -> None:
    """samples/manifest-template.json fails on each placeholder the README lists, one at a time."""
    doc: dict[str, Any] = json.loads((fixtures_dir / "samples_manifest-template.json").read_text())

    def error_path() -> str:
        with pytest.raises(ManifestError) as info:
            Manifest(doc)
        return info.value.path

    assert error_path() == "Packages.<PackageName>.SignerID"
    doc["Packages"]["<PackageName>"]["SignerID"] = SIGNER_ID
    assert error_path() == "Secrets.<SecretName>.Type"
    doc["Secrets"]["<SecretName>"]["Type"] = "plain"
    assert error_path() == "Users.<UserName>.Certificate"
    doc["Users"]["<UserName>"]["Certificate"] = make_cert("u")[0]
    assert error_path() == "Roles.<RoleName>.ResourceType"
    doc["Roles"]["<RoleName>"]["ResourceType"] = "Manifest"
    assert error_path() == "Roles.<RoleName>.ResourceNames"
    doc["Roles"]["<RoleName>"]["ResourceNames"] = []
    assert error_path() == "TLS.<TLSConfigName>.Outgoing[0].Addr"
    doc["TLS"]["<TLSConfigName>"]["Outgoing"] = [{"Addr": "db.local", "Port": "5432"}]
    assert error_path() == "TLS.<TLSConfigName>.Incoming[0].Port"
    doc["TLS"]["<TLSConfigName>"]["Incoming"] = [{"Port": "8443"}]
    assert error_path() == "RecoveryKeys.<KeyName>"
    doc["RecoveryKeys"]["<KeyName>"] = make_rsa_public_pem(2048)
    Manifest(doc)
