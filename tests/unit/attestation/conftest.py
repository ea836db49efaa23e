"""Factory fixtures for attestation tests: simulated platforms, identities, policies, evidence."""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Callable
from pathlib import Path

import pytest

from veil.attestation import Evidence, Policy, SimulatedIdentity, SimulatedPlatform, TrustAnchors

UNIQUE_ID = bytes.fromhex("ab" * 32)
REPORT_DATA = b"bound key digest".ljust(64, b"\x00")


@pytest.fixture
def now() -> dt.datetime:
    """The verification time: the current UTC time, inside every fresh platform's validity."""
    return dt.datetime.now(dt.UTC)


@pytest.fixture
def make_platform(tmp_path: Path) -> Callable[[], SimulatedPlatform]:
    """Factory: a fresh simulated platform in its own directory (own root, AK and seal secret)."""
    counter = itertools.count()

    def make() -> SimulatedPlatform:
        return SimulatedPlatform.create(tmp_path / f"platform-{next(counter)}")

    return make


@pytest.fixture
def platform(make_platform: Callable[[], SimulatedPlatform]) -> SimulatedPlatform:
    """One simulated platform."""
    return make_platform()


@pytest.fixture
def anchors(platform: SimulatedPlatform) -> TrustAnchors:
    """Trust anchors that pin the fixture platform's simulated root."""
    return TrustAnchors(simulated_root_der=platform.root_der)


@pytest.fixture
def identity() -> SimulatedIdentity:
    """A production (non-debug) workload identity measured as UNIQUE_ID."""
    return SimulatedIdentity(unique_id=UNIQUE_ID)


@pytest.fixture
def make_policy() -> Callable[..., Policy]:
    """Factory: a simulated policy pinning UNIQUE_ID, with any field overridden."""

    def make(**overrides: object) -> Policy:
        fields: dict[str, object] = {"tee": "simulated", "unique_id": UNIQUE_ID}
        fields.update(overrides)
        return Policy(**fields)  # type: ignore[arg-type]

    return make


@pytest.fixture
def evidence(platform: SimulatedPlatform, identity: SimulatedIdentity) -> Evidence:
    """Genuine evidence of the fixture identity on the fixture platform, binding REPORT_DATA."""
    return platform.issue(identity, REPORT_DATA)
