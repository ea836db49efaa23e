"""The seven-step walkthrough of DESIGN.md on one machine, with real processes on loopback."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from cryptography.hazmat.primitives import serialization

from veil.attestation import Policy, SimulatedPlatform, TrustAnchors, measure
from veil.cli._common import out
from veil.client import CoordinatorClient, verify_coordinator
from veil.errors import AuthorizationError, Error, NetworkError, VerificationError
from veil.modelcrypto import encrypt_bytes, generate_key, model_associated_data
from veil.pki import generate_key as generate_user_key
from veil.pki import private_key_pem, self_signed_user_certificate
from veil.testing import plaintext_accuracy, train_digits_model

MODEL = "digits"
MARBLE_TYPE = "inference-server"


@dataclass
class _Proc:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path


@dataclass
class DemoResult:
    """What the demo measured."""

    client_accuracy: float
    plaintext_accuracy: float
    refusals: list[str] = field(default_factory=list)
    coordinator: str = ""
    server: str = ""


def _say(step: str, who: str, text: str) -> None:
    out.print(f"\n[bold cyan]{step}[/] [bold]{who}[/]: {text}")


def _ok(text: str) -> None:
    out.print(f"   [green]✓[/] {text}")


def _refused(text: str) -> None:
    out.print(f"   [yellow]✗ refused as expected:[/] {text}")


class Walkthrough:
    """Runs the scenario; every process it starts is stopped by :meth:`close`."""

    def __init__(self, workdir: Path) -> None:
        self.dir = workdir
        self.procs: list[_Proc] = []
        (workdir / "logs").mkdir(parents=True, exist_ok=True)

    # -- processes -----------------------------------------------------------------------------
    def _start(self, name: str, *args: str) -> _Proc:
        log = self.dir / "logs" / f"{name}.log"
        with log.open("wb") as fh:
            popen = subprocess.Popen(
                [sys.executable, "-m", "veil", *args],
                stdout=fh,
                stderr=subprocess.STDOUT,
                cwd=self.dir,
                start_new_session=True,
            )
        proc = _Proc(name, popen, log)
        self.procs.append(proc)
        return proc

    def _wait_ready(self, proc: _Proc, ready_file: Path, timeout: float = 60) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if ready_file.exists():
                return dict(json.loads(ready_file.read_text()))
            if proc.popen.poll() is not None:
                raise Error(f"{proc.name} exited early; see {proc.log}:\n{_tail(proc.log)}")
            time.sleep(0.05)
        raise Error(f"{proc.name} did not become ready in {timeout:.0f} s; see {proc.log}")

    def close(self) -> None:
        """Stop every process this walkthrough started."""
        for proc in reversed(self.procs):
            if proc.popen.poll() is None:
                proc.popen.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.popen.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.popen.kill()
                proc.popen.wait()
        self.procs.clear()

    # -- the scenario --------------------------------------------------------------------------
    def run(self, *, keep_running: bool = False) -> DemoResult:  # noqa: PLR0915 - seven narrated steps
        """Run the seven steps; return the accuracies."""
        d = self.dir
        platform = SimulatedPlatform.create(d / "simulated-platform")
        out.print(
            "[yellow]This machine has no TEE: every party uses the explicit SIMULATED TEE "
            f"(platform in {d / 'simulated-platform'}). Policies below name TEE 'simulated'.[/]"
        )
        now = dt.datetime.now(dt.UTC)
        users = {}
        for name in ("model-owner", "admin"):
            key = generate_user_key()
            cert = self_signed_user_certificate(key, name, now=now)
            (d / f"{name}.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
            _write_private(d / f"{name}.key", private_key_pem(key))
            users[name] = ((d / f"{name}.crt").read_bytes(), (d / f"{name}.key").read_bytes())

        # 1 -------------------------------------------------------------------------------------
        _say(
            "Step 1", "model owner", "trains the digits MLP, encrypts it and uploads the ciphertext"
        )
        model = train_digits_model()
        reference = plaintext_accuracy(model)
        model_key = generate_key()
        _write_private(d / "model.key", model_key)
        version_dir = d / "models" / MODEL / "1"
        version_dir.mkdir(parents=True)
        ciphertext = encrypt_bytes(
            model.onnx_bytes, key=model_key, associated_data=model_associated_data(MODEL)
        )
        (version_dir / "model.onnx.veil").write_bytes(ciphertext)
        _ok(
            f"{len(model.onnx_bytes)} bytes of ONNX → {len(ciphertext)} bytes of AES-256-GCM "
            f"streaming ciphertext in {version_dir}; the storage only ever sees ciphertext"
        )

        # 2 -------------------------------------------------------------------------------------
        _say("Step 2", "administrator", "starts the coordinator and sets the manifest")
        coord_ready = d / "coordinator.ready"
        coord = self._start(
            "coordinator", "coordinator", "run", "--tee", "simulated",
            "--simulated-platform", str(d / "simulated-platform"),
            "--client-addr", "127.0.0.1:0", "--mesh-addr", "127.0.0.1:0",
            "--seal-dir", str(d / "coordinator-state"), "--ready-file", str(coord_ready),
        )  # fmt: skip
        ports = self._wait_ready(coord, coord_ready)
        client_addr = f"127.0.0.1:{ports['client_port']}"
        mesh_addr = f"127.0.0.1:{ports['mesh_port']}"
        anchors = TrustAnchors(simulated_root_der=platform.root_der)
        coordinator_policy = Policy(tee="simulated", unique_id=measure("coordinator"))
        (d / "coordinator-policy.json").write_text(
            json.dumps(coordinator_policy.to_dict(), indent=2)
        )
        verified = verify_coordinator(client_addr, coordinator_policy, trust_anchors=anchors)
        (d / "coordinator-root.pem").write_bytes(verified.root_pem)
        _ok(
            f"coordinator at {client_addr} attested: UniqueID {verified.claims.unique_id.hex()[:16]}…"
        )
        manifest = _manifest(users["model-owner"][0], users["admin"][0])
        manifest_bytes = json.dumps(manifest, indent=2).encode()
        (d / "manifest.json").write_bytes(manifest_bytes)
        with CoordinatorClient(client_addr, root_pem=verified.root_pem) as admin_anon:
            admin_anon.set_manifest(manifest_bytes)
            _, fingerprint = admin_anon.manifest()
        _ok(f"manifest set; fingerprint {fingerprint}")

        # 3 + 4 ---------------------------------------------------------------------------------
        _say("Step 3", "administrator", "starts the inference service as a marble (veil serve)")
        serve_ready = d / "server.ready"
        server = self._start(
            "server", "serve", "--model_name", MODEL, "--model_base_path", str(d / "models" / MODEL),
            "--port", "0", "--rest_api_port", "0", "--coordinator", mesh_addr,
            "--marble-type", MARBLE_TYPE, "--coordinator-cert", str(d / "coordinator-root.pem"),
            "--tee", "simulated", "--simulated-platform", str(d / "simulated-platform"),
            "--uuid-file", str(d / "server.uuid"), "--ready-file", str(serve_ready),
        )  # fmt: skip
        sports = self._wait_ready(server, serve_ready)
        rest_addr = f"127.0.0.1:{sports['rest_port']}"
        _say(
            "Step 4",
            "inference service",
            "activated: its evidence binds its own TLS key; the coordinator signed its CSR",
        )
        _ok(
            f"marble {sports['uuid']} serves REST on {rest_addr}, gRPC on port {sports['grpc_port']}"
        )
        refusals: list[str] = []
        patched = d / "patched_inference.py"
        patched.write_text("# a modified build: one extra line in the enclave image\n")
        bad = self._start(
            "modified-server", "serve", "--model_name", MODEL,
            "--model_base_path", str(d / "models" / MODEL), "--port", "0", "--rest_api_port", "0",
            "--coordinator", mesh_addr, "--marble-type", MARBLE_TYPE,
            "--coordinator-cert", str(d / "coordinator-root.pem"), "--tee", "simulated",
            "--simulated-platform", str(d / "simulated-platform"),
            "--uuid-file", str(d / "modified.uuid"), "--measure-extra-file", str(patched),
        )  # fmt: skip
        bad.popen.wait(timeout=60)
        reason = _last_error(bad.log)
        refusals.append(f"modified build refused at activation: {reason}")
        _refused(f"a modified build of the server: {reason}")
        tls = _pinned_client(d / "coordinator-root.pem")
        with httpx.Client(verify=tls, timeout=30) as http:
            early = http.post(
                f"https://{rest_addr}/v1/models/{MODEL}:predict",
                json={"instances": model.x_test[:1].tolist()},
            )
        refusals.append(f"predict before the key: HTTP {early.status_code} {early.text.strip()}")
        _refused(
            f"a client predicting before the key exists: HTTP {early.status_code} {early.text.strip()}"
        )

        # 5 -------------------------------------------------------------------------------------
        _say("Step 5", "model owner", "verifies coordinator + manifest, then uploads the model key")
        owner_view = verify_coordinator(client_addr, coordinator_policy, trust_anchors=anchors)
        with CoordinatorClient(client_addr, root_pem=owner_view.root_pem) as anon:
            anon.verify_manifest(manifest_bytes)
        _ok("the deployed manifest is exactly the one the owner reviewed")
        with CoordinatorClient(
            client_addr, root_pem=owner_view.root_pem, client_cert=users["admin"]
        ) as admin:
            try:
                admin.set_secrets({"model_key": os.urandom(32)})
                raise Error("the administrator could write the model key: the role check failed")
            except AuthorizationError as exc:
                refusals.append(f"admin without WriteSecret: {exc.message}")
                _refused(f"the administrator uploading a model key: {exc.message}")
        with CoordinatorClient(
            client_addr, root_pem=owner_view.root_pem, client_cert=users["model-owner"]
        ) as owner:
            owner.set_secrets({"model_key": model_key})
        _ok("model key uploaded by the model owner (role model-key-writer: WriteSecret only)")

        # 6 -------------------------------------------------------------------------------------
        _say("Step 6", "inference service", "receives the key and decrypts the model in memory")
        state = _wait_available(rest_addr, tls)
        _ok(f"model {MODEL} version 1 is {state}; no plaintext was written to disk")

        # 7 -------------------------------------------------------------------------------------
        _say(
            "Step 7", "client", "verifies the deployment, then predicts over TLS ending in the TEE"
        )
        wrong = Policy(tee="simulated", unique_id=measure("serve"))
        try:
            verify_coordinator(client_addr, wrong, trust_anchors=anchors)
            raise Error("a client with a wrong policy accepted the coordinator")
        except VerificationError as exc:
            refusals.append(f"client with a wrong policy: {exc.message}")
            _refused(f"a client whose policy expects another coordinator: {exc.message}")
        client_view = verify_coordinator(client_addr, coordinator_policy, trust_anchors=anchors)
        with CoordinatorClient(client_addr, root_pem=client_view.root_pem) as anon:
            anon.verify_manifest(manifest_bytes)
        _ok("coordinator and manifest verified; the server certificate must chain to this root")
        predictions = _predict_all(
            rest_addr, _pinned_client_pem(client_view.root_pem), model.x_test
        )
        accuracy = float(np.mean(predictions == model.y_test))
        correct = int(np.sum(predictions == model.y_test))
        out.print(
            f"\n[bold]accuracy: client {accuracy:.4f} ({correct}/{len(model.y_test)}) "
            f"{'==' if accuracy == reference else '!='} plaintext onnxruntime {reference:.4f}[/]"
        )
        result = DemoResult(accuracy, reference, refusals, client_addr, rest_addr)
        if keep_running:
            _print_try_it(d, client_addr, rest_addr)
        return result


def _write_private(path: Path, data: bytes) -> None:
    """Write key material readable by its owner only (mode 0600 from the start)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)


def _manifest(owner_pem: bytes, admin_pem: bytes) -> dict[str, Any]:
    return {
        "Packages": {
            "inference": {"TEE": "simulated", "UniqueID": measure("serve").hex(), "Debug": False}
        },
        "Marbles": {
            MARBLE_TYPE: {
                "Package": "inference",
                "Parameters": {"Env": {"VEIL_MODEL_KEY": "{{ hex .Secrets.model_key }}"}},
            }
        },
        "Secrets": {"model_key": {"Type": "symmetric-key", "Size": 256, "UserDefined": True}},
        "Users": {
            "model-owner": {"Certificate": owner_pem.decode(), "Roles": ["model-key-writer"]},
            "admin": {"Certificate": admin_pem.decode(), "Roles": ["manifest-updater"]},
        },
        "Roles": {
            "model-key-writer": {
                "ResourceType": "Secrets",
                "ResourceNames": ["model_key"],
                "Actions": ["WriteSecret"],
            },
            "manifest-updater": {"ResourceType": "Manifest", "Actions": ["UpdateManifest"]},
        },
    }


def _pinned_client(root_file: Path) -> Any:
    return _pinned_client_pem(root_file.read_bytes())


def _pinned_client_pem(root_pem: bytes) -> Any:
    import ssl

    return ssl.create_default_context(cadata=root_pem.decode())


def _wait_available(rest_addr: str, tls: Any, timeout: float = 60) -> str:
    deadline = time.monotonic() + timeout
    last = ""
    with httpx.Client(verify=tls, timeout=10) as http:
        while time.monotonic() < deadline:
            resp = http.get(f"https://{rest_addr}/v1/models/{MODEL}")
            last = resp.text
            if resp.status_code == 200:
                states = [s["state"] for s in resp.json()["model_version_status"]]
                if "AVAILABLE" in states:
                    return "AVAILABLE"
            time.sleep(0.1)
    raise NetworkError(f"the model did not become available in {timeout:.0f} s: {last}")


def _predict_all(
    rest_addr: str, tls: Any, x: np.ndarray[Any, Any], batch: int = 50
) -> np.ndarray[Any, Any]:
    labels: list[int] = []
    with httpx.Client(verify=tls, timeout=60) as http:
        for start in range(0, len(x), batch):
            resp = http.post(
                f"https://{rest_addr}/v1/models/{MODEL}:predict",
                json={"instances": x[start : start + batch].tolist()},
            )
            if resp.status_code != 200:
                raise Error(f"predict failed: HTTP {resp.status_code} {resp.text}")
            labels += [int(p["label"]) for p in resp.json()["predictions"]]
    return np.asarray(labels)


def _tail(path: Path, lines: int = 8) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def _last_error(path: Path) -> str:
    for line in reversed(path.read_text(errors="replace").splitlines()):
        if "error" in line.lower():
            return line.split("error:", 1)[-1].strip()
    return _tail(path, 1)


def _print_try_it(d: Path, client_addr: str, rest_addr: str) -> None:
    out.print("\n[bold]The services keep running. Try them by hand (Ctrl-C stops them):[/]")
    body = json.dumps({"instances": [[0.0] * 64]})
    out.print(
        f"  curl --cacert {d}/coordinator-root.pem https://{client_addr}/api/v2/status\n"
        f"  curl --cacert {d}/coordinator-root.pem -H 'content-type: application/json' "
        f"-d '{body}' https://{rest_addr}/v1/models/{MODEL}:predict\n"
        f"  veil verify --coordinator {client_addr} --policy {d}/coordinator-policy.json "
        f"--simulated-root {d}/simulated-platform/root.pem --manifest {d}/manifest.json\n"
        '  python -c "import httpx, ssl; ctx = ssl.create_default_context(cafile='
        f"'{d}/coordinator-root.pem'); print(httpx.post('https://{rest_addr}/v1/models/{MODEL}:predict', "
        f"json={{'instances': [[0.0] * 64]}}, verify=ctx).json())\""
    )


@contextlib.contextmanager
def walkthrough(workdir: Path) -> Iterator[Walkthrough]:
    """A walkthrough whose processes are always stopped."""
    w = Walkthrough(workdir)
    try:
        yield w
    finally:
        w.close()
