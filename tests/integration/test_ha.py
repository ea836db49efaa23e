"""High availability (ADR 0008): a real 3-member etcd cluster and coordinator replicas on loopback.

Needs Debian's ``etcd-server`` (``bash scripts/install-etcd.sh``). Without the ``etcd`` binary the
tests skip, unless ``VEIL_REQUIRE_ETCD=1`` (CI), where they fail. The tests of this module run in
order on one deployment; the last one stops every replica for good.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.integration._deploy import Services, veil
from tests.integration.test_etcd_store import Cluster, _etcd_binary
from veil.attestation import Policy, SimulatedPlatform, TrustAnchors
from veil.client import CoordinatorClient, verify_coordinator
from veil.errors import AuthorizationError, Error, NetworkError
from veil.pki import generate_key, private_key_pem, self_signed_user_certificate
from veil.runtime import MarbleSettings, activate

pytestmark = pytest.mark.integration

T = TypeVar("T")
SIGNER = hashlib.sha256(b"veil simulated enclave signer v1").hexdigest()
POLICY = Policy.from_dict({"TEE": "simulated", "SignerID": SIGNER, "ProductID": 1,
                           "SecurityVersion": 1})  # fmt: skip
RETRY_BUDGET = 30.0  # seconds a client operation may take, failing over between replicas


def _connection_lost(exc: AuthorizationError) -> bool:
    """The client reports a connection dropped after the handshake (a replica killed
    mid-request) as an unauthenticated AuthorizationError; a real refusal is not one."""
    return exc.authenticated is False and "closed the connection" in exc.message


@dataclass
class Replica:
    name: str
    proc: subprocess.Popen[bytes]
    client: str
    mesh: str
    key: str


@dataclass
class HA:
    dir: Path
    etcd: Cluster
    services: Services
    replicas: dict[str, Replica] = field(default_factory=dict)
    root_pem: bytes = b""
    user: tuple[bytes, bytes] = (b"", b"")

    def start(
        self, name: str, platform: str, *, peers: str = "", wait: bool = True
    ) -> subprocess.Popen[bytes]:
        ready = self.dir / f"{name}.ready"
        ready.unlink(missing_ok=True)
        proc = self.services.start(
            name, "coordinator", "run", "--tee", "simulated",
            "--simulated-platform", self.dir / platform,
            "--client-addr", "127.0.0.1:0", "--mesh-addr", "127.0.0.1:0",
            "--key-addr", "127.0.0.1:0", "--data-dir", self.dir / f"{name}-data",
            "--store", "etcd", "--etcd-endpoints", ",".join(self.etcd.endpoints),
            "--peers", peers, "--ready-file", ready,
        )  # fmt: skip
        if wait:
            self.wait(name, proc)
        return proc

    def wait(self, name: str, proc: subprocess.Popen[bytes]) -> Replica:
        ports = self.services.wait_ready(proc, self.dir / f"{name}.ready")
        replica = Replica(
            name,
            proc,
            client=f"127.0.0.1:{ports['client_port']}",
            mesh=f"127.0.0.1:{ports['mesh_port']}",
            key=f"127.0.0.1:{ports['key_port']}",
        )
        self.replicas[name] = replica
        return replica

    def status(self, name: str) -> int:
        anchors = TrustAnchors(simulated_root_der=self._root(name))
        verified = verify_coordinator(self.replicas[name].client, POLICY, trust_anchors=anchors)
        with CoordinatorClient(self.replicas[name].client, root_pem=verified.root_pem) as c:
            return c.status()[0]

    def _root(self, name: str) -> bytes:
        platform = "platform-b" if name.startswith("new") else "platform-a"
        return SimulatedPlatform(self.dir / platform).root_der

    def live(self) -> list[str]:
        return [r.client for r in self.replicas.values() if r.proc.poll() is None]

    def call(self, op: Callable[[CoordinatorClient], T], *, start: int = 0) -> T:
        """Run ``op`` against one replica after another until it succeeds or the budget ends."""
        addresses = [r.client for r in self.replicas.values()]
        give_up = time.monotonic() + RETRY_BUDGET
        i = start
        while True:
            address = addresses[i % len(addresses)]
            try:
                with CoordinatorClient(address, root_pem=self.root_pem, client_cert=self.user) as c:
                    return op(c)
            except (NetworkError, AuthorizationError) as exc:
                # A dead replica refuses or drops the connection; a transient etcd failover
                # answers 503. Authorization failures after the handshake are real: re-raise.
                if isinstance(exc, AuthorizationError) and not _connection_lost(exc):
                    raise
                if time.monotonic() > give_up:
                    raise
            except Error as exc:
                if not getattr(exc, "retryable", False) or time.monotonic() > give_up:
                    raise
            i += 1
            time.sleep(0.05)


def _rsa_key(path: Path) -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return public.decode()


@pytest.fixture(scope="module")
def ha(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HA]:
    """3 etcd members, 3 coordinator replicas on platform A, a manifest with a recovery key."""
    binary = _etcd_binary()
    d = tmp_path_factory.mktemp("ha")
    for platform in ("platform-a", "platform-b", "platform-foreign"):
        SimulatedPlatform.create(d / platform)
    # New hardware of the same vendor: platform A's root and attestation key, another seal secret.
    (d / "platform-a2").mkdir()
    for item in (d / "platform-a").iterdir():
        (d / "platform-a2" / item.name).write_bytes(item.read_bytes())
    seal = [p for p in (d / "platform-a2").iterdir() if "seal" in p.name]
    assert len(seal) == 1
    seal[0].write_bytes(os.urandom(32))
    (d / "etcd").mkdir()
    etcd = Cluster.start(binary, d / "etcd", 3)
    ha = HA(d, etcd, Services(d))
    try:
        procs = {name: ha.start(name, "platform-a", wait=False) for name in ("c0", "c1", "c2")}
        for name, proc in procs.items():
            ha.wait(name, proc)
        anchors = TrustAnchors(simulated_root_der=SimulatedPlatform(d / "platform-a").root_der)
        roots = {
            verify_coordinator(r.client, POLICY, trust_anchors=anchors).root_pem
            for r in ha.replicas.values()
        }
        assert len(roots) == 1, "the replicas must share one coordinator root"
        ha.root_pem = roots.pop()
        key = generate_key()
        cert = self_signed_user_certificate(key, "owner", now=dt.datetime.now(dt.UTC))
        cert_pem = cert.public_bytes(serialization.Encoding.PEM)
        ha.user = (cert_pem, private_key_pem(key))
        (d / "owner.crt").write_bytes(cert_pem)
        (d / "owner.key").write_bytes(private_key_pem(key))
        secrets = [f"s{i}" for i in range(3)]
        manifest = {
            "Packages": {"p": {"TEE": "simulated", "SignerID": SIGNER, "ProductID": 1,
                               "SecurityVersion": 1}},
            "Marbles": {
                "limited": {"Package": "p", "MaxActivations": 15},
                "server": {"Package": "p",
                           "Parameters": {"Env": {"MODEL_KEY": "{{ hex .Secrets.model_key }}"}}},
            },
            "Secrets": {
                "model_key": {"Type": "symmetric-key", "Size": 256, "UserDefined": True},
                **{s: {"Type": "symmetric-key", "Size": 128, "UserDefined": True}
                   for s in secrets},
            },
            "Users": {"owner": {"Certificate": cert_pem.decode(), "Roles": ["rw"]}},
            "Roles": {"rw": {"ResourceType": "Secrets", "ResourceNames": ["model_key", *secrets],
                             "Actions": ["ReadSecret", "WriteSecret"]}},
            "RecoveryKeys": {"k0": _rsa_key(d / "k0.pem")},
        }  # fmt: skip
        with CoordinatorClient(ha.replicas["c1"].client, root_pem=ha.root_pem) as c:
            recovery = c.set_manifest(json.dumps(manifest).encode())
        (d / "secrets.json").write_text(
            json.dumps({k: base64.b64encode(v).decode() for k, v in recovery.items()})
        )
        yield ha
    finally:
        ha.services.stop()
        etcd.stop()


def _marble(ha: HA, replica: Replica, marble_type: str, n: int) -> MarbleSettings:
    return MarbleSettings(
        coordinator_addr=replica.mesh,
        marble_type=marble_type,
        uuid_file=ha.dir / f"{marble_type}-{n}.uuid",
        coordinator_root_pem=ha.root_pem,
        simulated_platform=ha.dir / "platform-a",
    )


def test_max_activations_exact_across_replicas(ha: HA) -> None:
    """20 marbles activating at once through 3 replicas with MaxActivations 15: exactly 15 win."""
    replicas = list(ha.replicas.values())

    def one(n: int) -> bool:
        try:
            activate(_marble(ha, replicas[n % 3], "limited", n))
        except AuthorizationError:
            return False
        return True

    with ThreadPoolExecutor(20) as pool:
        results = list(pool.map(one, range(20)))
    assert sum(results) == 15


def test_inference_replicas_share_the_model_key(ha: HA) -> None:
    """Two inference replicas of one type activate through different coordinators, each with its
    own UUID, and both receive the model key the owner uploaded."""
    model_key = os.urandom(32)
    ha.call(lambda c: c.set_secrets({"model_key": model_key}))
    first = activate(_marble(ha, ha.replicas["c0"], "server", 0))
    second = activate(_marble(ha, ha.replicas["c2"], "server", 1))
    assert first.uuid != second.uuid
    for marble in (first, second):
        assert marble.parameters is not None
        assert marble.parameters.env["MODEL_KEY"] == model_key.hex().encode()


def test_kill_coordinator_and_etcd_member_mid_traffic(ha: HA) -> None:
    """kill -9 of one replica and one etcd member while clients write and read secrets: every
    operation succeeds within its retry budget and every acknowledged write reads back."""
    stop = threading.Event()
    acknowledged: dict[str, bytes] = {}
    ops = [0]
    failures: list[BaseException] = []

    def client(n: int) -> None:
        name = f"s{n}"
        try:
            while not stop.is_set():
                value = os.urandom(16)
                ha.call(lambda c, v=value: c.set_secrets({name: v}), start=n + ops[0])  # type: ignore[misc]
                acknowledged[name] = value
                got = ha.call(lambda c: c.get_secrets(name), start=n + ops[0] + 1)
                assert got[name]["Key"] == value
                ops[0] += 2
        except BaseException as exc:  # noqa: BLE001 - reported by the test thread
            failures.append(exc)

    threads = [threading.Thread(target=client, args=(n,)) for n in range(3)]
    for t in threads:
        t.start()
    time.sleep(1.5)
    ha.replicas["c0"].proc.send_signal(signal.SIGKILL)
    ha.replicas["c0"].proc.wait()
    ha.etcd.kill(ha.etcd.leader())
    time.sleep(3)
    stop.set()
    for t in threads:
        t.join(timeout=RETRY_BUDGET + 10)
    assert not failures, failures
    assert ops[0] >= 12, "the clients made too little progress"
    for name, value in acknowledged.items():
        got = ha.call(lambda c, name=name: c.get_secrets(name))  # type: ignore[misc]
        assert got[name]["Key"] == value


def test_new_replica_joins_through_attested_peer(ha: HA) -> None:
    """A replica with an empty data directory on new hardware obtains the data key from a live
    peer after mutual attestation, and serves the same state."""
    peers = ",".join(r.key for r in ha.replicas.values() if r.proc.poll() is None)
    ha.start("c3", "platform-a2", peers=peers)
    assert ha.status("c3") == 3
    logs = (ha.dir / "c3.log").read_text()
    assert "key.obtained" in logs
    got = ha.call(lambda c: c.get_secrets("model_key"), start=list(ha.replicas).index("c3"))
    assert len(got["model_key"]["Key"]) == 32


def test_replica_on_foreign_platform_is_refused(ha: HA) -> None:
    """A replica on a simulated platform with another root gets no key: peers refuse it, it
    refuses them, and it waits in recovery mode."""
    peers = ",".join(r.key for r in ha.replicas.values() if r.proc.poll() is None)
    proc = ha.start("foreign", "platform-foreign", peers=peers, wait=False)
    replica = ha.wait("foreign", proc)
    logs = (ha.dir / "foreign.log").read_text()
    assert "key.refused" in logs
    assert "key.obtained" not in logs
    anchors = TrustAnchors(
        simulated_root_der=SimulatedPlatform(ha.dir / "platform-foreign").root_der
    )
    verified = verify_coordinator(replica.client, POLICY, trust_anchors=anchors)
    with CoordinatorClient(replica.client, root_pem=verified.root_pem) as c:
        assert c.status()[0] == 1
    assert "keyapi.refused" in ha.services.logs()
    replica.proc.send_signal(signal.SIGKILL)
    replica.proc.wait()
    del ha.replicas["foreign"]


def test_all_replicas_lost_then_recovery(ha: HA) -> None:
    """With every replica stopped and every sealed copy unusable (new platform), a restarted
    replica enters recovery and ``veil recover`` restores the state."""
    before = ha.call(lambda c: c.get_secrets("model_key"))
    for replica in ha.replicas.values():
        if replica.proc.poll() is None:
            replica.proc.send_signal(signal.SIGKILL)
            replica.proc.wait()
    ha.replicas.clear()
    ha.start("new0", "platform-b")
    client = ha.replicas["new0"].client
    assert ha.status("new0") == 1
    attest: list[str | Path] = ["--policy", ha.dir / "policy.json", "--simulated-root",
              ha.dir / "platform-b" / "root.pem"]  # fmt: skip
    (ha.dir / "policy.json").write_text(json.dumps(POLICY.to_dict()))
    out = veil("recover", ha.dir / "secrets.json", "--name", "k0", "-k", ha.dir / "k0.pem",
               "--coordinator", client, *attest, cwd=ha.dir).stdout  # fmt: skip
    assert "Recovery successful" in out
    assert ha.status("new0") == 3
    assert ha.call(lambda c: c.get_secrets("model_key")) == before
