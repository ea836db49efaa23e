"""Pure coordinator rules and secret handling: policies from packages, admission, secret values."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from veil.coordinator import core
from veil.coordinator._secrets import (
    decode_secret,
    derive_unique_key,
    encode_secret,
    generate_secret,
)
from veil.coordinator.core import Status
from veil.errors import AuthorizationError, NotFoundError, StateError
from veil.manifest import Manifest, SecretSpec, SecretValue
from veil.pki import create_intermediate, create_root, verify_issued_by

from .conftest import MARBLE_UNIQUE_ID, Doc

UUID = "0b4a3d9e-1f52-4a7e-8e0b-6f1f7c2b9d10"


@pytest.fixture
def manifest(make_manifest: Callable[[], Doc]) -> Manifest:
    """The test manifest, parsed."""
    return Manifest.from_json(json.dumps(make_manifest()))


def test_package_policy_pins_the_package_identity(manifest: Manifest) -> None:
    """The policy of a marble type is its package's TEE, UniqueID and debug bit."""
    policy = core.package_policy(manifest, "m")
    assert policy.tee == "simulated"
    assert policy.unique_id == MARBLE_UNIQUE_ID
    assert policy.debug is False
    assert policy.accepted_advisories is None


def test_package_policy_with_signer_identity(make_manifest: Callable[[], Doc]) -> None:
    """A SignerID package gives a policy pinning signer, product and minimum security version."""
    doc = make_manifest()
    doc["Packages"]["p"] = {
        "TEE": "simulated",
        "SignerID": "cd" * 32,
        "ProductID": 3,
        "SecurityVersion": 2,
    }
    policy = core.package_policy(Manifest.from_json(json.dumps(doc)), "m")
    assert policy.unique_id is None
    assert policy.signer_id == bytes.fromhex("cd" * 32)
    assert (policy.product_id, policy.min_security_version) == (3, 2)


def test_package_policy_of_an_unknown_marble_type_is_not_found(manifest: Manifest) -> None:
    """Asking for the policy of a marble type that is not in the manifest raises NotFoundError."""
    with pytest.raises(NotFoundError):
        core.package_policy(manifest, "ghost")


def test_admit_activation_counts_against_max_activations(manifest: Manifest) -> None:
    """Activations below MaxActivations are admitted; at the limit they are refused."""
    core.admit_activation(manifest, "m", 0)
    core.admit_activation(manifest, "m", 1)
    with pytest.raises(AuthorizationError):
        core.admit_activation(manifest, "m", 2)


def test_require_status_names_the_current_state() -> None:
    """A refused action says what it wanted and the coordinator's current state message."""
    core.require_status(Status.ACCEPTING_MARBLES, Status.ACCEPTING_MARBLES, action="act")
    with pytest.raises(StateError, match="cannot act: Coordinator is ready to accept a manifest"):
        core.require_status(Status.ACCEPTING_MANIFEST, Status.ACCEPTING_MARBLES, action="act")


def test_status_codes_match_marblerun() -> None:
    """The numeric status codes are MarbleRun's: 0 starting, 1 recovery, 2 manifest, 3 marbles."""
    assert [int(s) for s in Status] == [0, 1, 2, 3]
    assert all(s.message for s in Status)


# -- secret values -------------------------------------------------------------------------------


def test_encode_decode_round_trips_every_field() -> None:
    """A secret with certificate, public, private and raw key fields survives the store encoding."""
    value = SecretValue(cert_der=b"c", public_der=b"p", private_der=b"k", key=b"s")
    assert decode_secret(encode_secret(value)) == value
    assert decode_secret(encode_secret(SecretValue(key=b"only"))) == SecretValue(key=b"only")


def test_secret_value_repr_hides_private_material() -> None:
    """repr of a secret never shows the private key or the symmetric key."""
    text = repr(SecretValue(private_der=b"PRIVATE-BYTES", key=b"KEY-BYTES"))
    assert "PRIVATE-BYTES" not in text
    assert "KEY-BYTES" not in text


def test_unique_keys_differ_per_marble_name_and_type() -> None:
    """A per-marble key depends on the UUID, secret name and marble type, with the requested size."""
    root = bytes(32)
    base = derive_unique_key(root, uuid=UUID, name="k", marble_type="m", size=256)
    assert len(base) == 32
    assert derive_unique_key(root, uuid=UUID, name="k", marble_type="m", size=256) == base
    others = {
        derive_unique_key(
            root, uuid=UUID.replace("0b", "0c", 1), name="k", marble_type="m", size=256
        ),
        derive_unique_key(root, uuid=UUID, name="k2", marble_type="m", size=256),
        derive_unique_key(root, uuid=UUID, name="k", marble_type="m2", size=256),
        derive_unique_key(bytes([1] * 32), uuid=UUID, name="k", marble_type="m", size=256),
    }
    assert base not in others
    assert len(others) == 4
    assert len(derive_unique_key(root, uuid=UUID, name="k", marble_type="m", size=128)) == 16


@pytest.mark.parametrize(
    ("secret_type", "size"),
    [("cert-ecdsa", 256), ("cert-ed25519", 0), ("cert-rsa", 2048)],
)
def test_generated_certificates_chain_to_the_issuer(secret_type: str, size: int) -> None:
    """A generated certificate secret is signed by the coordinator intermediate and has its key."""
    now = dt.datetime.now(dt.UTC)
    intermediate, _ = create_intermediate(create_root(now), now)
    value = generate_secret(
        "tls",
        SecretSpec(type=secret_type, size=size),  # type: ignore[arg-type]
        issuer=intermediate,
        now=now,
    )
    assert value.cert_der is not None
    assert value.private_der is not None
    cert = x509.load_der_x509_certificate(value.cert_der)
    verify_issued_by(cert, intermediate.cert, now)
    assert value.public_der == cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def test_generated_symmetric_keys_are_fresh_and_sized() -> None:
    """Each generated symmetric key has the manifest size and differs from the last."""
    now = dt.datetime.now(dt.UTC)
    intermediate, _ = create_intermediate(create_root(now), now)
    spec = SecretSpec(type="symmetric-key", size=128)
    first = generate_secret("k", spec, issuer=intermediate, now=now).key
    second = generate_secret("k", spec, issuer=intermediate, now=now).key
    assert first is not None
    assert len(first) == 16
    assert first != second
