"""Factory fixtures for PKI tests: a coordinator root, its intermediate, and marble keys/CSRs."""

from __future__ import annotations

import datetime as dt

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from veil.pki import CertifiedKey, build_csr, create_intermediate, create_root, generate_key


@pytest.fixture
def now() -> dt.datetime:
    """The explicit issuing and verification time."""
    return dt.datetime(2030, 1, 1, tzinfo=dt.UTC)


@pytest.fixture
def root(now: dt.datetime) -> CertifiedKey:
    """A fresh coordinator root CA."""
    return create_root(now, dns_names=("coordinator.example",))


@pytest.fixture
def cas(root: CertifiedKey, now: dt.datetime) -> tuple[CertifiedKey, CertifiedKey]:
    """(intermediate, marble root) for the fixture root: one key, two certificates."""
    return create_intermediate(root, now)


@pytest.fixture
def marble_key() -> ec.EllipticCurvePrivateKey:
    """The marble's own key; the coordinator only ever sees its CSR."""
    return generate_key()


@pytest.fixture
def csr_der(marble_key: ec.EllipticCurvePrivateKey) -> bytes:
    """A DER CSR for the marble key with one DNS name."""
    return build_csr(marble_key, common_name="marble", dns_names=["model.example"])
