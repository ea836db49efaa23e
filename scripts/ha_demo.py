"""`make ha-demo`: three etcd members, three coordinator replicas, two inference replicas and a
client on loopback; kill -9 one coordinator and one etcd member mid-traffic; nothing fails.

Needs Debian's etcd-server (``bash scripts/install-etcd.sh``). Run: ``python scripts/ha_demo.py``
(``--workdir DIR`` keeps the logs). Exit status 0 only when every client operation succeeded and
every acknowledged write read back.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import httpx
from cryptography.hazmat.primitives import serialization

from veil.attestation import Policy, SimulatedPlatform, TrustAnchors, measure
from veil.client import CoordinatorClient, verify_coordinator
from veil.errors import AuthorizationError, Error, NetworkError
from veil.modelcrypto import encrypt_bytes, generate_key, model_associated_data
from veil.pki import generate_key as generate_user_key
from veil.pki import private_key_pem, self_signed_user_certificate
from veil.testing import train_digits_model

T = TypeVar("T")
VEIL = [sys.executable, "-m", "veil"]
MODEL = "digits"
BUDGET = 30.0  # seconds one client operation may take, failing over between replicas


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Processes:
    """Every process the demo starts, logs in the work directory."""

    def __init__(self, workdir: Path) -> None:
        self.dir = workdir
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str, argv: list[str]) -> subprocess.Popen[bytes]:
        with (self.dir / f"{name}.log").open("wb") as log:
            proc = subprocess.Popen(argv, cwd=self.dir, stdout=log, stderr=subprocess.STDOUT)
        self.procs[name] = proc
        return proc

    def ready(self, name: str, timeout: float = 60) -> dict[str, Any]:
        path = self.dir / f"{name}.ready"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if path.exists():
                doc: dict[str, Any] = json.loads(path.read_text())
                return doc
            if self.procs[name].poll() is not None:
                raise SystemExit(f"{name} exited early; see {self.dir / (name + '.log')}")
            time.sleep(0.05)
        raise SystemExit(f"{name} was not ready after {timeout:.0f} s")

    def kill(self, name: str) -> None:
        self.procs[name].send_signal(signal.SIGKILL)
        self.procs[name].wait()

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def start_etcd(procs: Processes, binary: str, size: int = 3) -> list[tuple[str, str]]:
    """(name, client URL) of each member of a new cluster; waits until all are healthy."""
    members = [(f"etcd{i}", f"http://127.0.0.1:{_port()}", f"http://127.0.0.1:{_port()}")
               for i in range(size)]  # fmt: skip
    initial = ",".join(f"{n}={peer}" for n, _, peer in members)
    token = uuid.uuid4().hex
    for name, client, peer in members:
        procs.start(name, [
            binary, f"--name={name}", f"--data-dir={procs.dir / name}",
            f"--listen-client-urls={client}", f"--advertise-client-urls={client}",
            f"--listen-peer-urls={peer}", f"--initial-advertise-peer-urls={peer}",
            f"--initial-cluster={initial}", f"--initial-cluster-token={token}",
            "--initial-cluster-state=new", "--heartbeat-interval=50", "--election-timeout=500",
        ])  # fmt: skip
    for name, client, _ in members:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(client + "/health", timeout=1).json().get("health") == "true":
                    break
            except (httpx.HTTPError, ValueError):
                pass
            if time.monotonic() > deadline:
                raise SystemExit(f"etcd member {name} did not become healthy")
            time.sleep(0.1)
    return [(name, client) for name, client, _ in members]


def etcd_leader(members: list[tuple[str, str]]) -> str:
    """The name of the member that leads the cluster now."""
    status = httpx.post(members[0][1] + "/v3/maintenance/status", json={}).json()
    for name, client in members:
        own = httpx.post(client + "/v3/maintenance/status", json={}).json()
        if own["header"]["member_id"] == status["leader"]:
            return name
    raise SystemExit("the etcd cluster has no leader")


class Tally:
    """Counts of operations, and the failures, by kind (thread-safe)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.ok: dict[str, int] = {}
        self.failed: list[str] = []

    def add(self, kind: str) -> None:
        with self.lock:
            self.ok[kind] = self.ok.get(kind, 0) + 1

    def fail(self, kind: str, exc: BaseException) -> None:
        with self.lock:
            self.failed.append(f"{kind}: {exc}")


def _connection_lost(exc: AuthorizationError) -> bool:
    """The client reports a connection dropped after the handshake (a replica killed
    mid-request) as an unauthenticated AuthorizationError; a real refusal is not one."""
    return exc.authenticated is False and "closed the connection" in exc.message


def with_failover(
    addresses: list[str], root_pem: bytes, user: tuple[bytes, bytes],
    op: Callable[[CoordinatorClient], T], start: int,
) -> T:  # fmt: skip
    """Run ``op`` against one coordinator replica after another until it succeeds."""
    give_up = time.monotonic() + BUDGET
    i = start
    while True:
        address = addresses[i % len(addresses)]
        try:
            with CoordinatorClient(address, root_pem=root_pem, client_cert=user) as client:
                return op(client)
        except (NetworkError, AuthorizationError) as exc:
            if isinstance(exc, AuthorizationError) and not _connection_lost(exc):
                raise
        except Error as exc:
            if not getattr(exc, "retryable", False):
                raise
        if time.monotonic() > give_up:
            raise Error(f"no coordinator replica answered within {BUDGET:.0f} s")
        i += 1
        time.sleep(0.05)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, help="keep the processes' logs here")
    parser.add_argument("--seconds", type=float, default=6.0, help="traffic duration")
    args = parser.parse_args()
    binary = shutil.which("etcd")
    if binary is None:
        print("etcd is not installed: run  bash scripts/install-etcd.sh", file=sys.stderr)
        return 2
    d = args.workdir or Path(tempfile.mkdtemp(prefix="veil-ha-demo-"))
    d.mkdir(parents=True, exist_ok=True)
    procs = Processes(d)
    try:
        return _scenario(d, procs, binary, args.seconds)
    finally:
        procs.stop()
        print(f"logs: {d}")


def _scenario(d: Path, procs: Processes, binary: str, seconds: float) -> int:  # noqa: PLR0915
    print("SIMULATED TEE: every party uses the explicit simulated platform (no hardware).")
    platform = SimulatedPlatform.create(d / "platform")
    members = start_etcd(procs, binary)
    endpoints = ",".join(url for _, url in members)
    print(f"etcd: 3 members up ({endpoints})")

    coordinators = ["coordinator0", "coordinator1", "coordinator2"]
    for name in coordinators:
        procs.start(name, [
            *VEIL, "coordinator", "run", "--tee", "simulated",
            "--simulated-platform", str(d / "platform"), "--store", "etcd",
            "--etcd-endpoints", endpoints, "--data-dir", str(d / f"{name}-data"),
            "--client-addr", "127.0.0.1:0", "--mesh-addr", "127.0.0.1:0",
            "--key-addr", "127.0.0.1:0", "--ready-file", str(d / f"{name}.ready"),
        ])  # fmt: skip
    ports = {name: procs.ready(name) for name in coordinators}
    clients = [f"127.0.0.1:{ports[n]['client_port']}" for n in coordinators]
    meshes = [f"127.0.0.1:{ports[n]['mesh_port']}" for n in coordinators]
    anchors = TrustAnchors(simulated_root_der=platform.root_der)
    policy = Policy(tee="simulated", unique_id=measure("coordinator"))
    roots = {verify_coordinator(a, policy, trust_anchors=anchors).root_pem for a in clients}
    if len(roots) != 1:
        raise SystemExit("the replicas do not share one coordinator root")
    root_pem = roots.pop()
    (d / "coordinator-root.pem").write_bytes(root_pem)
    print(f"coordinators: 3 replicas attested, one root ({', '.join(clients)})")

    key = generate_user_key()
    cert = self_signed_user_certificate(key, "owner", now=dt.datetime.now(dt.UTC))
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    user = (cert_pem, private_key_pem(key))
    names = ["model_key", "notes0", "notes1"]
    manifest = {
        "Packages": {"inference": {"TEE": "simulated", "UniqueID": measure("serve").hex()}},
        "Marbles": {"inference-server": {
            "Package": "inference",
            "Parameters": {"Env": {"VEIL_MODEL_KEY": "{{ hex .Secrets.model_key }}"}}}},
        "Secrets": {
            "model_key": {"Type": "symmetric-key", "Size": 256, "UserDefined": True},
            "notes0": {"Type": "symmetric-key", "Size": 128, "UserDefined": True},
            "notes1": {"Type": "symmetric-key", "Size": 128, "UserDefined": True},
        },
        "Users": {"owner": {"Certificate": cert_pem.decode(), "Roles": ["rw"]}},
        "Roles": {"rw": {"ResourceType": "Secrets", "ResourceNames": names,
                         "Actions": ["ReadSecret", "WriteSecret"]}},
    }  # fmt: skip
    with CoordinatorClient(clients[0], root_pem=root_pem) as admin:
        admin.set_manifest(json.dumps(manifest).encode())
    model = train_digits_model()
    model_key = generate_key()
    version = d / "models" / MODEL / "1"
    version.mkdir(parents=True)
    (version / "model.onnx.veil").write_bytes(
        encrypt_bytes(model.onnx_bytes, key=model_key, associated_data=model_associated_data(MODEL))
    )
    with_failover(clients, root_pem, user, lambda c: c.set_secrets({"model_key": model_key}), 1)
    print("manifest set through coordinator0; model key uploaded through coordinator1")

    servers = []
    for i in range(2):
        name = f"inference{i}"
        procs.start(name, [
            *VEIL, "serve", "--model_name", MODEL, "--model_base_path", str(d / "models" / MODEL),
            "--port", "0", "--rest_api_port", "0", "--coordinator", meshes[i + 1],
            "--marble-type", "inference-server", "--coordinator-cert", str(d / "coordinator-root.pem"),
            "--tee", "simulated", "--simulated-platform", str(d / "platform"),
            "--uuid-file", str(d / f"{name}.uuid"), "--ready-file", str(d / f"{name}.ready"),
        ])  # fmt: skip
        servers.append(f"127.0.0.1:{procs.ready(name)['rest_port']}")
    tls = ssl.create_default_context(cadata=root_pem.decode())
    with httpx.Client(verify=tls, timeout=10) as http:
        for server in servers:
            deadline = time.monotonic() + 60
            while http.get(f"https://{server}/v1/models/{MODEL}").status_code != 200:
                if time.monotonic() > deadline:
                    raise SystemExit(f"the model never became available on {server}")
                time.sleep(0.1)
    print(f"inference: 2 replicas activated with their own UUIDs, serving on {', '.join(servers)}")

    tally = Tally()
    stop = threading.Event()
    acknowledged: dict[str, bytes] = {}

    def predict(n: int) -> None:
        with httpx.Client(verify=tls, timeout=30) as http:
            i = 0
            while not stop.is_set():
                server = servers[(n + i) % len(servers)]
                batch = model.x_test[(i * 10) % 300 : (i * 10) % 300 + 10].tolist()
                try:
                    resp = http.post(f"https://{server}/v1/models/{MODEL}:predict",
                                     json={"instances": batch})  # fmt: skip
                except httpx.HTTPError as exc:
                    tally.fail("predict", exc)
                else:
                    if resp.status_code == 200:
                        tally.add("predict")
                    else:
                        tally.fail("predict", Error(f"{server}: HTTP {resp.status_code}"))
                i += 1

    def secrets(n: int) -> None:
        name = f"notes{n}"
        i = 0
        while not stop.is_set():
            value = os.urandom(16)
            try:
                with_failover(clients, root_pem, user, lambda c, v=value: c.set_secrets({name: v}),  # type: ignore[misc]
                              n + i)  # fmt: skip
                acknowledged[name] = value
                tally.add("secret write")
                got = with_failover(
                    clients, root_pem, user, lambda c: c.get_secrets(name), n + i + 1
                )
            except Error as exc:
                tally.fail("secret", exc)
            else:
                if got[name]["Key"] == value:
                    tally.add("secret read")
                else:
                    tally.fail("secret read", Error(f"{name} read back another value"))
            i += 1

    threads = [threading.Thread(target=predict, args=(n,)) for n in range(2)]
    threads += [threading.Thread(target=secrets, args=(n,)) for n in range(2)]
    for t in threads:
        t.start()
    time.sleep(seconds / 3)
    procs.kill("coordinator0")
    leader = etcd_leader(members)
    procs.kill(leader)
    print(f"kill -9: coordinator0 and etcd member {leader} (the leader) mid-traffic")
    time.sleep(seconds * 2 / 3)
    stop.set()
    for t in threads:
        t.join()
    for name, value in acknowledged.items():
        got = with_failover(clients, root_pem, user, lambda c, n=name: c.get_secrets(n), 0)  # type: ignore[misc]
        if got[name]["Key"] != value:
            tally.fail("read back", Error(f"the last acknowledged write of {name} was lost"))
    print("operations: " + ", ".join(f"{k} {v} ok" for k, v in sorted(tally.ok.items())))
    if tally.failed:
        print(f"FAILED: {len(tally.failed)} operations failed:")
        for line in tally.failed[:20]:
            print(f"  {line}")
        return 1
    print("nothing failed: every client operation succeeded and every acknowledged write read back")
    return 0


if __name__ == "__main__":
    sys.exit(main())
