"""Factory fixtures for manifest tests: the shared fixture folder, certificates and documents."""

from __future__ import annotations

import copy
import datetime
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from veil.errors import ManifestError
from veil.manifest import Manifest

UNIQUE_ID = "ab" * 32
SIGNER_ID = "43361affedeb75affee9baec7e054a5e14883213e5a121b67d74a0e12e9d2b7a"

Doc = dict[str, Any]


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """The project's shared folder (sibling of the checkout); fail loudly when it is missing."""
    path = Path(__file__).resolve().parents[3].parent / "shared"
    if not (path / "fixtures" / "marblerun-manifests").is_dir():
        pytest.fail(f"shared folder with MarbleRun fixtures not found at {path}")
    return path


@pytest.fixture(scope="session")
def fixtures_dir(shared_dir: Path) -> Path:
    """The folder of MarbleRun sample manifests."""
    return shared_dir / "fixtures" / "marblerun-manifests"


@pytest.fixture(scope="session")
def make_cert() -> Callable[[str], tuple[str, bytes]]:
    """Factory: a fresh self-signed ECDSA certificate for a common name, as (PEM, DER)."""

    def make(common_name: str = "user") -> tuple[str, bytes]:
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
        now = datetime.datetime.now(datetime.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now)
            .not_valid_after(now + datetime.timedelta(days=1))
            .sign(key, hashes.SHA256())
        )
        pem = cert.public_bytes(serialization.Encoding.PEM).decode("ascii")
        return pem, cert.public_bytes(serialization.Encoding.DER)

    return make


@pytest.fixture(scope="session")
def make_rsa_public_pem() -> Callable[[int], str]:
    """Factory: a PEM (PKIX) RSA public key of the given size, as a recovery key."""

    def make(bits: int = 2048) -> str:
        key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
        return (
            key.public_key()
            .public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            .decode("ascii")
        )

    return make


@pytest.fixture
def make_doc() -> Callable[[], Doc]:
    """Factory: a minimal valid manifest document (one package, one marble) to modify."""
    base: Doc = {
        "Packages": {"pkg": {"UniqueID": UNIQUE_ID}},
        "Marbles": {"m": {"Package": "pkg", "Parameters": {"Argv": ["./m"]}}},
    }

    def make() -> Doc:
        return copy.deepcopy(base)

    return make


@pytest.fixture
def load() -> Callable[[Doc], Manifest]:
    """Factory: parse a document through JSON text, as a client would send it."""

    def parse(doc: Doc) -> Manifest:
        return Manifest.from_json(json.dumps(doc))

    return parse


@pytest.fixture
def rejects(load: Callable[[Doc], Manifest]) -> Callable[[Doc, str], ManifestError]:
    """Factory: assert that a document is rejected with exactly this error path."""

    def check(doc: Doc, path: str) -> ManifestError:
        with pytest.raises(ManifestError) as info:
            load(doc)
        assert info.value.path == path, str(info.value)
        return info.value

    return check
