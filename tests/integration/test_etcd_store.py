"""The etcd store against real etcd processes on loopback (one member, and a cluster of three).

Needs Debian's ``etcd-server`` (``bash scripts/install-etcd.sh``). Without the ``etcd`` binary the
tests skip, unless ``VEIL_REQUIRE_ETCD=1`` (CI), where they fail.
"""

from __future__ import annotations

import base64
import os
import shutil
import socket
import sqlite3
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from veil.coordinator.store import SealedSQLiteStore
from veil.coordinator.store._etcd import EtcdStore, TransactionConflict
from veil.errors import NetworkError, StorageError

pytestmark = pytest.mark.integration

DATA_KEY = bytes(range(32))


def _etcd_binary() -> str:
    path = shutil.which("etcd")
    if path is None:
        reason = "the etcd binary is not installed (run: bash scripts/install-etcd.sh)"
        if os.environ.get("VEIL_REQUIRE_ETCD") == "1":
            pytest.fail(f"VEIL_REQUIRE_ETCD=1 but {reason}")
        pytest.skip(reason)
    return path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Member:
    name: str
    client_url: str
    peer_url: str
    data_dir: Path
    process: subprocess.Popen[bytes] | None = None


@dataclass
class Cluster:
    """Real etcd members started on free loopback ports, data in a temporary directory."""

    binary: str
    members: list[Member] = field(default_factory=list)

    @classmethod
    def start(cls, binary: str, directory: Path, size: int) -> Cluster:
        cluster = cls(binary)
        for i in range(size):
            cluster.members.append(
                Member(
                    name=f"m{i}",
                    client_url=f"http://127.0.0.1:{_free_port()}",
                    peer_url=f"http://127.0.0.1:{_free_port()}",
                    data_dir=directory / f"m{i}",
                )
            )
        initial = ",".join(f"{m.name}={m.peer_url}" for m in cluster.members)
        token = uuid.uuid4().hex
        for m in cluster.members:
            log = (directory / f"{m.name}.log").open("wb")
            m.process = subprocess.Popen(
                [
                    binary,
                    f"--name={m.name}",
                    f"--data-dir={m.data_dir}",
                    f"--listen-client-urls={m.client_url}",
                    f"--advertise-client-urls={m.client_url}",
                    f"--listen-peer-urls={m.peer_url}",
                    f"--initial-advertise-peer-urls={m.peer_url}",
                    f"--initial-cluster={initial}",
                    f"--initial-cluster-token={token}",
                    "--initial-cluster-state=new",
                    "--heartbeat-interval=50",
                    "--election-timeout=500",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            log.close()
        cluster.wait_healthy(cluster.members)
        return cluster

    @property
    def endpoints(self) -> list[str]:
        return [m.client_url for m in self.members]

    def wait_healthy(self, members: list[Member], timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        for m in members:
            while True:
                assert m.process is not None
                if m.process.poll() is not None:
                    pytest.fail(f"etcd member {m.name} exited with {m.process.returncode}")
                try:
                    if httpx.get(m.client_url + "/health", timeout=1).json()["health"] == "true":
                        break
                except (httpx.HTTPError, ValueError, KeyError):
                    pass
                if time.monotonic() > deadline:
                    pytest.fail(f"etcd member {m.name} did not become healthy")
                time.sleep(0.1)

    def leader(self) -> Member:
        status = httpx.post(self.members[0].client_url + "/v3/maintenance/status", json={}).json()
        for m in self.members:
            own = httpx.post(m.client_url + "/v3/maintenance/status", json={}).json()
            if own["header"]["member_id"] == status["leader"]:
                return m
        raise AssertionError("no leader found")

    def kill(self, member: Member) -> None:
        """``kill -9``: no chance to flush or hand over leadership."""
        assert member.process is not None
        member.process.kill()
        member.process.wait()

    def stop(self) -> None:
        for m in self.members:
            if m.process is not None and m.process.poll() is None:
                m.process.kill()
                m.process.wait()


@pytest.fixture(scope="module")
def single(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """One etcd member for the whole module."""
    cluster = Cluster.start(_etcd_binary(), tmp_path_factory.mktemp("etcd1"), 1)
    yield cluster
    cluster.stop()


@pytest.fixture
def make_store(single: Cluster) -> Iterator[Callable[..., EtcdStore]]:
    """Stores on the single member, each test in its own key prefix."""
    prefix = f"/test-{uuid.uuid4().hex}/"
    stores: list[EtcdStore] = []

    def make(**kwargs: Any) -> EtcdStore:
        store = EtcdStore(single.endpoints, DATA_KEY, prefix=prefix, **kwargs)
        stores.append(store)
        return store

    yield make
    for s in stores:
        s.close()


def _raw(endpoint: str, key: str) -> dict[str, Any] | None:
    body = {"key": base64.b64encode(key.encode()).decode()}
    kvs = httpx.post(endpoint + "/v3/kv/range", json=body).json().get("kvs", [])
    return kvs[0] if kvs else None


def _raw_put(endpoint: str, key: str, value: bytes) -> None:
    body = {
        "key": base64.b64encode(key.encode()).decode(),
        "value": base64.b64encode(value).decode(),
    }
    httpx.post(endpoint + "/v3/kv/put", json=body).raise_for_status()


def _once(store: EtcdStore, block: Callable[[Any], object]) -> None:
    """One transaction attempt (no retry), so that a conflict surfaces."""
    with store.transaction() as txn:
        block(txn)


def _prefix(store: EtcdStore) -> str:
    return store._kv_prefix.decode()


def test_round_trip(make_store: Callable[..., EtcdStore]) -> None:
    """Committed puts read back; a transaction sees its own writes; deletes and listings work."""
    store = make_store()
    assert store.get("a") is None
    with store.transaction() as txn:
        txn.put("dir/a", b"1")
        txn.put("dir/b", b"2")
        txn.put("other", b"3")
        assert txn.get("dir/a") == b"1"
        assert txn.keys("dir/") == ["dir/a", "dir/b"]
    assert store.get("dir/a") == b"1"
    with store.transaction() as txn:
        txn.delete("dir/a")
        txn.put("dir/c", b"")
        assert txn.keys("dir/") == ["dir/b", "dir/c"]
        assert txn.get("dir/a") is None
    assert store.get("dir/a") is None
    assert store.get("dir/c") == b""
    with store.transaction() as txn:
        assert txn.keys("") == ["dir/b", "dir/c", "other"]


def test_values_are_sealed_in_the_sqlite_format(
    make_store: Callable[..., EtcdStore], single: Cluster, tmp_path: Path
) -> None:
    """etcd holds nonce ‖ AES-256-GCM ciphertext with the key name as associated data."""
    store = make_store()
    secret = b"model key material that must never be stored in the clear"
    with store.transaction() as txn:
        txn.put("secrets/model_key", secret)
    raw = _raw(single.endpoints[0], _prefix(store) + "secrets/model_key")
    assert raw is not None
    blob = base64.b64decode(str(raw["value"]))
    assert secret not in blob
    assert len(blob) == 12 + len(secret) + 16
    assert AESGCM(DATA_KEY).decrypt(blob[:12], blob[12:], b"secrets/model_key") == secret
    # The same bytes are a valid value of the SQLite store: one format, two stores.
    sqlite_store = SealedSQLiteStore(tmp_path / "state.db", DATA_KEY)
    with sqlite3.connect(tmp_path / "state.db") as conn:
        conn.execute("INSERT INTO kv (key, value) VALUES (?, ?)", ("secrets/model_key", blob))
    assert sqlite_store.get("secrets/model_key") == secret
    sqlite_store.close()


def test_tampered_or_moved_values_fail_authentication(
    make_store: Callable[..., EtcdStore], single: Cluster
) -> None:
    """A flipped bit, or a value copied under another key name, is refused."""
    store = make_store()
    with store.transaction() as txn:
        txn.put("a", b"value of a")
    endpoint, prefix = single.endpoints[0], _prefix(store)
    raw = _raw(endpoint, prefix + "a")
    assert raw is not None
    blob = bytearray(base64.b64decode(str(raw["value"])))
    _raw_put(endpoint, prefix + "b", bytes(blob))
    with pytest.raises(StorageError, match="'b' failed authentication"):
        store.get("b")
    blob[-1] ^= 1
    _raw_put(endpoint, prefix + "a", bytes(blob))
    with pytest.raises(StorageError, match="'a' failed authentication"), store.transaction() as txn:
        txn.get("a")


def test_commit_is_atomic(make_store: Callable[..., EtcdStore], single: Cluster) -> None:
    """All writes of a transaction land at one revision; a block that raises writes nothing."""
    store = make_store()

    def aborted(txn: Any) -> None:
        txn.put("x", b"1")
        txn.put("y", b"1")
        raise RuntimeError("abort")

    with pytest.raises(RuntimeError):
        _once(store, aborted)
    assert store.get("x") is None
    assert store.get("y") is None
    with store.transaction() as txn:
        for name in ("x", "y", "z"):
            txn.put(name, b"2")
    raws = [_raw(single.endpoints[0], _prefix(store) + n) for n in ("x", "y", "z")]
    assert len({raw["mod_revision"] for raw in raws if raw is not None}) == 1
    assert None not in raws


def _increment(txn: Any, key: str = "counter") -> int:
    value = int(txn.get(key) or b"0") + 1
    txn.put(key, str(value).encode())
    return value


def test_concurrent_increments_from_two_stores_are_exact(
    make_store: Callable[..., EtcdStore],
) -> None:
    """Two store instances in two threads, 50 increments each: the counter ends at exactly 100."""
    stores = [make_store(), make_store()]
    errors: list[BaseException] = []

    def worker(store: EtcdStore) -> None:
        try:
            for _ in range(50):
                store.transact(_increment)
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(s,)) for s in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert stores[0].get("counter") == b"100"


def test_a_conflicting_transaction_raises_and_transact_reruns_it(
    make_store: Callable[..., EtcdStore],
) -> None:
    """A write between a transaction's read and its commit makes it conflict; transact re-runs it."""
    store, other = make_store(), make_store()

    def interfered(txn: Any) -> None:
        _increment(txn)
        other.transact(_increment)

    with pytest.raises(TransactionConflict):
        _once(store, interfered)
    assert store.get("counter") == b"1"

    runs = 0

    def block(txn: Any) -> int:
        nonlocal runs
        runs += 1
        result = _increment(txn)
        if runs == 1:
            other.transact(_increment)
        return result

    assert store.transact(block) == 3
    assert runs == 2
    assert store.get("counter") == b"3"


def test_creating_an_absent_key_conflicts_with_a_concurrent_create(
    make_store: Callable[..., EtcdStore],
) -> None:
    """Two transactions that both saw a key absent cannot both create it (first writer wins)."""
    store, other = make_store(), make_store()

    def create(txn: Any) -> None:
        assert txn.get("manifest/raw") is None
        with other.transaction() as rival:
            assert rival.get("manifest/raw") is None
            rival.put("manifest/raw", b"rival")
        txn.put("manifest/raw", b"mine")

    with pytest.raises(TransactionConflict):
        _once(store, create)
    assert store.get("manifest/raw") == b"rival"


@pytest.mark.parametrize("change", ["insert", "delete"])
def test_a_listed_prefix_conflicts_with_inserts_and_deletes(
    make_store: Callable[..., EtcdStore], change: str
) -> None:
    """A transaction that listed a prefix conflicts when another one adds or removes a key in it."""
    store, other = make_store(), make_store()
    with store.transaction() as txn:
        txn.put("marbles/1", b"")

    def count(txn: Any) -> None:
        assert txn.keys("marbles/") == ["marbles/1"]
        with other.transaction() as rival:
            if change == "insert":
                rival.put("marbles/2", b"")
            else:
                rival.delete("marbles/1")
        txn.put("count", str(len(txn.keys("marbles/"))).encode())

    with pytest.raises(TransactionConflict):
        _once(store, count)
    assert store.get("count") is None


def test_unrelated_writes_and_reads_do_not_conflict(make_store: Callable[..., EtcdStore]) -> None:
    """Conflicts are precise: writes outside what a transaction read or listed never abort it."""
    store, other = make_store(), make_store()

    def block(txn: Any) -> None:
        txn.get("mine")
        txn.keys("marbles/")
        other.transact(lambda rival: rival.put("elsewhere", rival.get("marbles") or b"x"))
        txn.put("mine", b"1")

    _once(store, block)
    assert store.get("mine") == b"1"


class _LoseTheFirstCommitAnswer(httpx.BaseTransport):
    """Real HTTP to etcd, except that the first commit's connection breaks, after etcd applied it
    (``applied=True``) or before the request left (``applied=False``)."""

    def __init__(self, *, applied: bool) -> None:
        self._inner = httpx.HTTPTransport()
        self._applied = applied
        self.lost = 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v3/kv/txn" and not self.lost:
            self.lost += 1
            if self._applied:
                self._inner.handle_request(request).read()
            raise httpx.ReadError("connection reset by peer", request=request)
        return self._inner.handle_request(request)

    def close(self) -> None:
        self._inner.close()


@pytest.mark.parametrize("applied", [True, False], ids=["applied", "not-applied"])
def test_a_lost_commit_answer_is_resolved_exactly_once(
    make_store: Callable[..., EtcdStore], applied: bool
) -> None:
    """A commit whose answer is lost is found in the key's history, or re-run: never twice."""
    transport = _LoseTheFirstCommitAnswer(applied=applied)
    store = make_store(transport=transport)
    runs = 0

    def block(txn: Any) -> int:
        nonlocal runs
        runs += 1
        return _increment(txn)

    assert store.transact(block) == 1
    assert transport.lost == 1
    assert runs == (1 if applied else 2)
    assert store.get("counter") == b"1"


def test_unreachable_endpoints_raise_a_network_error() -> None:
    """With no member reachable, the error names the endpoints and says what to check."""
    endpoint = f"http://127.0.0.1:{_free_port()}"
    with (
        EtcdStore([endpoint], DATA_KEY, failover_deadline=0.3) as store,
        pytest.raises(NetworkError, match="majority of the etcd members") as info,
    ):
        store.get("a")
    assert endpoint in str(info.value)


def test_acknowledged_writes_survive_killing_the_leader(tmp_path: Path) -> None:
    """kill -9 of the leader during writes: every acknowledged write reads back, none failed."""
    cluster = Cluster.start(_etcd_binary(), tmp_path, 3)
    try:
        leader = cluster.leader()
        endpoints = [leader.client_url] + [m.client_url for m in cluster.members if m is not leader]
        acknowledged: list[str] = []
        errors: list[BaseException] = []
        stop = threading.Event()

        def writer(n: int) -> None:
            with EtcdStore(endpoints, DATA_KEY, request_timeout=2.0) as store:
                i = 0
                while not stop.is_set():
                    key = f"w{n}/{i}"
                    try:

                        def block(txn: Any, key: str = key) -> None:
                            _increment(txn)
                            txn.put(key, key.encode())

                        store.transact(block)
                    except BaseException as exc:  # noqa: BLE001 - reported by the main thread
                        errors.append(exc)
                        return
                    acknowledged.append(key)
                    i += 1

        threads = [threading.Thread(target=writer, args=(n,)) for n in range(2)]
        for t in threads:
            t.start()
        time.sleep(1.0)
        before = len(acknowledged)
        cluster.kill(leader)
        time.sleep(2.5)
        stop.set()
        for t in threads:
            t.join(timeout=30)
        assert errors == []
        assert before > 0
        assert len(acknowledged) > before, "no write was acknowledged after the kill"
        survivors = [m.client_url for m in cluster.members if m is not leader]
        with EtcdStore(survivors, DATA_KEY) as store:
            for key in acknowledged:
                assert store.get(key) == key.encode()
            assert store.get("counter") == str(len(acknowledged)).encode()
    finally:
        cluster.stop()
