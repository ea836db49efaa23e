"""The sealed store: unreadable without the data key, tamper-evident, and it survives a restart."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from veil.attestation import SimulatedIdentity, SimulatedPlatform
from veil.coordinator.core import Status
from veil.coordinator.server import SimulatedCoordinatorTEE
from veil.coordinator.service import CoordinatorService
from veil.coordinator.store import MemoryStore, SealedSQLiteStore, Store, open_data_key
from veil.errors import StorageError

from .conftest import MODEL_KEY, User


@pytest.fixture
def data_key() -> bytes:
    """A fixed 256-bit data key."""
    return bytes(range(32))


@pytest.fixture
def make_sqlite(tmp_path: Path) -> Iterator[Callable[[bytes], SealedSQLiteStore]]:
    """Factory: a sealed SQLite store in one file, opened with the given data key."""
    opened: list[SealedSQLiteStore] = []

    def make(key: bytes) -> SealedSQLiteStore:
        store = SealedSQLiteStore(tmp_path / "kv.db", key)
        opened.append(store)
        return store

    yield make
    for store in opened:
        store.close()


def _rows(path: Path) -> dict[str, bytes]:
    with sqlite3.connect(path) as conn:
        return dict(conn.execute("SELECT key, value FROM kv").fetchall())


def _set_row(path: Path, key: str, value: bytes) -> None:
    conn = sqlite3.connect(path)
    try:
        with conn:
            conn.execute("UPDATE kv SET value = ? WHERE key = ?", (value, key))
    finally:
        conn.close()


# -- data key sealing ----------------------------------------------------------------------------


def test_open_data_key_creates_once_then_unseals_the_same_key(
    tmp_path: Path, tee: SimulatedCoordinatorTEE
) -> None:
    """The first open creates a key file (0600); later opens by the same identity return that key."""
    path = tmp_path / "sealed_key"
    key, created = open_data_key(path, tee)
    assert created is True
    assert len(key) == 32
    assert path.stat().st_mode & 0o777 == 0o600
    assert key not in path.read_bytes()
    assert open_data_key(path, tee) == (key, False)


def test_open_data_key_with_another_seal_key_raises_storage_error(
    tmp_path: Path, tee: SimulatedCoordinatorTEE
) -> None:
    """A coordinator on another platform cannot unseal the data key and must recover instead."""
    path = tmp_path / "sealed_key"
    open_data_key(path, tee)
    elsewhere = SimulatedCoordinatorTEE(SimulatedPlatform.create(tmp_path / "other-platform"))
    with pytest.raises(StorageError, match="recovery is needed"):
        open_data_key(path, elsewhere)


def test_open_data_key_with_a_unique_key_of_another_build_fails(
    tmp_path: Path, platform: SimulatedPlatform
) -> None:
    """A sealer bound to another measurement (UniqueKey) cannot unseal this build's data key."""

    class UniqueSealer:
        def __init__(self, unique_id: bytes) -> None:
            self.identity = SimulatedIdentity(unique_id=unique_id)

        def seal_key(self) -> bytes:
            return platform.seal_key(self.identity, mode="UniqueKey")

    path = tmp_path / "sealed_key"
    open_data_key(path, UniqueSealer(bytes(32)))
    with pytest.raises(StorageError):
        open_data_key(path, UniqueSealer(bytes.fromhex("01" * 32)))


@pytest.mark.parametrize(
    "mutate",
    [lambda b: b[:-1], lambda b: b"XEILSK1" + b[7:], lambda b: b[:-1] + bytes([b[-1] ^ 1])],
    ids=["truncated", "bad-magic", "flipped-tag"],
)
def test_open_data_key_refuses_a_modified_key_file(
    tmp_path: Path, tee: SimulatedCoordinatorTEE, mutate: Callable[[bytes], bytes]
) -> None:
    """A truncated, relabelled or bit-flipped key file raises StorageError."""
    path = tmp_path / "sealed_key"
    open_data_key(path, tee)
    path.write_bytes(mutate(path.read_bytes()))
    with pytest.raises(StorageError):
        open_data_key(path, tee)


# -- the sealed SQLite store -------------------------------------------------------------------


def test_sqlite_store_round_trips_values(
    make_sqlite: Callable[[bytes], SealedSQLiteStore], data_key: bytes
) -> None:
    """Committed values read back; keys list by prefix in order; deletes remove."""
    store = make_sqlite(data_key)
    with store.transaction() as txn:
        txn.put("a/2", b"two")
        txn.put("a/1", b"one")
        txn.put("b/1", b"other")
    assert store.get("a/1") == b"one"
    with store.transaction() as txn:
        assert txn.keys("a/") == ["a/1", "a/2"]
        txn.delete("a/1")
    assert store.get("a/1") is None
    assert store.get("missing") is None


def test_sqlite_values_are_unreadable_without_the_data_key(
    make_sqlite: Callable[[bytes], SealedSQLiteStore], data_key: bytes, tmp_path: Path
) -> None:
    """Raw rows hold only ciphertext, and another data key fails authentication."""
    store = make_sqlite(data_key)
    with store.transaction() as txn:
        txn.put("secrets/user/model_key", MODEL_KEY)
    rows = _rows(tmp_path / "kv.db")
    assert MODEL_KEY not in rows["secrets/user/model_key"]
    with pytest.raises(StorageError, match="failed authentication"):
        make_sqlite(bytes(32)).get("secrets/user/model_key")


def test_a_modified_row_fails_authentication(
    make_sqlite: Callable[[bytes], SealedSQLiteStore], data_key: bytes, tmp_path: Path
) -> None:
    """Flipping one ciphertext bit in the database file is detected on read."""
    store = make_sqlite(data_key)
    with store.transaction() as txn:
        txn.put("manifest/raw", b"{}")
    blob = bytearray(_rows(tmp_path / "kv.db")["manifest/raw"])
    blob[-1] ^= 0x01
    _set_row(tmp_path / "kv.db", "manifest/raw", bytes(blob))
    with pytest.raises(StorageError, match="failed authentication"):
        store.get("manifest/raw")


def test_a_value_moved_to_another_key_fails_authentication(
    make_sqlite: Callable[[bytes], SealedSQLiteStore], data_key: bytes, tmp_path: Path
) -> None:
    """The key name is authenticated, so a sealed value cannot be replayed under another key."""
    store = make_sqlite(data_key)
    with store.transaction() as txn:
        txn.put("activations/m", b"0")
        txn.put("activations/other", b"99")
    _set_row(tmp_path / "kv.db", "activations/m", _rows(tmp_path / "kv.db")["activations/other"])
    with pytest.raises(StorageError):
        store.get("activations/m")


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
def test_a_failed_transaction_commits_nothing(
    make_sqlite: Callable[[bytes], SealedSQLiteStore], data_key: bytes, kind: str
) -> None:
    """An exception inside a transaction discards every write made in it."""
    store: Store = MemoryStore() if kind == "memory" else make_sqlite(data_key)

    def write_then_fail() -> None:
        with store.transaction() as txn:
            txn.put("k", b"v")
            raise RuntimeError("abort")

    with pytest.raises(RuntimeError, match="abort"):
        write_then_fail()
    assert store.get("k") is None


def test_memory_transaction_sees_its_own_writes_and_deletes() -> None:
    """Inside a memory transaction reads and key listings reflect uncommitted writes."""
    store = MemoryStore()
    with store.transaction() as txn:
        txn.put("x/1", b"a")
        txn.put("x/2", b"b")
    with store.transaction() as txn:
        txn.delete("x/1")
        txn.put("x/3", b"c")
        assert txn.get("x/1") is None
        assert txn.keys("x/") == ["x/2", "x/3"]
        assert store.get("x/1") == b"a"
    assert store.get("x/1") is None


# -- the coordinator on the sealed store ---------------------------------------------------------


def test_restarted_service_keeps_root_manifest_and_secrets(
    make_sealed_store: Callable[[], SealedSQLiteStore],
    make_service: Callable[..., CoordinatorService],
    manifest_bytes: bytes,
    users: dict[str, User],
) -> None:
    """A coordinator restarted on the same sealed state has the same root, manifest and secrets."""
    first = make_service(make_sealed_store())
    first.set_manifest(manifest_bytes)
    first.write_secrets(users["owner"].cert_der, {"model_key": MODEL_KEY})
    shared = first.read_secrets(users["owner"].cert_der, ["shared"])
    again = make_service(make_sealed_store())
    assert again.root_cert_pem == first.root_cert_pem
    assert again.marble_root_pem == first.marble_root_pem
    assert again.status() == Status.ACCEPTING_MARBLES
    assert again.manifest_document() == first.manifest_document()
    assert again.read_secrets(users["owner"].cert_der, ["model_key", "shared"]) == {
        "model_key": first.read_secrets(users["owner"].cert_der, ["model_key"])["model_key"],
        **shared,
    }


def test_sealed_state_files_hold_no_plaintext(
    make_sealed_store: Callable[[], SealedSQLiteStore],
    make_service: Callable[..., CoordinatorService],
    manifest_bytes: bytes,
    users: dict[str, User],
    tmp_path: Path,
) -> None:
    """Neither the manifest, the model key nor the root private key appear in the state files."""
    store = make_sealed_store()
    service = make_service(store)
    service.set_manifest(manifest_bytes)
    service.write_secrets(users["owner"].cert_der, {"model_key": MODEL_KEY})
    root_key_pem = service.root.key_pem()
    on_disk = b"".join(p.read_bytes() for p in (tmp_path / "state").iterdir() if p.is_file())
    assert on_disk
    for plaintext in (MODEL_KEY, MODEL_KEY.hex().encode(), manifest_bytes, root_key_pem):
        assert plaintext not in on_disk
    assert b"VEIL_MODEL_KEY" not in on_disk
    assert json.loads(manifest_bytes)["Users"]["owner"]["Certificate"].encode() not in on_disk
