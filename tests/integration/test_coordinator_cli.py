"""CLI inputs against a real coordinator: malformed, truncated, unauthorized or untrusted input
gives one sentence and the documented exit code (1 refused, 2 bad input, 3 environment, 4 state)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.integration._deploy import Services, veil
from tests.integration.test_coordinator_recovery import write_signer_policy

pytestmark = pytest.mark.integration


@dataclass
class Coordinator:
    """A running coordinator with a manifest, its verified root and two users."""

    dir: Path
    client: str

    def trust(self) -> list[str | Path]:
        return ["--coordinator", self.client, "--coordinator-cert", self.dir / "root.pem"]

    def auth(self, user: str) -> list[str | Path]:
        return ["--cert", self.dir / f"{user}.crt", "--key", self.dir / f"{user}.key"]


@pytest.fixture(scope="module")
def coordinator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Coordinator]:
    """A coordinator with owner (UpdateManifest) and guest (no roles) users."""
    d = tmp_path_factory.mktemp("cli")
    services = Services(d)
    try:
        veil("attest", "simulated-platform", "init", d / "platform", cwd=d)
        for user in ("owner", "guest", "stranger"):
            veil("user", "new", user, "--cert-out", d / f"{user}.crt", "--key-out",
                 d / f"{user}.key", cwd=d)  # fmt: skip
        manifest = {
            "Packages": {"p": {"TEE": "simulated", "UniqueID": "ab" * 32}},
            "Marbles": {"m": {"Package": "p"}},
            "Users": {
                "owner": {"Certificate": (d / "owner.crt").read_text(), "Roles": ["u"]},
                "guest": {"Certificate": (d / "guest.crt").read_text()},
            },
            "Roles": {"u": {"ResourceType": "Manifest", "Actions": ["UpdateManifest"]}},
        }
        (d / "manifest.json").write_text(json.dumps(manifest))
        ready = d / "c.ready"
        proc = services.start(
            "coordinator", "coordinator", "run", "--tee", "simulated",
            "--simulated-platform", d / "platform", "--client-addr", "127.0.0.1:0",
            "--mesh-addr", "127.0.0.1:0", "--seal-dir", d / "state",
            "--startup-manifest", d / "manifest.json", "--ready-file", ready,
        )  # fmt: skip
        client = f"127.0.0.1:{services.wait_ready(proc, ready)['client_port']}"
        write_signer_policy(d / "policy.json")
        veil("verify", "--coordinator", client, "--policy", d / "policy.json",
             "--simulated-root", d / "platform" / "root.pem", "--save-root", d / "root.pem",
             cwd=d)  # fmt: skip
        yield Coordinator(dir=d, client=client)
    finally:
        services.stop()


def _fails(c: Coordinator, code: int, text: str, *args: str | Path) -> None:
    proc = veil(*args, cwd=c.dir, check=False)
    assert proc.returncode == code, proc.stdout + proc.stderr
    assert text in proc.stderr
    assert "Traceback" not in proc.stderr
    assert len([line for line in proc.stderr.splitlines() if line.startswith("error:")]) == 1


def test_no_trust_option_is_bad_input(coordinator: Coordinator) -> None:
    """Without --coordinator-cert, --policy or --insecure the CLI says how to trust (exit 2)."""
    _fails(coordinator, 2, "say how to trust the coordinator", "manifest", "log",
           "--coordinator", coordinator.client)  # fmt: skip


def test_unreachable_coordinator_is_an_environment_error(coordinator: Coordinator) -> None:
    """A coordinator that does not answer: exit 3, and --insecure still warns."""
    proc = veil("status", "--coordinator", "127.0.0.1:1", "--insecure", cwd=coordinator.dir,
                check=False)  # fmt: skip
    assert proc.returncode == 3
    assert "warning: --insecure" in proc.stderr


def test_truncated_and_malformed_manifests_name_the_problem(coordinator: Coordinator) -> None:
    """A truncated update manifest or an unknown field: exit 2 naming the field."""
    d = coordinator.dir
    (d / "truncated.json").write_text((d / "manifest.json").read_text()[:100])
    _fails(coordinator, 2, "error:", "manifest", "update", "apply", d / "truncated.json",
           *coordinator.trust(), *coordinator.auth("owner"))  # fmt: skip
    doc = json.loads((d / "manifest.json").read_text())
    doc["Marbles"]["m"]["Bogus"] = 1
    (d / "bogus.json").write_text(json.dumps(doc))
    _fails(coordinator, 2, "Marbles.m.Bogus", "manifest", "update", "apply", d / "bogus.json",
           *coordinator.trust(), *coordinator.auth("owner"))  # fmt: skip
    _fails(coordinator, 2, "neither a manifest file nor", "manifest", "verify", "xyz",
           *coordinator.trust())  # fmt: skip


def test_unauthorized_users_are_refused(coordinator: Coordinator) -> None:
    """A user without UpdateManifest, or a certificate outside the manifest: exit 1."""
    d = coordinator.dir
    doc = json.loads((d / "manifest.json").read_text())
    doc["Marbles"]["m"]["MaxActivations"] = 2
    (d / "v2.json").write_text(json.dumps(doc))
    _fails(coordinator, 1, "not allowed to update the manifest", "manifest", "update", "apply",
           d / "v2.json", *coordinator.trust(), *coordinator.auth("guest"))  # fmt: skip
    _fails(coordinator, 1, "error:", "manifest", "update", "cancel", *coordinator.trust(),
           *coordinator.auth("stranger"))  # fmt: skip


def test_wrong_state_is_exit_four(coordinator: Coordinator) -> None:
    """Recovery commands on a coordinator that is not in recovery: exit 4."""
    _fails(coordinator, 4, "no manifest update is pending", "manifest", "update", "cancel",
           *coordinator.trust(), *coordinator.auth("owner"))  # fmt: skip
    d = coordinator.dir
    (d / "secrets.json").write_text(json.dumps({"a": "AAAA"}))
    (d / "k.pem").write_text("not a key")
    _fails(coordinator, 2, "not an unencrypted PEM private key", "recover", d / "secrets.json",
           "-k", d / "k.pem", *coordinator.trust())  # fmt: skip


def test_certificates_and_status(coordinator: Coordinator) -> None:
    """certificate chain = intermediate + root; status prints code 3."""
    d = coordinator.dir
    veil("certificate", "chain", *coordinator.trust(), "-o", d / "chain.pem", cwd=d)
    veil("certificate", "root", *coordinator.trust(), "-o", d / "r.pem", cwd=d)
    assert (d / "chain.pem").read_bytes().endswith((d / "r.pem").read_bytes())
    assert (d / "r.pem").read_bytes() == (d / "root.pem").read_bytes()
    assert veil("status", *coordinator.trust(), cwd=d).stdout.startswith("3:")
