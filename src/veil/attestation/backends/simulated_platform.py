"""The simulated platform and its evidence issuer (the "hardware" side of the simulated TEE).

A platform is a directory holding the simulated root CA, the attestation key certified by it, and a
platform seal secret. Creating one is explicit (``veil attest simulated-platform init``); nothing
falls back to it silently. Measurements are computed the way a library OS measures trusted files:
over the installed ``veil`` package sources, the entry point and any extra files.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.x509.oid import NameOID

from veil.attestation._model import REPORT_DATA_SIZE, Evidence
from veil.attestation.backends.simulated import FORMAT
from veil.errors import ConfigurationError

_ROOT = "root.pem"
_ROOT_KEY = "root.key"
_AK = "attestation-key.pem"
_AK_KEY = "attestation-key.key"
_SEAL = "seal.secret"
DEFAULT_SIGNER_ID = hashlib.sha256(b"veil simulated enclave signer v1").digest()


@dataclass(frozen=True)
class SimulatedIdentity:
    """The identity the simulated hardware reports for a workload."""

    unique_id: bytes
    signer_id: bytes = DEFAULT_SIGNER_ID
    product_id: int = 1
    security_version: int = 1
    debug: bool = False


def measure(entry_point: str, *, extra_files: Sequence[Path] = ()) -> bytes:
    """UniqueID of a workload: SHA-256 over the entry point, every veil source file and extras.

    A modified veil installation, another entry point or different extra files give another
    measurement, as a modified enclave build would.
    """
    package_root = Path(__file__).resolve().parents[2]
    h = hashlib.sha256(b"veil-simulated-measurement/v1\x00" + entry_point.encode() + b"\x00")
    files = sorted(p for p in package_root.rglob("*.py") if "__pycache__" not in p.parts)
    for path in files:
        rel = path.relative_to(package_root).as_posix().encode()
        h.update(rel + b"\x00" + hashlib.sha256(path.read_bytes()).digest())
    for extra in extra_files:
        try:
            content = Path(extra).read_bytes()
        except OSError as exc:
            raise ConfigurationError(f"cannot read measured file {extra}: {exc.strerror}") from None
        h.update(b"extra\x00" + hashlib.sha256(content).digest())
    return h.digest()


def _name(cn: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "veil simulated TEE"),
            x509.NameAttribute(NameOID.COMMON_NAME, cn),
        ]
    )


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)


class SimulatedPlatform:
    """A simulated TEE platform rooted in a directory."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        try:
            self.root_cert = x509.load_pem_x509_certificate((self.directory / _ROOT).read_bytes())
            self._ak_cert_pem = (self.directory / _AK).read_bytes()
            ak_key = serialization.load_pem_private_key(
                (self.directory / _AK_KEY).read_bytes(), None
            )
            self._seal_secret = (self.directory / _SEAL).read_bytes()
        except (OSError, ValueError) as exc:
            raise ConfigurationError(
                f"{directory} is not a simulated TEE platform ({exc}); create one with "
                "'veil attest simulated-platform init DIR'"
            ) from None
        if not isinstance(ak_key, ec.EllipticCurvePrivateKey):
            raise ConfigurationError(f"{directory}: the attestation key must be ECDSA")
        self._ak_key = ak_key

    @classmethod
    def create(cls, directory: Path, *, now: dt.datetime | None = None) -> SimulatedPlatform:
        """Create a new platform (root CA, attestation key, seal secret) in ``directory``."""
        now = now or dt.datetime.now(dt.UTC)
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        root_key = ec.generate_private_key(ec.SECP256R1())
        ak_key = ec.generate_private_key(ec.SECP256R1())
        start = now - dt.timedelta(minutes=5)
        root = (
            x509.CertificateBuilder()
            .subject_name(_name("veil simulated TEE root"))
            .issuer_name(_name("veil simulated TEE root"))
            .public_key(root_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(start + dt.timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .sign(root_key, hashes.SHA256())
        )
        ak = (
            x509.CertificateBuilder()
            .subject_name(_name("veil simulated attestation key"))
            .issuer_name(root.subject)
            .public_key(ak_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(start + dt.timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .sign(root_key, hashes.SHA256())
        )
        pkcs8 = serialization.PrivateFormat.PKCS8
        pem = serialization.Encoding.PEM
        none = serialization.NoEncryption()
        (directory / _ROOT).write_bytes(root.public_bytes(pem))
        (directory / _AK).write_bytes(ak.public_bytes(pem))
        _write_private(directory / _ROOT_KEY, root_key.private_bytes(pem, pkcs8, none))
        _write_private(directory / _AK_KEY, ak_key.private_bytes(pem, pkcs8, none))
        _write_private(directory / _SEAL, os.urandom(32))
        return cls(directory)

    @property
    def root_der(self) -> bytes:
        """DER of the simulated root certificate: the trust anchor verifiers pin."""
        return self.root_cert.public_bytes(serialization.Encoding.DER)

    def issue(self, identity: SimulatedIdentity, report_data: bytes) -> Evidence:
        """Sign evidence for ``identity`` with ``report_data`` (at most 64 bytes, zero-padded)."""
        if len(report_data) > REPORT_DATA_SIZE:
            raise ConfigurationError("report data is at most 64 bytes")
        body = json.dumps(
            {
                "unique_id": identity.unique_id.hex(),
                "signer_id": identity.signer_id.hex(),
                "product_id": identity.product_id,
                "security_version": identity.security_version,
                "debug": identity.debug,
                "report_data": report_data.ljust(REPORT_DATA_SIZE, b"\x00").hex(),
            },
            sort_keys=True,
        ).encode()
        signature = self._ak_key.sign(body, ec.ECDSA(hashes.SHA256()))
        envelope = {
            "format": FORMAT,
            "body": base64.b64encode(body).decode(),
            "signature": base64.b64encode(signature).decode(),
            "certificates": [self._ak_cert_pem.decode("ascii")],
        }
        return Evidence(tee="simulated", raw=json.dumps(envelope).encode())

    def seal_key(self, identity: SimulatedIdentity, *, mode: str = "ProductKey") -> bytes:
        """A 32-byte key only this platform can derive for this identity (like SGX EGETKEY).

        ``ProductKey`` binds SignerID + ProductID (survives upgrades); ``UniqueKey`` binds the
        exact measurement.
        """
        if mode == "UniqueKey":
            info = b"unique\x00" + identity.unique_id
        elif mode == "ProductKey":
            info = b"product\x00" + identity.signer_id + identity.product_id.to_bytes(8, "big")
        else:
            raise ConfigurationError(f"unknown seal mode {mode!r}")
        return HKDF(algorithm=hashes.SHA256(), length=32, salt=b"veil-seal/v1", info=info).derive(
            self._seal_secret
        )

    def fingerprint(self) -> str:
        """SHA-256 of the root certificate's DER, for display and pinning."""
        return hashlib.sha256(self.root_der).hexdigest()
