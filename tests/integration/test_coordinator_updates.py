"""Manifest updates through real processes and the CLI: a security-version bump, a full update
with 2-of-3 acknowledgements, a cancelled update; the update log verifies, and editing one row of
the SQLite file makes ``veil manifest log --verify`` fail. Also: startup manifest, certificates,
the metrics listener and the event log."""

from __future__ import annotations

import base64
import hashlib
import json
import sqlite3
from pathlib import Path

import httpx
import pytest

from tests.integration._deploy import Services, veil
from tests.integration.test_coordinator_recovery import assert_no_secret_in_logs

pytestmark = pytest.mark.integration

ADMINS = ("admin1", "admin2", "admin3")


def _manifest(d: Path, **changes: object) -> dict[str, object]:
    signer = hashlib.sha256(b"veil simulated enclave signer v1").hexdigest()
    doc: dict[str, object] = {
        "Packages": {"p": {"TEE": "simulated", "SignerID": signer, "ProductID": 1,
                           "SecurityVersion": 1}},
        "Marbles": {"m": {"Package": "p"}},
        "Secrets": {"shared": {"Type": "symmetric-key", "Size": 128, "Shared": True}},
        "Users": {
            **{a: {"Certificate": (d / f"{a}.crt").read_text(), "Roles": ["update"]}
               for a in ADMINS},
            "owner": {"Certificate": (d / "owner.crt").read_text(), "Roles": ["svn", "read"]},
        },
        "Roles": {
            "update": {"ResourceType": "Manifest", "Actions": ["UpdateManifest"]},
            "svn": {"ResourceType": "Packages", "ResourceNames": ["p"],
                    "Actions": ["UpdateSecurityVersion"]},
            "read": {"ResourceType": "Secrets", "ResourceNames": ["shared"],
                     "Actions": ["ReadSecret"]},
        },
        "Config": {"UpdateThreshold": 2},
    }  # fmt: skip
    doc.update(changes)
    return doc


def test_updates_and_a_tamper_evident_log(tmp_path: Path) -> None:
    """SVN bump, 2-of-3 full update, cancel; log verifies until one SQLite row is edited."""
    d = tmp_path
    services = Services(d)
    try:
        veil("attest", "simulated-platform", "init", d / "platform", cwd=d)
        for user in (*ADMINS, "owner"):
            veil("user", "new", user, "--cert-out", d / f"{user}.crt", "--key-out",
                 d / f"{user}.key", cwd=d)  # fmt: skip
        (d / "manifest.json").write_text(json.dumps(_manifest(d)))
        ready = d / "c.ready"
        proc = services.start(
            "coordinator", "coordinator", "run", "--tee", "simulated",
            "--simulated-platform", d / "platform", "--client-addr", "127.0.0.1:0",
            "--mesh-addr", "127.0.0.1:0", "--metrics-addr", "127.0.0.1:0",
            "--data-dir", d / "state", "--startup-manifest", d / "manifest.json",
            "--ready-file", ready,
        )  # fmt: skip
        ports = services.wait_ready(proc, ready)
        client = f"127.0.0.1:{ports['client_port']}"
        signer = json.loads(json.dumps(_manifest(d)["Packages"]))["p"]["SignerID"]
        (d / "policy.json").write_text(
            json.dumps({"TEE": "simulated", "SignerID": signer, "ProductID": 1,
                        "SecurityVersion": 1})
        )  # fmt: skip
        veil(
            "verify", "--coordinator", client, "--policy", d / "policy.json",
            "--simulated-root", d / "platform" / "root.pem", "--manifest", d / "manifest.json",
            "--save-root", d / "root.pem", cwd=d,
        )  # fmt: skip
        trust = ["--coordinator", client, "--coordinator-cert", d / "root.pem"]

        def auth(user: str) -> list[str | Path]:
            return ["--cert", d / f"{user}.crt", "--key", d / f"{user}.key"]

        veil("certificate", "intermediate", *trust, "-o", d / "inter-0.crt", cwd=d)
        # 1. security-version bump, immediate
        (d / "svn.json").write_text(json.dumps({"Packages": {"p": {"SecurityVersion": 4}}}))
        out = veil("manifest", "update", "apply", d / "svn.json", *trust, *auth("owner"), cwd=d)
        assert "update applied (security-version)" in out.stdout
        shown = veil("manifest", "get", *trust, "--display-update", cwd=d).stdout
        assert json.loads(shown)["Packages"]["p"]["SecurityVersion"] == 4
        veil("manifest", "verify", d / "manifest.json", *trust, cwd=d)  # document unchanged
        refused = veil("manifest", "update", "apply", d / "svn.json", *trust, *auth("admin1"),
                       cwd=d, check=False)  # fmt: skip
        assert refused.returncode == 1
        assert "not allowed to update the security version" in refused.stderr
        # 2. full update with 2 of 3 acknowledgements
        (d / "v2.json").write_text(json.dumps(_manifest(d, Marbles={"m": {
            "Package": "p", "MaxActivations": 5}})))  # fmt: skip
        out = veil("manifest", "update", "apply", d / "v2.json", *trust, *auth("admin1"), cwd=d)
        assert "1 more acknowledgement(s)" in out.stdout
        missing = veil("manifest", "update", "get", *trust, "--missing", cwd=d).stdout.split()
        assert missing == ["admin2", "admin3"]
        out = veil("manifest", "update", "acknowledge", d / "v2.json", *trust, *auth("admin3"),
                   cwd=d)  # fmt: skip
        assert "update applied (manifest)" in out.stdout
        veil("manifest", "verify", d / "v2.json", *trust, cwd=d)
        veil("certificate", "intermediate", *trust, "-o", d / "inter-1.crt", cwd=d)
        assert (d / "inter-0.crt").read_bytes() != (d / "inter-1.crt").read_bytes()
        # 3. an update that is cancelled
        (d / "v3.json").write_text(json.dumps(_manifest(d, Marbles={"m": {"Package": "p"}})))
        veil("manifest", "update", "apply", d / "v3.json", *trust, *auth("admin2"), cwd=d)
        veil("manifest", "update", "cancel", *trust, *auth("admin1"), cwd=d)
        none = veil("manifest", "update", "get", *trust, cwd=d, check=False)
        assert none.returncode == 4
        assert "no manifest update is pending" in none.stderr
        veil("manifest", "verify", d / "v2.json", *trust, cwd=d)

        log = veil("manifest", "log", *trust, "--verify", cwd=d).stdout
        actions = [json.loads(line)["action"] for line in log.splitlines() if line.startswith("{")]
        assert actions == [
            "set-manifest", "update-security-version", "update-submitted",
            "update-acknowledged", "update-manifest", "update-submitted", "update-cancelled",
        ]  # fmt: skip
        assert "update log verified: 7 entries" in log

        # 4. the host edits one row of the SQLite log
        conn = sqlite3.connect(d / "state" / "state.db")
        key = "updatelog/000000000003"
        (blob,) = conn.execute("SELECT value FROM kv WHERE key = ?", (key,)).fetchone()
        conn.execute("UPDATE kv SET value = ? WHERE key = ?", (blob[:20] + b"\0" + blob[21:], key))
        conn.commit()
        conn.close()
        tampered = veil("manifest", "log", *trust, "--verify", cwd=d, check=False)
        assert tampered.returncode == 1
        assert "update log entry 3" in tampered.stderr

        # operations: metrics and events on the separate listener
        metrics = httpx.get(f"http://127.0.0.1:{ports['metrics_port']}/metrics", timeout=10).text
        assert "veil_coordinator_state 3" in metrics
        assert "veil_coordinator_api_request_duration_seconds_count" in metrics
        events = httpx.get(f"http://127.0.0.1:{ports['metrics_port']}/events", timeout=10)
        assert events.json()["status"] == "success"

        shared = json.loads(veil("secret", "get", "shared", *trust, *auth("owner"), cwd=d).stdout)[
            "shared"
        ]["Key"]
        user_keys = {f"{u} key": (d / f"{u}.key").read_bytes() for u in (*ADMINS, "owner")}
        assert_no_secret_in_logs(services.logs(), {"shared": base64.b64decode(shared), **user_keys})
    finally:
        services.stop()
