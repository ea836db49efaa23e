"""Fixtures: the shared SEV-SNP vectors, and a synthetic AMD chain that signs reports we build."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

Vector = dict[str, Any]
_PSS = padding.PSS(mgf=padding.MGF1(hashes.SHA384()), salt_length=48)
_AMD = "1.3.6.1.4.1.3704.1"


@pytest.fixture(scope="session")
def vectors() -> Path:
    """The shared vector folder (/work/shared/vectors); fails loudly when it is missing."""
    path = Path(__file__).resolve().parents[4].parent / "shared" / "vectors"
    if not (path / "index.json").is_file():
        pytest.fail(f"shared test vectors not found at {path}")
    return path


@pytest.fixture(scope="session")
def snp_vectors(vectors: Path) -> dict[str, Vector]:
    """Every sev-snp vector of index.json, by id."""
    index = json.loads((vectors / "index.json").read_text())
    return {v["id"]: v for v in index["vectors"] if v["tee"] == "sev-snp"}


def pem_to_der(data: bytes) -> list[bytes]:
    """DER of every certificate in a PEM bundle, in order."""
    return [c.public_bytes(Encoding.DER) for c in x509.load_pem_x509_certificates(data)]


def vector_inputs(
    vectors: Path, vector: Vector
) -> tuple[bytes, list[bytes], list[bytes], dt.datetime]:
    """(report, certs, trust anchors, now) for one index.json vector."""
    report = (vectors / vector["evidence"]).read_bytes()
    certs = [(vectors / vector["collateral"]).read_bytes()]
    anchors = pem_to_der((vectors / vector["trust_anchor"]).read_bytes())
    now = dt.datetime.fromtimestamp(vector["verify_at_unix"], dt.UTC)
    return report, certs, anchors, now


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _int_ext(value: int) -> bytes:
    body = value.to_bytes((value.bit_length() + 8) // 8 or 1, "big")
    return bytes([0x02, len(body)]) + body


@dataclass(frozen=True)
class FakeAmd:
    """A synthetic ARK → ASK → VCEK/VLEK chain (RSA-PSS SHA-384) and the endorsement key."""

    ark_der: bytes
    ask_der: bytes
    leaf_der: bytes
    leaf_key: ec.EllipticCurvePrivateKey

    def sign(self, body: bytes) -> bytes:
        """A full 0x4A0-byte report: ``body`` (0x2A0 bytes) and its little-endian R/S."""
        assert len(body) == 0x2A0
        r, s = decode_dss_signature(self.leaf_key.sign(body, ec.ECDSA(hashes.SHA384())))
        sig = r.to_bytes(72, "little") + s.to_bytes(72, "little")
        return body + sig + bytes(0x4A0 - 0x2A0 - len(sig))


def _cert(
    subject: str,
    issuer: str,
    key: Any,
    signer: rsa.RSAPrivateKey,
    *,
    not_after: dt.datetime,
    extensions: dict[str, bytes] | None = None,
) -> bytes:
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(_name(issuer))
        .public_key(key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(dt.datetime(2020, 1, 1, tzinfo=dt.UTC))
        .not_valid_after(not_after)
    )
    for oid, value in (extensions or {}).items():
        ext = x509.UnrecognizedExtension(x509.ObjectIdentifier(oid), value)
        builder = builder.add_extension(ext, critical=False)
    return builder.sign(signer, hashes.SHA384(), rsa_padding=_PSS).public_bytes(Encoding.DER)


@pytest.fixture(scope="session")
def amd_keys() -> tuple[rsa.RSAPrivateKey, rsa.RSAPrivateKey]:
    """Session-wide RSA keys for the synthetic ARK and ASK (key generation is slow)."""
    return (
        rsa.generate_private_key(public_exponent=65537, key_size=2048),
        rsa.generate_private_key(public_exponent=65537, key_size=2048),
    )


@pytest.fixture
def make_amd(
    amd_keys: tuple[rsa.RSAPrivateKey, rsa.RSAPrivateKey],
) -> Callable[..., FakeAmd]:
    """Factory: a synthetic AMD chain whose leaf carries the given hwID and SPL extensions."""

    def make(
        *,
        hwid: bytes,
        spl: dict[str, int],
        vlek: bool = False,
        hwid_raw: bool = False,
        leaf_not_after: dt.datetime = dt.datetime(2030, 1, 1, tzinfo=dt.UTC),
    ) -> FakeAmd:
        ark_key, ask_key = amd_keys
        far = dt.datetime(2045, 1, 1, tzinfo=dt.UTC)
        ask_cn = "SEV-VLEK-Milan" if vlek else "SEV-Milan"
        ark = _cert("ARK-Milan", "ARK-Milan", ark_key.public_key(), ark_key, not_after=far)
        ask = _cert(ask_cn, "ARK-Milan", ask_key.public_key(), ark_key, not_after=far)
        leaf_key = ec.generate_private_key(ec.SECP384R1())
        oids = {"bl": "3.1", "tee": "3.2", "snp": "3.3", "ucode": "3.8", "fmc": "3.9"}
        ext = {f"{_AMD}.{oids[k]}": _int_ext(v) for k, v in spl.items()}
        if not vlek:
            ext[f"{_AMD}.4"] = hwid if hwid_raw else bytes([0x04, len(hwid)]) + hwid
        leaf = _cert(
            "SEV-VLEK" if vlek else "SEV-VCEK",
            ask_cn,
            leaf_key.public_key(),
            ask_key,
            not_after=leaf_not_after,
            extensions=ext,
        )
        return FakeAmd(ark_der=ark, ask_der=ask, leaf_der=leaf, leaf_key=leaf_key)

    return make
