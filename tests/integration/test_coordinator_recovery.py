"""Recovery through real processes and the CLI: the coordinator is killed (-9), restarted on new
simulated hardware whose seal key cannot unseal the state, keeps serving its evidence in recovery
mode, and after the recovery key holders' uploads every secret reads back identical.
The last check of each scenario scans every log line for every secret."""

from __future__ import annotations

import base64
import hashlib
import json
import signal
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.integration._deploy import Services, veil
from veil.client import decrypt_recovery_secret

pytestmark = pytest.mark.integration


def _start(services: Services, d: Path, platform: str, name: str) -> str:
    ready = d / f"{name}.ready"
    proc = services.start(
        name, "coordinator", "run", "--tee", "simulated", "--simulated-platform", d / platform,
        "--client-addr", "127.0.0.1:0", "--mesh-addr", "127.0.0.1:0",
        "--data-dir", d / "state", "--ready-file", ready,
    )  # fmt: skip
    ports = services.wait_ready(proc, ready)
    return f"127.0.0.1:{ports['client_port']}"


def write_signer_policy(path: Path) -> None:
    """A policy pinning the simulated signer (stable while veil's sources are being edited)."""
    signer = hashlib.sha256(b"veil simulated enclave signer v1").hexdigest()
    policy = {"TEE": "simulated", "SignerID": signer, "ProductID": 1, "SecurityVersion": 1}
    path.write_text(json.dumps(policy))


def _write_keys(d: Path, count: int) -> dict[str, str]:
    pems = {}
    for i in range(count):
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        (d / f"k{i}.pem").write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        pems[f"k{i}"] = (
            key.public_key()
            .public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            .decode()
        )
    return pems


def _forms(secret: bytes) -> list[str]:
    """Every text form a secret could take in a log line."""
    forms = [secret.hex(), secret.hex().upper(), base64.b64encode(secret).decode()]
    forms.append(base64.urlsafe_b64encode(secret).decode().rstrip("="))
    if len(secret) >= 16:
        forms.append(secret.decode("latin-1"))
    return [f for f in forms if len(f) >= 16]


def assert_no_secret_in_logs(logs: str, secrets: dict[str, bytes]) -> None:
    """No secret appears in the logs as raw bytes, hex, base64 or (for keys) PEM body lines."""
    for name, secret in secrets.items():
        for form in _forms(secret):
            assert form not in logs, f"{name} appears in the logs"
        if secret.startswith(b"-----BEGIN"):
            for line in secret.decode().splitlines()[1:-1]:
                if len(line) >= 32:
                    assert line not in logs, f"a line of {name} appears in the logs"


@pytest.mark.parametrize(
    ("holders", "threshold", "uploaders"),
    [(1, 0, ["k0"]), (3, 0, ["k0", "k1", "k2"]), (3, 2, ["k2", "k0"])],
    ids=["single-key", "all-of-three", "two-of-three"],
)
def test_recovery_after_kill_and_new_hardware(
    tmp_path: Path, holders: int, threshold: int, uploaders: list[str]
) -> None:
    """kill -9, new platform: status 1 with evidence served; uploads restore every secret."""
    d = tmp_path
    services = Services(d)
    try:
        for platform in ("platform-a", "platform-b"):
            veil("attest", "simulated-platform", "init", d / platform, cwd=d)
        client = _start(services, d, "platform-a", "coordinator-a")
        write_signer_policy(d / "policy.json")
        veil(
            "verify", "--coordinator", client, "--policy", d / "policy.json",
            "--simulated-root", d / "platform-a" / "root.pem", "--save-root", d / "root.pem", cwd=d,
        )  # fmt: skip
        veil("user", "new", "owner", "--cert-out", d / "owner.crt", "--key-out", d / "owner.key",
             cwd=d)  # fmt: skip
        owner = ["--cert", d / "owner.crt", "--key", d / "owner.key"]
        manifest = {
            "Packages": {"p": {"TEE": "simulated", "UniqueID": "ab" * 32}},
            "Marbles": {"m": {"Package": "p"}},
            "Secrets": {
                "model_key": {"Type": "symmetric-key", "Size": 256, "UserDefined": True},
                "shared": {"Type": "symmetric-key", "Size": 256, "Shared": True},
                "tls": {"Type": "cert-ecdsa", "Size": 256, "Shared": True},
            },
            "Users": {"owner": {"Certificate": (d / "owner.crt").read_text(), "Roles": ["o"]}},
            "Roles": {
                "o": {"ResourceType": "Secrets", "ResourceNames": ["model_key", "shared", "tls"],
                      "Actions": ["ReadSecret"]},
                "w": {"ResourceType": "Secrets", "ResourceNames": ["model_key"],
                      "Actions": ["WriteSecret"]},
            },
            "RecoveryKeys": _write_keys(d, holders),
        }  # fmt: skip
        manifest["Users"]["owner"]["Roles"] = ["o", "w"]  # type: ignore[index]
        if threshold:
            manifest["Config"] = {"RecoveryThreshold": threshold}
        (d / "manifest.json").write_text(json.dumps(manifest))
        trust = ["--coordinator", client, "--coordinator-cert", d / "root.pem"]
        veil("manifest", "set", d / "manifest.json", *trust, "-r", d / "secrets.json", cwd=d)
        veil("model", "keygen", "-o", d / "model.key", cwd=d)
        veil("secret", "set", "model_key", "--key-file", d / "model.key", *trust, *owner, cwd=d)
        veil("secret", "get", "model_key", "shared", "tls", *trust, *owner, "-o", d / "before.json",
             cwd=d)  # fmt: skip
        before = json.loads((d / "before.json").read_text())
        assert base64.b64decode(before["model_key"]["Key"]) == (d / "model.key").read_bytes()

        services.procs[0][0].send_signal(signal.SIGKILL)
        services.procs[0][0].wait()
        client = _start(services, d, "platform-b", "coordinator-b")
        status = veil("status", "--coordinator", client, "--insecure", cwd=d)
        assert status.stdout.startswith("1:")
        assert "--insecure" in status.stderr
        assert "NOT verified" in status.stderr
        # Evidence stays available in recovery mode (MarbleRun #129): verify it.
        attest = ["--policy", d / "policy.json", "--simulated-root", d / "platform-b" / "root.pem"]
        veil("verify", "--coordinator", client, *attest, "--save-root", d / "tmp-root.pem", cwd=d)
        proc = veil("secret", "get", "model_key", "--coordinator", client, *attest, *owner, cwd=d,
                    check=False)  # fmt: skip
        assert proc.returncode != 0
        for index, name in enumerate(uploaders):
            out = veil(
                "recover", d / "secrets.json", "--name", name, "-k", d / f"{name}.pem",
                "--coordinator", client, *attest, cwd=d,
            ).stdout  # fmt: skip
            left = len(uploaders) - index - 1
            assert ("Recovery successful" in out) == (left == 0)
            if left:
                assert f"Remaining secrets: {left}" in out

        trust = ["--coordinator", client, "--coordinator-cert", d / "root.pem"]  # original root
        assert veil("status", *trust, cwd=d).stdout.startswith("3:")
        veil("secret", "get", "model_key", "shared", "tls", *trust, *owner, "-o", d / "after.json",
             cwd=d)  # fmt: skip
        assert json.loads((d / "after.json").read_text()) == before

        secrets = {
            "model_key": (d / "model.key").read_bytes(),
            "shared": base64.b64decode(before["shared"]["Key"]),
            "tls private key": base64.b64decode(before["tls"]["Private"]),
        }
        for name in manifest["RecoveryKeys"]:  # type: ignore[union-attr]
            key_pem = (d / f"{name}.pem").read_bytes()
            secrets[f"{name} private key"] = key_pem
            key = serialization.load_pem_private_key(key_pem, None)
            encrypted = base64.b64decode(json.loads((d / "secrets.json").read_text())[name])
            secrets[f"{name} recovery secret"] = decrypt_recovery_secret(encrypted, key)  # type: ignore[arg-type]
        assert_no_secret_in_logs(services.logs(), secrets)
    finally:
        services.stop()
