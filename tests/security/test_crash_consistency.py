"""Crash consistency: kill -9 a real coordinator at random moments under a stream of writes.

Each round restarts the coordinator on the same data directory, checks the state left by the
previous crash, then drives a stream of operations from a worker thread (user-defined secret
writes, marble activations and full manifest updates, each recorded as *attempted* before the
request and *acknowledged* when its 200 answer arrives) and SIGKILLs the process after a random
delay. After every restart:

* the state unseals (status 3, not recovery);
* every acknowledged operation is present: the counter secret holds the last acknowledged value
  or a later attempted one; the manifest in force is the last acknowledged update or a later
  attempted one; marbles acknowledged since the last possible update fetch their parameters;
* nothing half-written is visible: the manifest's generated secret exists and is readable, a
  fresh marble activates and receives exactly that secret, and the update log is an unbroken
  hash chain whose last manifest entry is the manifest in force.

The coordinator process is the composition root ``veil coordinator run`` calls
(``veil.coordinator.server.run``), started directly to save the CLI's import time per round.
``CRASH_ROUNDS`` (default 50) sets the number of rounds.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.security._harness import (
    Coordinator,
    User,
    activation_request,
    b64,
    marble_tls,
    new_user,
    tail,
    wait_ready,
)
from veil.attestation import SimulatedPlatform

ROUNDS = int(os.environ.get("CRASH_ROUNDS", "50"))
LAUNCH = """
import asyncio, sys
from pathlib import Path
from veil._logging import configure_service_logging
from veil.coordinator.server import CoordinatorSettings, run
configure_service_logging()
d = Path(sys.argv[1])
asyncio.run(run(CoordinatorSettings(
    client_addr="127.0.0.1:0", mesh_addr="127.0.0.1:0", seal_dir=d / "data",
    simulated_platform=d / "platform", ready_file=d / "coordinator.ready")))
"""


def manifest(version: int, users: dict[str, User]) -> dict[str, Any]:
    """Version ``version`` of the manifest: its own generated secret ``gen_<version>``."""
    gen = f"gen_{version}"
    from tests.security._harness import SERVE_ID

    return {
        "Packages": {"worker": {"TEE": "simulated", "UniqueID": SERVE_ID.hex(), "Debug": False}},
        "Marbles": {
            "worker": {
                "Package": "worker",
                "Parameters": {"Env": {"GEN": f"{{{{ hex .Secrets.{gen} }}}}", "V": str(version)}},
            }
        },
        "Secrets": {
            gen: {"Type": "symmetric-key", "Size": 256, "Shared": True},
            "counter": {"Type": "plain", "UserDefined": True},
        },
        "Users": {
            "admin": {"Certificate": users["admin"].cert_pem.decode(), "Roles": ["updater"]},
            "owner": {
                "Certificate": users["owner"].cert_pem.decode(),
                "Roles": ["counter", "generated"],
            },
        },
        "Roles": {
            "updater": {"ResourceType": "Manifest", "Actions": ["UpdateManifest"]},
            "counter": {
                "ResourceType": "Secrets",
                "ResourceNames": ["counter"],
                "Actions": ["WriteSecret", "ReadSecret"],
            },
            "generated": {
                "ResourceType": "Secrets",
                "ResourceNames": [gen],
                "Actions": ["ReadSecret"],
            },
        },
    }


def fingerprint_of(doc: dict[str, Any]) -> str:
    from veil.manifest import Manifest

    return Manifest.from_json(json.dumps(doc).encode()).fingerprint()


@dataclass
class Ledger:
    """What the client side attempted and what the coordinator acknowledged."""

    counter_acked: int = -1
    counter_attempted: int = -1
    version_acked: int = 0
    version_attempted: int = 0
    marbles: list[tuple[int, Any, Any]] = field(default_factory=list)  # (version, request, data)
    ops: dict[str, int] = field(default_factory=lambda: {"secret": 0, "activate": 0, "update": 0})


class CrashCoordinator(Coordinator):
    """The coordinator started through ``veil.coordinator.server.run`` (same composition root)."""

    def start(self, timeout: float = 60) -> dict[str, Any]:
        self.ready_file.unlink(missing_ok=True)
        with self.log.open("ab") as fh:
            self.popen = subprocess.Popen(
                [sys.executable, "-c", LAUNCH, str(self.workdir)],
                cwd=self.workdir,
                stdout=fh,
                stderr=subprocess.STDOUT,
            )
        self.ready = wait_ready(self.popen, self.ready_file, self.log, timeout)
        self.starts += 1
        if not self.root_pem:
            from tests.security._harness import fetch_root

            self.root_pem = fetch_root(self.client_addr)
        return self.ready


def stream(co: Coordinator, users: dict[str, User], ledger: Ledger, stop: threading.Event) -> None:
    """Issue operations until the coordinator dies (or ``stop``); record attempts and acks."""
    rng = random.Random()  # noqa: S311 - operation mix, not cryptography
    platform = SimulatedPlatform(co.workdir / "platform")
    try:
        with (
            co.client(users["owner"], timeout=5) as owner,
            co.client(users["admin"], timeout=5) as admin,
            co.mesh(timeout=5) as mesh,
        ):
            while not stop.is_set():
                kind = rng.choices(["secret", "activate", "update"], weights=[5, 3, 2])[0]
                if kind == "secret":
                    value = ledger.counter_attempted + 1
                    ledger.counter_attempted = value
                    resp = owner.post(
                        "/api/v2/secrets",
                        json={"secrets": {"counter": {"Key": b64(f"n={value}".encode())}}},
                    )
                    assert resp.status_code == 200, resp.text
                    ledger.counter_acked = value
                elif kind == "activate":
                    req = activation_request(platform, "worker")
                    version = ledger.version_attempted
                    resp = mesh.post("/api/v2/marble/activate", json=req.body)
                    assert resp.status_code == 200, resp.text
                    ledger.marbles.append((version, req, resp.json()["data"]))
                else:
                    version = ledger.version_attempted + 1
                    ledger.version_attempted = version
                    raw = json.dumps(manifest(version, users)).encode()
                    resp = admin.post("/api/v2/update", json={"manifest": b64(raw)})
                    assert resp.status_code == 200, resp.text
                    assert resp.json()["data"]["applied"] is True, resp.text
                    ledger.version_acked = version
                ledger.ops[kind] += 1
    except (httpx.TransportError, OSError):
        return  # the coordinator was killed mid-request: expected


def check_state(co: Coordinator, users: dict[str, User], ledger: Ledger, round_no: int) -> None:
    """The invariants after a restart (see the module docstring)."""
    where = f"round {round_no}"
    with co.client(timeout=10) as anon:
        status = anon.get("/api/v2/status").json()["data"]
        assert status["code"] == 3, f"{where}: {status}"
        doc = anon.get("/api/v2/manifest").json()["data"]
        raw_manifest = json.loads(base64.b64decode(doc["manifest"]))
        log = anon.get("/api/v2/update").json()["data"]
    version = int(raw_manifest["Marbles"]["worker"]["Parameters"]["Env"]["V"])
    assert ledger.version_acked <= version <= ledger.version_attempted, (
        f"{where}: manifest version {version}, acked {ledger.version_acked}, "
        f"attempted {ledger.version_attempted}"
    )
    assert doc["manifestFingerprint"] == fingerprint_of(manifest(version, users)), where
    # the update log: an unbroken chain whose last manifest entry is the manifest in force
    entries = [json.loads(e) for e in log["updateLog"]]
    prev = "0" * 64
    for raw, entry in zip(log["updateLog"], entries, strict=True):
        assert entry["prev"] == prev, f"{where}: update log chain broken at {entry['seq']}"
        prev = hashlib.sha256(raw.encode()).hexdigest()
    assert log["head"]["hash"] == prev, where
    assert log["head"]["size"] == len(entries), where
    manifest_entries = [e for e in entries if e["action"] in ("set-manifest", "update-manifest")]
    assert manifest_entries[-1]["subject"] == doc["manifestFingerprint"], where
    # acknowledged secret writes are present, and the value is one that was written
    with co.client(users["owner"], timeout=10) as owner:
        resp = owner.get("/api/v2/secrets", params=[("s", "counter"), ("s", f"gen_{version}")])
    assert resp.status_code == 200, f"{where}: {resp.text}"
    secrets = resp.json()["data"]["secrets"]
    if ledger.counter_acked >= 0:
        assert "counter" in secrets, f"{where}: acknowledged secret write lost"
    if "counter" in secrets:
        value = int(base64.b64decode(secrets["counter"]["Key"]).decode().removeprefix("n="))
        assert ledger.counter_acked <= value <= ledger.counter_attempted, (
            f"{where}: counter {value}, acked {ledger.counter_acked}, "
            f"attempted {ledger.counter_attempted}"
        )
    # nothing half-written: the manifest's generated secret exists, and a fresh marble gets it
    assert f"gen_{version}" in secrets, f"{where}: generated secret of manifest {version} missing"
    gen = base64.b64decode(secrets[f"gen_{version}"]["Key"])
    assert len(gen) == 32, where
    platform = SimulatedPlatform(co.workdir / "platform")
    fresh = activation_request(platform, "worker")
    with co.mesh(timeout=10) as mesh:
        resp = mesh.post("/api/v2/marble/activate", json=fresh.body)
    assert resp.status_code == 200, f"{where}: fresh activation failed: {resp.text}"
    env = resp.json()["data"]["parameters"]["env"]
    assert base64.b64decode(env["GEN"]) == gen.hex().encode(), where
    # acknowledged activations under the manifest still in force can fetch their parameters
    for marble_version, req, data in ledger.marbles[-3:]:
        if marble_version != version or ledger.version_attempted != version:
            continue  # an update re-issues the intermediate: older marbles re-activate
        with httpx.Client(
            base_url=co.mesh_url, verify=marble_tls(co, req, data), timeout=10
        ) as http:
            resp = http.get("/api/v2/marble/parameters")
        assert resp.status_code == 200, f"{where}: acknowledged marble lost: {resp.text}"


@pytest.mark.timeout(600)
def test_state_survives_kill_9_at_random_moments(tmp_path: Path) -> None:
    """ROUNDS crashes under load: each restart unseals, keeps every acknowledged operation and
    shows nothing half-written."""
    SimulatedPlatform.create(tmp_path / "platform")
    users = {name: new_user(name, tmp_path / "users") for name in ("admin", "owner")}
    co = CrashCoordinator(tmp_path, tmp_path / "platform")
    ledger = Ledger()
    rng = random.Random(int(os.environ.get("CRASH_SEED", str(time.time_ns()))))  # noqa: S311
    try:
        co.start()
        resp = co.set_manifest(manifest(0, users))
        assert resp.status_code == 200, resp.text
        for round_no in range(1, ROUNDS + 1):
            stop = threading.Event()
            worker = threading.Thread(target=stream, args=(co, users, ledger, stop), daemon=True)
            worker.start()
            time.sleep(rng.uniform(0.02, 0.35))
            co.kill9()
            stop.set()
            worker.join(timeout=30)
            assert not worker.is_alive()
            co.start()
            try:
                check_state(co, users, ledger, round_no)
            except AssertionError as exc:
                raise AssertionError(f"{exc}\n--- coordinator log ---\n{tail(co.log)}") from None
            # what the restarted state shows is now the acknowledged baseline
            ledger.version_attempted = ledger.version_acked = _version(co)
            ledger.counter_attempted = max(ledger.counter_attempted, ledger.counter_acked)
        assert co.starts == ROUNDS + 1
        assert all(count > 0 for count in ledger.ops.values()), ledger.ops
    finally:
        if co.popen is not None and co.popen.poll() is None:
            co.popen.send_signal(signal.SIGTERM)
            co.popen.wait(timeout=15)


def _version(co: Coordinator) -> int:
    with co.client(timeout=10) as anon:
        doc = anon.get("/api/v2/manifest").json()["data"]
    return int(
        json.loads(base64.b64decode(doc["manifest"]))["Marbles"]["worker"]["Parameters"]["Env"]["V"]
    )


# -- crash points: kill -9 right after one commit of an operation ---------------------------------
class StateWatcher:
    """Watches the sealed SQLite state through a read-only connection (the coordinator writes in
    WAL mode, so a reader sees each commit as it lands). Values stay sealed: a changed blob (a
    fresh nonce) is all we need to know that a transaction writing that key committed."""

    def __init__(self, db: Path) -> None:
        import sqlite3

        self.conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)

    def blob(self, key: str) -> bytes | None:
        rows = self.conn.execute("SELECT value FROM kv WHERE key = ?", (key,)).fetchall()
        return bytes(rows[0][0]) if rows else None  # fetchall ends the read transaction

    def wait_change(self, key: str, before: bytes | None, timeout: float = 10) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.blob(key) != before:
                return True
            time.sleep(0.0002)
        return False

    def close(self) -> None:
        self.conn.close()


def _recovery_manifest(users: dict[str, User]) -> dict[str, Any]:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()
    doc = manifest(0, users)
    doc["RecoveryKeys"] = {
        "alice": key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ).decode()
    }
    return doc


def _post_in_thread(
    co: Coordinator, user: User | None, path: str, body: dict[str, Any]
) -> threading.Thread:
    def send() -> None:
        try:
            with co.client(user, timeout=10) as http:
                http.post(path, json=body)
        except (httpx.TransportError, OSError):
            pass  # killed mid-request

    thread = threading.Thread(target=send, daemon=True)
    thread.start()
    return thread


CRASH_POINTS = [
    ("set-manifest-with-recovery-keys", "manifest/raw"),
    ("set-manifest-with-unique-key-sealing", "manifest/raw"),
    ("full-update", "manifest/raw"),
    ("secret-write", "secrets/user/counter"),
]


def _unique_key_manifest(users: dict[str, User]) -> dict[str, Any]:
    doc = manifest(0, users)
    doc["Config"] = {"SealMode": "UniqueKey"}
    return doc


def _sealed_with(data_dir: Path, platform: Path, mode: str) -> bool:
    """Whether ``sealed_key`` opens with the coordinator's seal key for ``mode``."""
    from veil.coordinator.server import SimulatedCoordinatorTEE
    from veil.coordinator.store import open_data_key
    from veil.errors import StorageError

    tee = SimulatedCoordinatorTEE(SimulatedPlatform(platform))

    class Bound:
        def seal_key(self) -> bytes:
            return tee.seal_key(mode=mode)

    try:
        open_data_key(data_dir / "sealed_key", Bound())
    except StorageError:
        return False
    return True


@pytest.mark.parametrize(
    ("operation", "key"), CRASH_POINTS, ids=[f"{o}-after-{k}" for o, k in CRASH_POINTS]
)
def test_kill_9_right_after_a_commit_leaves_no_half_written_state(
    tmp_path: Path, operation: str, key: str
) -> None:
    """SIGKILL the moment one transaction of an operation has committed (seen through a reader of
    the sealed state): after the restart the state is before or after the whole operation."""
    SimulatedPlatform.create(tmp_path / "platform")
    users = {name: new_user(name, tmp_path / "users") for name in ("admin", "owner")}
    co = CrashCoordinator(tmp_path, tmp_path / "platform")
    ledger = Ledger()
    watcher: StateWatcher | None = None
    data = tmp_path / "data"
    try:
        co.start()
        if not operation.startswith("set-manifest"):
            assert co.set_manifest(manifest(0, users)).status_code == 200
        watcher = StateWatcher(data / "state.db")
        before = watcher.blob(key)
        if operation.startswith("set-manifest"):
            doc = (
                _recovery_manifest(users)
                if operation.endswith("recovery-keys")
                else _unique_key_manifest(users)
            )
            raw = json.dumps(doc).encode()
            sender = _post_in_thread(co, None, "/api/v2/manifest", {"manifest": b64(raw)})
        elif operation == "full-update":
            ledger.version_attempted = 1
            raw = json.dumps(manifest(1, users)).encode()
            sender = _post_in_thread(co, users["admin"], "/api/v2/update", {"manifest": b64(raw)})
        else:
            ledger.counter_attempted = 0
            body = {"secrets": {"counter": {"Key": b64(b"n=0")}}}
            sender = _post_in_thread(co, users["owner"], "/api/v2/secrets", body)
        reached = watcher.wait_change(key, before)
        co.kill9()
        sender.join(timeout=15)
        watcher.close()
        watcher = None
        assert reached, f"{operation} never committed {key}"
        co.start()
        with co.client(timeout=10) as http:
            code = http.get("/api/v2/status").json()["data"]["code"]
        if operation == "set-manifest-with-recovery-keys":
            assert code == 3, code
            assert (data / "recovery.json").exists(), (
                "the manifest in force names RecoveryKeys but no recovery record was written "
                "(and the administrator never received the recovery secrets): the sealed state "
                "can never be recovered"
            )
        elif operation == "set-manifest-with-unique-key-sealing":
            assert code == 3, code
            assert not _sealed_with(data, tmp_path / "platform", "ProductKey"), (
                "the manifest in force says SealMode UniqueKey but the data key is still sealed "
                "with the ProductKey: any build of the same signer can unseal the state"
            )
        else:
            check_state(co, users, ledger, 1)
    finally:
        if watcher is not None:
            watcher.close()
        if co.popen is not None and co.popen.poll() is None:
            co.popen.send_signal(signal.SIGTERM)
            co.popen.wait(timeout=15)
