"""Deployments under test: a coordinator, veil marbles, veil plaintext, MLServer, FastAPI.

Every server is pinned to the server core and runs one process with one model; the load
generators run on the other core (see ``_procs``).
"""

from __future__ import annotations

import datetime as dt
import json
import ssl
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
from _env import peer_python
from _models import BenchModel
from _procs import Proc, Procs, free_port
from cryptography.hazmat.primitives import serialization

from veil.attestation import Policy, SimulatedPlatform, TrustAnchors, measure
from veil.client import CoordinatorClient, verify_coordinator
from veil.modelcrypto import encrypt_bytes, model_associated_data
from veil.pki import generate_key as generate_user_key
from veil.pki import private_key_pem, self_signed_user_certificate

HERE = Path(__file__).resolve().parent
VEIL = [sys.executable, "-m", "veil"]
MARBLE_TYPE = "inference-server"
BENCH_MARBLE = "bench-marble"


@dataclass
class Endpoint:
    """One server under test: REST base URL, gRPC target, TLS root (None = plaintext)."""

    name: str
    proc: Proc
    rest: str  # base URL, e.g. https://127.0.0.1:1234
    grpc: str | None
    root_pem: Path | None = None


@dataclass
class Coordinator:
    proc: Proc
    client_addr: str
    mesh_addr: str
    root_pem: bytes
    root_file: Path
    platform_dir: Path
    seal_dir: Path
    owner: tuple[bytes, bytes]

    def client(self, *, user: bool = True) -> CoordinatorClient:
        return CoordinatorClient(
            self.client_addr, root_pem=self.root_pem, client_cert=self.owner if user else None
        )


def make_platform(directory: Path) -> SimulatedPlatform:
    if (directory / "root.pem").exists():
        return SimulatedPlatform(directory)
    return SimulatedPlatform.create(directory)


def make_user(directory: Path, name: str) -> tuple[bytes, bytes]:
    directory.mkdir(parents=True, exist_ok=True)
    key = generate_user_key()
    cert = self_signed_user_certificate(key, name, now=dt.datetime.now(dt.UTC))
    return cert.public_bytes(serialization.Encoding.PEM), private_key_pem(key)


def manifest(owner_pem: bytes) -> bytes:
    secret = {"Type": "symmetric-key", "Size": 256, "UserDefined": True}
    names = ["model_key", "bench_secret"]
    doc = {
        "Packages": {
            "inference": {"TEE": "simulated", "UniqueID": measure("serve").hex(), "Debug": False}
        },
        "Marbles": {
            MARBLE_TYPE: {
                "Package": "inference",
                "Parameters": {"Env": {"VEIL_MODEL_KEY": "{{ hex .Secrets.model_key }}"}},
            },
            BENCH_MARBLE: {"Package": "inference"},
        },
        "Secrets": {"model_key": secret, "bench_secret": secret},
        "Users": {"bench-owner": {"Certificate": owner_pem.decode(), "Roles": ["w", "r"]}},
        "Roles": {
            "w": {"ResourceType": "Secrets", "ResourceNames": names, "Actions": ["WriteSecret"]},
            "r": {"ResourceType": "Secrets", "ResourceNames": names, "Actions": ["ReadSecret"]},
        },
    }
    return json.dumps(doc, indent=2).encode()


def start_coordinator(
    procs: Procs, work: Path, name: str, *, seal_dir: Path | None = None, core: str = "0"
) -> tuple[Proc, str, str]:
    """Start ``veil coordinator run`` (simulated TEE); return the process and its addresses."""
    platform_dir = work / "simulated-platform"
    make_platform(platform_dir)
    ready = work / f"{name}.ready"
    ready.unlink(missing_ok=True)
    seal = seal_dir or (work / f"{name}-state")
    proc = procs.start(
        name,
        [*VEIL, "coordinator", "run", "--tee", "simulated",
         "--simulated-platform", str(platform_dir), "--client-addr", "127.0.0.1:0",
         "--mesh-addr", "127.0.0.1:0", "--seal-dir", str(seal), "--ready-file", str(ready)],
        core=core,
    )  # fmt: skip
    ports = procs.wait_file(proc, ready)
    return proc, f"127.0.0.1:{ports['client_port']}", f"127.0.0.1:{ports['mesh_port']}"


def coordinator(procs: Procs, work: Path, name: str = "coordinator") -> Coordinator:
    """A coordinator with the bench manifest set (a fresh seal directory each time)."""
    import shutil

    seal = work / f"{name}-state"
    shutil.rmtree(seal, ignore_errors=True)
    proc, client_addr, mesh_addr = start_coordinator(procs, work, name, seal_dir=seal)
    platform = make_platform(work / "simulated-platform")
    anchors = TrustAnchors(simulated_root_der=platform.root_der)
    policy = Policy(tee="simulated", unique_id=measure("coordinator"))
    verified = verify_coordinator(client_addr, policy, trust_anchors=anchors)
    root_file = work / f"{name}-root.pem"
    root_file.write_bytes(verified.root_pem)
    owner = make_user(work / "users", "bench-owner")
    with CoordinatorClient(client_addr, root_pem=verified.root_pem) as anon:
        anon.set_manifest(manifest(owner[0]))
    return Coordinator(
        proc, client_addr, mesh_addr, verified.root_pem, root_file, work / "simulated-platform",
        seal, owner,
    )  # fmt: skip


def encrypted_copy(model: BenchModel, work: Path, key: bytes) -> Path:
    """bench/work/models-enc/<name>/1/model.onnx.veil, encrypted with ``key``; the base path."""
    base = work / "models-enc" / model.name
    target = base / "1" / "model.onnx.veil"
    stamp = base / "key.sha"
    import hashlib

    digest = hashlib.sha256(key + model.path.read_bytes()[:4096]).hexdigest()
    if not target.exists() or not stamp.exists() or stamp.read_text() != digest:
        target.parent.mkdir(parents=True, exist_ok=True)
        ct = encrypt_bytes(
            model.path.read_bytes(), key=key, associated_data=model_associated_data(model.name)
        )
        target.write_bytes(ct)
        stamp.write_text(digest)
    return base


def start_marble(procs: Procs, work: Path, coord: Coordinator, name: str, base: Path) -> Endpoint:
    """``veil serve`` as a marble: activates, then serves TLS with the marble certificate."""
    ready = work / f"marble-{name}.ready"
    ready.unlink(missing_ok=True)
    uuid_file = work / f"marble-{name}.uuid"
    uuid_file.unlink(missing_ok=True)
    proc = procs.start(
        f"veil-tls-{name}",
        [*VEIL, "serve", "--model_name", name, "--model_base_path", str(base), "--port", "0",
         "--rest_api_port", "0", "--coordinator", coord.mesh_addr, "--marble-type", MARBLE_TYPE,
         "--coordinator-cert", str(coord.root_file), "--tee", "simulated",
         "--simulated-platform", str(coord.platform_dir), "--uuid-file", str(uuid_file),
         "--ready-file", str(ready)],
    )  # fmt: skip
    ports = procs.wait_file(proc, ready)
    return Endpoint(
        "veil-tls",
        proc,
        f"https://127.0.0.1:{ports['rest_port']}",
        f"127.0.0.1:{ports['grpc_port']}",
        coord.root_file,
    )


def tls_context(root_pem: Path) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(root_pem))
    ctx.check_hostname = False
    return ctx


def key_to_first_prediction(
    coord: Coordinator, key: bytes, marbles: dict[str, tuple[Endpoint, bytes]]
) -> dict[str, float]:
    """Upload the model key to the coordinator; seconds until each marble's first prediction.

    Includes the marble noticing the key (it polls the coordinator with backoff).
    """
    results: dict[str, float] = {}
    start = threading.Event()
    t0 = [0.0]

    def poll(name: str, endpoint: Endpoint, body: bytes) -> None:
        assert endpoint.root_pem is not None
        with httpx.Client(verify=tls_context(endpoint.root_pem), timeout=60) as http:
            start.wait()
            while time.perf_counter() - t0[0] < 300:
                resp = http.post(f"{endpoint.rest}/v2/models/{name}/infer", content=body)
                if resp.status_code == 200:
                    results[name] = time.perf_counter() - t0[0]
                    return
                time.sleep(0.005)

    threads = [
        threading.Thread(target=poll, args=(name, ep, body)) for name, (ep, body) in marbles.items()
    ]
    for t in threads:
        t.start()
    with coord.client() as owner:
        t0[0] = time.perf_counter()
        start.set()
        owner.set_secrets({"model_key": key})
    for t in threads:
        t.join()
    return results


def start_veil_plain(procs: Procs, work: Path, model: BenchModel) -> Endpoint:
    ready = work / f"plain-{model.name}.ready"
    ready.unlink(missing_ok=True)
    proc = procs.start(
        f"veil-plain-{model.name}",
        [*VEIL, "serve", "--model_name", model.name,
         "--model_base_path", str(model.path.parent.parent), "--port", "0",
         "--rest_api_port", "0", "--ready-file", str(ready)],
    )  # fmt: skip
    ports = procs.wait_file(proc, ready)
    return Endpoint(
        "veil-plain",
        proc,
        f"http://127.0.0.1:{ports['rest_port']}",
        f"127.0.0.1:{ports['grpc_port']}",
    )


def start_mlserver(procs: Procs, work: Path, model: BenchModel) -> Endpoint:
    """MLServer 1.7 at its best single-process setting: inference in the main process
    (parallel_workers 0), no adaptive batching, no metrics, no access log."""
    root = work / "mlserver" / model.name
    (root / model.name).mkdir(parents=True, exist_ok=True)
    http_port, grpc_port = free_port(), free_port()
    (root / "settings.json").write_text(
        json.dumps(
            {
                "debug": False,
                "host": "127.0.0.1",
                "http_port": http_port,
                "grpc_port": grpc_port,
                "metrics_endpoint": None,
                "parallel_workers": 0,
                "grpc_max_message_length": 1 << 30,
            }
        )
    )
    (root / model.name / "model-settings.json").write_text(
        json.dumps(
            {
                "name": model.name,
                "implementation": "mlserver_onnx.OnnxRuntime",
                "parameters": {"uri": str(model.path)},
            }
        )
    )
    mlserver = peer_python("mlserver").parent / "mlserver"
    env = {"PYTHONPATH": str(HERE / "peers"), "MLSERVER_PARALLEL_WORKERS": "0"}
    proc = procs.start(f"mlserver-{model.name}", [str(mlserver), "start", str(root)], env=env)
    base = f"http://127.0.0.1:{http_port}"
    procs.wait_http(proc, f"{base}/v2/models/{model.name}/ready")
    return Endpoint("mlserver", proc, base, f"127.0.0.1:{grpc_port}")


def start_fastapi(procs: Procs, work: Path, model: BenchModel) -> Endpoint:
    port = free_port()
    proc = procs.start(
        f"fastapi-{model.name}",
        [str(peer_python("fastapi")), str(HERE / "peers" / "fastapi_service.py"),
         "--port", str(port), f"{model.name}={model.path}"],
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    procs.wait_http(proc, f"{base}/v2/health/ready")
    return Endpoint("fastapi", proc, base, None)


def mlserver_grpc_request(model: BenchModel, work: Path) -> Path:
    import subprocess

    import numpy as np

    npy = work / "bodies" / f"{model.name}-x.npy"
    out = work / "bodies" / f"{model.name}-mlserver.bin"
    npy.parent.mkdir(parents=True, exist_ok=True)
    np.save(npy, model.input)
    subprocess.run(
        [str(peer_python("mlserver")), str(HERE / "peers" / "mlserver_request.py"), model.name,
         model.input_name, str(npy), str(out)],
        check=True,
    )  # fmt: skip
    return out
