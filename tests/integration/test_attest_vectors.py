"""Every real attestation vector gives its expected verdict through ``veil attest verify``."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from veil.cli import cli

VECTORS = Path(__file__).resolve().parents[2].parent / "shared" / "vectors"


def _index() -> list[dict[str, Any]]:
    index = VECTORS / "index.json"
    if not index.exists():
        pytest.fail(f"the shared attestation vectors are missing: {index}")
    return list(json.loads(index.read_text())["vectors"])


def _args(v: dict[str, Any], at: str, policy: Path | None) -> list[str]:
    args = ["attest", "verify", str(VECTORS / v["evidence"]), "--tee", v["tee"]]
    args += ["--trust-anchor", str(VECTORS / v["trust_anchor"]), "--at", at, "--json"]
    args += ["--evidence-encoding", v["evidence_encoding"]]
    if v["tee"] in ("sgx", "tdx"):
        args += ["--collateral", str(VECTORS / v["collateral"])]
    else:
        args += ["--certs", str(VECTORS / v["collateral"])]
    if policy is not None:
        args += ["--policy", str(policy)]
    return args


def _policy_for(v: dict[str, Any], tmp_path: Path) -> Path | None:
    """A policy allowing the status (and debug) a vector expects to be accepted with."""
    if v["expect"] != "accept":
        return None
    doc: dict[str, object] = {"TEE": v["tee"], "Debug": bool(v.get("debug", False))}
    if v.get("expect_tcb_status"):
        doc["AcceptedTCBStatuses"] = [v["expect_tcb_status"]]
    path = tmp_path / "policy.json"
    path.write_text(json.dumps(doc))
    return path


def _run(args: list[str]) -> tuple[int, dict[str, Any]]:
    result = CliRunner().invoke(cli, args)
    lines = [line for line in result.output.splitlines() if line.startswith("{")]
    assert lines, result.output
    return result.exit_code, json.loads(lines[-1])


@pytest.mark.parametrize("vector", _index(), ids=lambda v: v["id"])
def test_vector_verdict_and_claims(vector: dict[str, Any], tmp_path: Path) -> None:
    """The CLI accepts or rejects each vector as index.json expects, naming the failing step."""
    code, doc = _run(_args(vector, vector["verify_at"], _policy_for(vector, tmp_path)))
    if vector["expect"] == "accept":
        assert code == 0, doc
        assert doc["ok"] is True
        if vector.get("expect_tcb_status"):
            assert doc["tcb_status"] == vector["expect_tcb_status"]
            assert sorted(doc["advisory_ids"]) == sorted(vector["expect_advisories"])
        for key in vector.get("identity_keys", []):
            if key in doc["claims"]:
                assert doc["claims"][key] == vector[key], key
    else:
        assert code == 1, doc
        assert doc["ok"] is False
        assert doc["error"].startswith(vector["reject_stage"] + ":"), doc["error"]


def _shift(stamp: str, seconds: int) -> str:
    t = dt.datetime.fromisoformat(stamp.replace("Z", "+00:00")) + dt.timedelta(seconds=seconds)
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.mark.parametrize(
    "vector",
    [v for v in _index() if v.get("valid_window") and v["expect"] == "accept"],
    ids=lambda v: v["id"],
)
@pytest.mark.parametrize("edge", ["before-start", "at-end"])
def test_dcap_collateral_window_edges(vector: dict[str, Any], edge: str, tmp_path: Path) -> None:
    """DCAP verification fails one second before the collateral window opens and at its end."""
    start, end = vector["valid_window"]
    at = _shift(start, -1) if edge == "before-start" else end
    code, doc = _run(_args(vector, at, _policy_for(vector, tmp_path)))
    assert code == 1, doc
    assert doc["error"].startswith("time:"), doc["error"]


def test_usage_error_exits_2(tmp_path: Path) -> None:
    """A malformed --at is a usage error (exit 2), not a verdict."""
    v = _index()[0]
    result = CliRunner().invoke(cli, _args(v, "yesterday", None))
    assert result.exit_code == 2
