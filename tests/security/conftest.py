"""One hostile-but-realistic deployment per session: a coordinator and an inference marble.

The coordinator runs through the real CLI with a manifest that gives every attack a target
(several packages, per-marble and plain secrets, users with narrow roles, a marble type with
``MaxActivations``). The inference server runs as a marble (``veil serve``) with an encrypted
model whose key the model owner uploads, exactly as in the walkthrough.
"""

from __future__ import annotations

import datetime as dt
import ssl
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.security._harness import (
    SERVE_ID,
    VEIL,
    Coordinator,
    User,
    b64,
    new_user,
    stop_process,
    wait_ready,
)
from tests.unit.serving._support import half_plus_two_onnx
from veil.attestation import SimulatedPlatform, measure
from veil.attestation.backends.simulated_platform import DEFAULT_SIGNER_ID
from veil.modelcrypto import encrypt_bytes, generate_key, model_associated_data

MODEL = "hp2"
SHORT_LIVED_SECONDS = 6
LIMITED_MAX = 3


def attack_manifest(users: dict[str, User]) -> dict[str, Any]:
    """The deployment's manifest: each package, secret and role exists for some attack."""

    def cert(name: str) -> str:
        return users[name].cert_pem.decode()

    return {
        "Packages": {
            "inference": {"TEE": "simulated", "UniqueID": SERVE_ID.hex(), "Debug": False},
            "batch": {"TEE": "simulated", "UniqueID": measure("batch").hex(), "Debug": False},
            "signed": {
                "TEE": "simulated",
                "SignerID": DEFAULT_SIGNER_ID.hex(),
                "ProductID": 7,
                "SecurityVersion": 3,
                "Debug": False,
            },
            "hardware": {"TEE": "sgx", "UniqueID": SERVE_ID.hex(), "Debug": False},
        },
        "Marbles": {
            "server": {
                "Package": "inference",
                "Parameters": {"Env": {"VEIL_MODEL_KEY": "{{ hex .Secrets.model_key }}"}},
            },
            "batch": {"Package": "batch", "Parameters": {"Env": {"MODE": "batch"}}},
            "signed": {
                "Package": "signed",
                "Parameters": {
                    "Env": {
                        "NOTE": "{{ string .Secrets.note }}",
                        "UNIQUE": "{{ hex .Secrets.per_marble }}",
                    }
                },
            },
            "limited": {
                "Package": "inference",
                "MaxActivations": LIMITED_MAX,
                "Parameters": {"Env": {"MODE": "limited"}},
            },
            "hw": {"Package": "hardware", "Parameters": {"Env": {"MODE": "hw"}}},
        },
        "Secrets": {
            "model_key": {"Type": "symmetric-key", "Size": 256, "UserDefined": True},
            "note": {"Type": "plain", "UserDefined": True},
            "per_marble": {"Type": "symmetric-key", "Size": 256, "Shared": False},
            "shared_key": {"Type": "symmetric-key", "Size": 256, "Shared": True},
        },
        "Users": {
            "owner": {"Certificate": cert("owner"), "Roles": ["key-writer"]},
            "admin": {"Certificate": cert("admin"), "Roles": ["updater"]},
            "reader": {"Certificate": cert("reader"), "Roles": ["reader"]},
            "shortlived": {"Certificate": cert("shortlived"), "Roles": ["reader"]},
        },
        "Roles": {
            "key-writer": {
                "ResourceType": "Secrets",
                "ResourceNames": ["model_key", "note"],
                "Actions": ["WriteSecret"],
            },
            "updater": {"ResourceType": "Manifest", "Actions": ["UpdateManifest"]},
            "reader": {
                "ResourceType": "Secrets",
                "ResourceNames": ["shared_key"],
                "Actions": ["ReadSecret"],
            },
        },
    }


@dataclass
class Deployment:
    """A running coordinator (manifest set, model key uploaded) and an inference marble."""

    dir: Path
    platform_dir: Path
    platform: SimulatedPlatform
    coordinator: Coordinator
    users: dict[str, User]
    manifest: dict[str, Any]
    model_key: bytes
    shortlived_expiry: dt.datetime
    server: subprocess.Popen[bytes] | None = None
    server_log: Path | None = None
    server_ready: dict[str, Any] = field(default_factory=dict)

    @property
    def rest_addr(self) -> str:
        return f"127.0.0.1:{self.server_ready['rest_port']}"

    @property
    def grpc_addr(self) -> str:
        return f"127.0.0.1:{self.server_ready['grpc_port']}"

    def rest(self, *, timeout: float = 15) -> httpx.Client:
        """HTTPS to the inference server, pinned to the coordinator root (the marble's issuer)."""
        ctx = ssl.create_default_context(cadata=self.coordinator.root_pem.decode())
        return httpx.Client(base_url=f"https://{self.rest_addr}", verify=ctx, timeout=timeout)

    def logs(self) -> str:
        text = self.coordinator.logs()
        if self.server_log is not None and self.server_log.exists():
            text += self.server_log.read_text(errors="replace")
        return text


def start_server(
    d: Path, coordinator: Coordinator, name: str = "server", *, models: Path | None = None
) -> tuple[Any, Path, Any]:
    """``veil serve`` as marble type ``server`` of ``coordinator``; returns (popen, log, ready)."""
    models = models or d / "models"
    root_file = d / "coordinator-root.pem"
    root_file.write_bytes(coordinator.root_pem)
    log, ready = d / f"{name}.log", d / f"{name}.ready"
    with log.open("wb") as fh:
        popen = subprocess.Popen(
            [
                *VEIL,
                "serve",
                "--model_name",
                MODEL,
                "--model_base_path",
                str(models / MODEL),
                "--port",
                "0",
                "--rest_api_port",
                "0",
                "--coordinator",
                coordinator.mesh_addr,
                "--marble-type",
                "server",
                "--coordinator-cert",
                str(root_file),
                "--tee",
                "simulated",
                "--simulated-platform",
                str(coordinator.platform),
                "--uuid-file",
                str(d / f"{name}.uuid"),
                "--ready-file",
                str(ready),
            ],
            cwd=d,
            stdout=fh,
            stderr=subprocess.STDOUT,
        )
    try:
        return popen, log, wait_ready(popen, ready, log, 60)
    except BaseException:
        stop_process(popen)
        raise


def wait_model(deployment: Deployment, timeout: float = 60) -> None:
    """Wait until the inference server serves the model (its key arrived and decrypted it)."""
    deadline = time.monotonic() + timeout
    with deployment.rest() as http:
        while time.monotonic() < deadline:
            resp = http.get(f"/v1/models/{MODEL}")
            if resp.status_code == 200:
                states = {s["state"] for s in resp.json()["model_version_status"]}
                if "AVAILABLE" in states:
                    return
            time.sleep(0.05)
    raise AssertionError(f"the model never became available:\n{deployment.logs()[-3000:]}")


@pytest.fixture(scope="session")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    """Coordinator + manifest + inference marble + uploaded model key, stopped at the end."""
    d = tmp_path_factory.mktemp("security")
    platform_dir = d / "platform"
    platform = SimulatedPlatform.create(platform_dir)
    now = dt.datetime.now(dt.UTC)
    expiry = now + dt.timedelta(seconds=SHORT_LIVED_SECONDS)
    users = {name: new_user(name, d / "users") for name in ("owner", "admin", "reader")}
    users["shortlived"] = new_user("shortlived", d / "users", not_after=expiry)
    users["stranger"] = new_user("stranger", d / "users")  # never in the manifest
    model_key = generate_key()
    version = d / "models" / MODEL / "1"
    version.mkdir(parents=True)
    (version / "model.onnx.veil").write_bytes(
        encrypt_bytes(
            half_plus_two_onnx(), key=model_key, associated_data=model_associated_data(MODEL)
        )
    )
    coordinator = Coordinator(d, platform_dir)
    manifest = attack_manifest(users)
    dep = Deployment(d, platform_dir, platform, coordinator, users, manifest, model_key, expiry)
    try:
        coordinator.start()
        resp = coordinator.set_manifest(manifest)
        assert resp.status_code == 200, resp.text
        dep.server, dep.server_log, dep.server_ready = start_server(d, coordinator)
        with coordinator.client(users["owner"]) as http:
            resp = http.post(
                "/api/v2/secrets", json={"secrets": {"model_key": {"Key": b64(model_key)}}}
            )
            assert resp.status_code == 200, resp.text
        wait_model(dep)
        yield dep
    finally:
        if dep.server is not None:
            stop_process(dep.server)
        coordinator.stop()


@pytest.fixture
def scratch(tmp_path: Path) -> Path:
    """A private directory for one test."""
    tmp_path.chmod(0o700)
    return tmp_path
