"""Hostile simulated evidence: only VerificationError, never acceptance."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from veil.attestation import (
    Evidence,
    Policy,
    SimulatedIdentity,
    SimulatedPlatform,
    TrustAnchors,
    verify,
)
from veil.errors import VerificationError

REPORT = bytes(range(64))
_CACHE: dict[str, tuple[SimulatedPlatform, bytes]] = {}


def _material(tmp: Path) -> tuple[SimulatedPlatform, bytes]:
    if "p" not in _CACHE:
        platform = SimulatedPlatform.create(tmp / "platform")
        identity = SimulatedIdentity(unique_id=bytes(32))
        _CACHE["p"] = (platform, platform.issue(identity, REPORT).raw)
    return _CACHE["p"]


def _check(platform: SimulatedPlatform, raw: bytes, original: bytes) -> None:
    policy = Policy(tee="simulated", unique_id=bytes(32))
    try:
        verify(
            Evidence(tee="simulated", raw=raw),
            policy,
            trust_anchors=TrustAnchors(simulated_root_der=platform.root_der),
            expected_report_data=REPORT,
            now=dt.datetime.now(dt.UTC),
        )
    except VerificationError:
        return
    assert raw == original, "modified evidence was accepted"


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_mutated_simulated_evidence_is_refused(tmp_path: Path, data: st.DataObject) -> None:
    """Truncated, extended, bit-flipped or random evidence raises only VerificationError."""
    platform, raw = _material(tmp_path)
    kind = data.draw(st.sampled_from(["truncate", "extend", "flip", "random"]))
    if kind == "truncate":
        mutated = raw[: data.draw(st.integers(0, len(raw) - 1))]
    elif kind == "extend":
        mutated = raw + data.draw(st.binary(min_size=1, max_size=64))
    elif kind == "flip":
        i = data.draw(st.integers(0, len(raw) * 8 - 1))
        buf = bytearray(raw)
        buf[i // 8] ^= 1 << (i % 8)
        mutated = bytes(buf)
    else:
        mutated = data.draw(st.binary(max_size=2048))
    _check(platform, mutated, raw)
