"""Fixtures: the shared NVIDIA vectors, decoded into the verifier's inputs."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

Vector = dict[str, Any]


@pytest.fixture(scope="session")
def vectors() -> Path:
    """The shared vector folder (/work/shared/vectors); fails loudly when it is missing."""
    path = Path(__file__).resolve().parents[4].parent / "shared" / "vectors"
    if not (path / "index.json").is_file():
        pytest.fail(f"shared test vectors not found at {path}")
    return path


@pytest.fixture(scope="session")
def nvidia_vectors(vectors: Path) -> dict[str, Vector]:
    """Every nvidia vector of index.json, by id."""
    index = json.loads((vectors / "index.json").read_text())
    return {v["id"]: v for v in index["vectors"] if v["tee"] == "nvidia"}


def decode_hex(text: str) -> bytes:
    """The index's "hex" evidence encoding: strip whitespace and an optional 0x, then decode."""
    text = "".join(text.split())
    return bytes.fromhex(text.removeprefix("0x"))


def vector_inputs(vectors: Path, vector: Vector) -> tuple[bytes, list[bytes], bytes, dt.datetime]:
    """(evidence, chain DER leaf first, pinned root DER, now) for one index.json vector."""
    evidence = decode_hex((vectors / vector["evidence"]).read_text())
    pem = (vectors / vector["collateral"]).read_bytes()
    chain = [c.public_bytes(Encoding.DER) for c in x509.load_pem_x509_certificates(pem)]
    root = x509.load_pem_x509_certificate((vectors / vector["trust_anchor"]).read_bytes())
    now = dt.datetime.fromtimestamp(vector["verify_at_unix"], dt.UTC)
    return evidence, chain, root.public_bytes(Encoding.DER), now
