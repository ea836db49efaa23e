"""A complete deployment, started once per module through the real CLI."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from tests.integration._deploy import Services, veil, wait_model_state
from veil.testing import DigitsModel, train_digits_model

MODEL = "digits"


@dataclass
class Deployment:
    """Paths and addresses of a running deployment (keys not uploaded yet)."""

    dir: Path
    client: str
    mesh: str
    rest: str
    grpc_port: int
    tampered_rest: str
    model: DigitsModel
    services: Services

    @property
    def root(self) -> Path:
        return self.dir / "coordinator-root.pem"

    def owner_auth(self) -> list[str | Path]:
        return ["--cert", self.dir / "owner.crt", "--key", self.dir / "owner.key"]

    def admin_auth(self) -> list[str | Path]:
        return ["--cert", self.dir / "admin.crt", "--key", self.dir / "admin.key"]

    def wait_available(self) -> dict[str, object]:
        return wait_model_state(self.rest, self.root, MODEL)


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    """Steps 1-4 of the walkthrough, each through the CLI; processes stopped afterwards."""
    d = tmp_path_factory.mktemp("deploy")
    services = Services(d)
    try:
        veil("attest", "simulated-platform", "init", d / "platform", cwd=d)
        # Step 1: the model owner encrypts the model.
        model = train_digits_model()
        (d / "digits.onnx").write_bytes(model.onnx_bytes)
        veil("model", "keygen", "-o", d / "model.key", cwd=d)
        for name in ("good", "tampered"):
            (d / name / MODEL / "1").mkdir(parents=True)
            veil(
                "model", "encrypt", d / "digits.onnx", d / name / MODEL / "1" / "model.onnx.veil",
                "--key", d / "model.key", "--model-name", MODEL, cwd=d,
            )  # fmt: skip
        tampered = d / "tampered" / MODEL / "1" / "model.onnx.veil"
        blob = bytearray(tampered.read_bytes())
        blob[len(blob) // 2] ^= 0x01
        tampered.write_bytes(bytes(blob))
        # Step 2: the administrator starts the coordinator, verifies it and sets the manifest.
        coord = services.start(
            "coordinator", "coordinator", "run", "--tee", "simulated",
            "--simulated-platform", d / "platform", "--client-addr", "127.0.0.1:0",
            "--mesh-addr", "127.0.0.1:0", "--seal-dir", d / "state", "--ready-file", d / "c.ready",
        )  # fmt: skip
        ports = services.wait_ready(coord, d / "c.ready")
        client, mesh = f"127.0.0.1:{ports['client_port']}", f"127.0.0.1:{ports['mesh_port']}"
        policy = veil("attest", "measure", "--entry", "coordinator", "--json", cwd=d).stdout
        (d / "policy.json").write_text(policy)
        veil(
            "verify", "--coordinator", client, "--policy", d / "policy.json",
            "--simulated-root", d / "platform" / "root.pem", "--save-root", d / "coordinator-root.pem",
            cwd=d,
        )  # fmt: skip
        for user in ("owner", "admin"):
            veil(
                "user",
                "new",
                user,
                "--cert-out",
                d / f"{user}.crt",
                "--key-out",
                d / f"{user}.key",
                cwd=d,
            )
        serve_id = veil("attest", "measure", "--entry", "serve", cwd=d).stdout.strip()
        manifest = {
            "Packages": {"inference": {"TEE": "simulated", "UniqueID": serve_id, "Debug": False}},
            "Marbles": {
                "server": {
                    "Package": "inference",
                    "Parameters": {"Env": {"VEIL_MODEL_KEY": "{{ hex .Secrets.model_key }}"}},
                }
            },
            "Secrets": {"model_key": {"Type": "symmetric-key", "Size": 256, "UserDefined": True}},
            "Users": {
                "owner": {"Certificate": (d / "owner.crt").read_text(), "Roles": ["key-writer"]},
                "admin": {"Certificate": (d / "admin.crt").read_text(), "Roles": ["updater"]},
            },
            "Roles": {
                "key-writer": {
                    "ResourceType": "Secrets",
                    "ResourceNames": ["model_key"],
                    "Actions": ["WriteSecret"],
                },
                "updater": {"ResourceType": "Manifest", "Actions": ["UpdateManifest"]},
            },
        }
        (d / "manifest.json").write_text(json.dumps(manifest, indent=2))
        veil("manifest", "set", d / "manifest.json", "--coordinator", client,
             "--coordinator-cert", d / "coordinator-root.pem", cwd=d)  # fmt: skip
        # Step 3/4: the inference service starts as a marble and activates.
        rests = {}
        for name in ("good", "tampered"):
            srv = services.start(
                f"server-{name}", "serve", "--model_name", MODEL,
                "--model_base_path", d / name / MODEL, "--port", "0", "--rest_api_port", "0",
                "--coordinator", mesh, "--marble-type", "server",
                "--coordinator-cert", d / "coordinator-root.pem", "--tee", "simulated",
                "--simulated-platform", d / "platform", "--uuid-file", d / f"{name}.uuid",
                "--ready-file", d / f"{name}.ready",
            )  # fmt: skip
            rests[name] = services.wait_ready(srv, d / f"{name}.ready")
        yield Deployment(
            dir=d,
            client=client,
            mesh=mesh,
            rest=f"127.0.0.1:{rests['good']['rest_port']}",
            grpc_port=int(rests["good"]["grpc_port"]),
            tampered_rest=f"127.0.0.1:{rests['tampered']['rest_port']}",
            model=model,
            services=services,
        )
    finally:
        services.stop()


def labels_of(predictions: list[dict[str, object]]) -> np.ndarray:
    """Labels from a TF Serving row-format answer of the digits model."""
    return np.asarray([int(p["label"]) for p in predictions])  # type: ignore[call-overload]
