"""Stale and future DCAP collateral, with the real SGX/TDX vectors, through the public verifier.

An attacker who controls the host controls the collateral it hands to a verifier (and may replay
old TCB info that predates an advisory). Verification happens at an explicit ``now``: outside the
collateral's half-open validity window ``[start, end)`` it must fail at step ``time``.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest

from veil.attestation import Collateral, Evidence, TrustAnchors, verify_evidence
from veil.errors import EvidenceError

VECTORS = Path(__file__).resolve().parents[2].parent / "shared" / "vectors"


def _accepting() -> list[dict[str, Any]]:
    index = json.loads((VECTORS / "index.json").read_text())
    return [
        v
        for v in index["vectors"]
        if v["tee"] in ("sgx", "tdx") and v["expect"] == "accept" and v.get("valid_window")
    ]


def _decode(raw: bytes, encoding: str) -> bytes:
    if encoding == "raw":
        return raw
    return bytes.fromhex("".join(raw.decode().strip().removeprefix("0x").split()))


def _verify(vector: dict[str, Any], now: dt.datetime) -> object:
    quote = _decode((VECTORS / vector["evidence"]).read_bytes(), vector["evidence_encoding"])
    return verify_evidence(
        Evidence(tee=vector["tee"], raw=quote),
        trust_anchors=TrustAnchors(intel_root_der=(VECTORS / vector["trust_anchor"]).read_bytes()),
        collateral=Collateral(dcap_json=(VECTORS / vector["collateral"]).read_bytes()),
        now=now,
    )


def _window(vector: dict[str, Any]) -> tuple[dt.datetime, dt.datetime]:
    start, end = (
        dt.datetime.fromisoformat(t.replace("Z", "+00:00")) for t in vector["valid_window"]
    )
    return start, end


VECTOR_IDS = [v["id"] for v in _accepting()]


@pytest.mark.parametrize("vector", _accepting(), ids=VECTOR_IDS)
@pytest.mark.parametrize(
    ("edge", "shift"),
    [("future-collateral", -1), ("stale-collateral", 0), ("years-stale", 3 * 365 * 86400)],
)
def test_collateral_outside_its_window_is_refused_at_time(
    vector: dict[str, Any], edge: str, shift: int
) -> None:
    """One second before the window (collateral from the future), at its end and years later
    (stale collateral replayed), verification fails at step 'time'."""
    start, end = _window(vector)
    now = (
        start + dt.timedelta(seconds=shift)
        if edge == "future-collateral"
        else end + dt.timedelta(seconds=shift)
    )
    with pytest.raises(EvidenceError) as caught:
        _verify(vector, now)
    assert caught.value.step == "time", caught.value


@pytest.mark.parametrize("vector", _accepting(), ids=VECTOR_IDS)
def test_collateral_inside_its_window_verifies(vector: dict[str, Any]) -> None:
    """Control: the same evidence verifies at the first and the last second of the window."""
    start, end = _window(vector)
    _verify(vector, start)
    _verify(vector, end - dt.timedelta(seconds=1))


def test_there_are_time_windowed_vectors_for_sgx_and_tdx() -> None:
    """The attack above really ran against both SGX and TDX evidence."""
    assert {v["tee"] for v in _accepting()} == {"sgx", "tdx"}
