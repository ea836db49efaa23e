"""Factory fixtures for coordinator tests: a simulated TEE, users, a manifest, services, marbles."""

from __future__ import annotations

import copy
import datetime as dt
import json
import uuid as uuidlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from veil.attestation import (
    SimulatedIdentity,
    SimulatedPlatform,
    TrustAnchors,
    marble_report_data,
)
from veil.coordinator.server import SimulatedCoordinatorTEE
from veil.coordinator.service import ActivationRequest, CoordinatorService
from veil.coordinator.store import MemoryStore, SealedSQLiteStore, Store, open_data_key
from veil.pki import build_csr, generate_key, self_signed_user_certificate, spki_der

MARBLE_UNIQUE_ID = bytes.fromhex("ab" * 32)
MODEL_KEY = bytes.fromhex("5e" * 32)  # a recognisable 256-bit user-defined secret

Doc = dict[str, Any]


@dataclass(frozen=True)
class User:
    """A manifest user: name, certificate DER and PEM."""

    name: str
    cert_der: bytes
    cert_pem: str


@dataclass(frozen=True)
class Marble:
    """A marble's request and the private key it kept to itself."""

    key: ec.EllipticCurvePrivateKey
    request: ActivationRequest


@pytest.fixture
def platform(tmp_path: Path) -> SimulatedPlatform:
    """The simulated platform the coordinator and its marbles run on."""
    return SimulatedPlatform.create(tmp_path / "platform")


@pytest.fixture
def tee(platform: SimulatedPlatform) -> SimulatedCoordinatorTEE:
    """The coordinator's view of the simulated TEE."""
    return SimulatedCoordinatorTEE(platform)


@pytest.fixture
def anchors(platform: SimulatedPlatform) -> TrustAnchors:
    """Trust anchors pinning the fixture platform's simulated root."""
    return TrustAnchors(simulated_root_der=platform.root_der)


@pytest.fixture
def make_user() -> Callable[[str], User]:
    """Factory: a user with a fresh self-signed client certificate."""

    def make(name: str) -> User:
        key = generate_key()
        cert = self_signed_user_certificate(key, name, now=dt.datetime.now(dt.UTC))
        return User(
            name=name,
            cert_der=cert.public_bytes(serialization.Encoding.DER),
            cert_pem=cert.public_bytes(serialization.Encoding.PEM).decode("ascii"),
        )

    return make


@pytest.fixture
def users(make_user: Callable[[str], User]) -> dict[str, User]:
    """An owner who may write the model key and read the shared key, and a reader who may not write."""
    return {name: make_user(name) for name in ("owner", "reader")}


@pytest.fixture
def make_manifest(users: dict[str, User]) -> Callable[[], Doc]:
    """Factory: the test manifest document (simulated package, one marble, two secrets, roles)."""
    base: Doc = {
        "Packages": {"p": {"TEE": "simulated", "UniqueID": MARBLE_UNIQUE_ID.hex(), "Debug": False}},
        "Marbles": {
            "m": {
                "Package": "p",
                "MaxActivations": 2,
                "Parameters": {"Env": {"VEIL_MODEL_KEY": "{{ hex .Secrets.model_key }}"}},
            }
        },
        "Secrets": {
            "model_key": {"Type": "symmetric-key", "Size": 256, "UserDefined": True},
            "shared": {"Type": "symmetric-key", "Size": 128, "Shared": True},
        },
        "Users": {
            "owner": {"Certificate": users["owner"].cert_pem, "Roles": ["writer", "reader"]},
            "reader": {"Certificate": users["reader"].cert_pem, "Roles": ["reader"]},
        },
        "Roles": {
            "writer": {
                "ResourceType": "Secrets",
                "ResourceNames": ["model_key"],
                "Actions": ["WriteSecret"],
            },
            "reader": {
                "ResourceType": "Secrets",
                "ResourceNames": ["shared", "model_key"],
                "Actions": ["ReadSecret"],
            },
        },
    }

    def make() -> Doc:
        return copy.deepcopy(base)

    return make


@pytest.fixture
def manifest_bytes(make_manifest: Callable[[], Doc]) -> bytes:
    """The test manifest as the JSON bytes a client uploads."""
    return json.dumps(make_manifest()).encode()


@pytest.fixture
def make_service(
    tee: SimulatedCoordinatorTEE, anchors: TrustAnchors
) -> Callable[..., CoordinatorService]:
    """Factory: a coordinator service on a given store (a fresh memory store by default)."""

    def make(store: Store | None = None) -> CoordinatorService:
        return CoordinatorService(store or MemoryStore(), tee, trust_anchors=anchors)

    return make


@pytest.fixture
def make_sealed_store(
    tmp_path: Path, tee: SimulatedCoordinatorTEE
) -> Iterator[Callable[[], SealedSQLiteStore]]:
    """Factory: (re)open the sealed SQLite store in one state directory, as a restart would."""
    state = tmp_path / "state"
    state.mkdir()
    opened: list[SealedSQLiteStore] = []

    def make() -> SealedSQLiteStore:
        data_key, _ = open_data_key(state / "sealed_key", tee)
        store = SealedSQLiteStore(state / "state.db", data_key)
        opened.append(store)
        return store

    yield make
    for store in opened:
        store.close()


@pytest.fixture
def service(
    make_service: Callable[..., CoordinatorService], manifest_bytes: bytes
) -> CoordinatorService:
    """A coordinator on a memory store with the test manifest set (accepting marbles)."""
    svc = make_service()
    svc.set_manifest(manifest_bytes)
    return svc


@pytest.fixture
def make_marble(platform: SimulatedPlatform) -> Callable[..., Marble]:
    """Factory: a marble with its own key, a CSR for it and evidence binding exactly that key.

    ``evidence_key`` makes the evidence bind another key (a replay); ``unique_id`` another build.
    """

    def make(
        *,
        marble_type: str = "m",
        unique_id: bytes = MARBLE_UNIQUE_ID,
        evidence_key: ec.EllipticCurvePrivateKey | None = None,
        evidence_platform: SimulatedPlatform | None = None,
    ) -> Marble:
        key = generate_key()
        csr_der = build_csr(key, common_name="marble", dns_names=["m.example"])
        bound = (evidence_key or key).public_key()
        evidence = (evidence_platform or platform).issue(
            SimulatedIdentity(unique_id=unique_id), marble_report_data(spki_der(bound))
        )
        request = ActivationRequest(marble_type, str(uuidlib.uuid4()), csr_der, evidence)
        return Marble(key=key, request=request)

    return make
