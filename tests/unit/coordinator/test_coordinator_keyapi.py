"""The key API between coordinator replicas (ADR 0008): mutual attestation against one's own
identity, on loopback; and ``run_transaction`` for stores with and without ``transact``."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from veil.attestation import Evidence, SimulatedIdentity, SimulatedPlatform, TEEKind, TrustAnchors
from veil.coordinator._keyapi import KeyServer, request_data_key
from veil.coordinator.store import MemoryStore, Transaction, run_transaction
from veil.errors import NetworkError, VerificationError

DATA_KEY = bytes(range(32))


class _TEE:
    tee: TEEKind = "simulated"

    def __init__(self, platform: SimulatedPlatform, identity: SimulatedIdentity) -> None:
        self.platform = platform
        self.identity = identity

    def issue(self, report_data: bytes) -> Evidence:
        return self.platform.issue(self.identity, report_data)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@pytest.fixture
def platform(tmp_path: Path) -> SimulatedPlatform:
    return SimulatedPlatform.create(tmp_path / "a")


@pytest.fixture
def serve(platform: SimulatedPlatform) -> Iterator[Callable[[str], str]]:
    """Start a key server on loopback in ``seal_mode``; return its address."""
    loops: list[tuple[asyncio.AbstractEventLoop, threading.Thread, asyncio.Server]] = []

    def start(seal_mode: str) -> str:
        tee = _TEE(platform, SimulatedIdentity(unique_id=b"\x01" * 32))
        server = KeyServer(
            tee=tee,
            anchors=TrustAnchors(simulated_root_der=platform.root_der),
            data_key=lambda: DATA_KEY,
            seal_mode=lambda: seal_mode,
            clock=_now,
        )
        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=loop.run_forever, daemon=True)
        thread.start()
        from veil._net import listen

        sock = listen("127.0.0.1", 0)
        listener = asyncio.run_coroutine_threadsafe(server.serve(sock), loop).result(10)
        loops.append((loop, thread, listener))
        return f"127.0.0.1:{sock.getsockname()[1]}"

    yield start
    for loop, thread, listener in loops:

        async def close(listener: asyncio.Server = listener) -> None:
            listener.close()
            await listener.wait_closed()

        asyncio.run_coroutine_threadsafe(close(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.close()


def _request(addr: str, platform: SimulatedPlatform, unique_id: bytes, mode: str) -> bytes:
    tee = _TEE(platform, SimulatedIdentity(unique_id=unique_id))
    return request_data_key(
        addr,
        tee=tee,
        anchors=TrustAnchors(simulated_root_der=platform.root_der),
        seal_mode=mode,
        now=_now(),
    )


def test_same_identity_obtains_the_key(
    serve: Callable[[str], str], platform: SimulatedPlatform
) -> None:
    """A requester with the server's own identity on the same root receives the data key."""
    addr = serve("UniqueKey")
    assert _request(addr, platform, b"\x01" * 32, "UniqueKey") == DATA_KEY


def test_same_signer_is_enough_under_product_key(
    serve: Callable[[str], str], platform: SimulatedPlatform
) -> None:
    """Under SealMode ProductKey another build of the same signer and product is a peer."""
    addr = serve("ProductKey")
    assert _request(addr, platform, b"\x02" * 32, "ProductKey") == DATA_KEY


def test_other_build_is_refused_under_unique_key(
    serve: Callable[[str], str], platform: SimulatedPlatform
) -> None:
    """Under SealMode UniqueKey a different UniqueID gets nothing."""
    addr = serve("UniqueKey")
    with pytest.raises(VerificationError):
        _request(addr, platform, b"\x02" * 32, "ProductKey")


def test_foreign_root_is_refused(serve: Callable[[str], str], tmp_path: Path) -> None:
    """A requester whose simulated platform has another root is refused, and refuses the peer."""
    addr = serve("ProductKey")
    foreign = SimulatedPlatform.create(tmp_path / "foreign")
    with pytest.raises(VerificationError):
        _request(addr, foreign, b"\x01" * 32, "ProductKey")


def test_no_peer_is_a_network_error(platform: SimulatedPlatform) -> None:
    """Nobody listening: NetworkError (the caller tries the next peer, then recovery)."""
    from veil._net import listen

    sock = listen("127.0.0.1", 0)
    port = sock.getsockname()[1]
    sock.close()
    with pytest.raises(NetworkError):
        _request(f"127.0.0.1:{port}", platform, b"\x01" * 32, "ProductKey")


def test_run_transaction_runs_once_without_transact() -> None:
    """Stores without ``transact`` (memory, SQLite) run the block once, in one transaction."""
    store = MemoryStore()
    calls: list[int] = []

    def block(txn: Transaction) -> str:
        calls.append(1)
        txn.put("k", b"v")
        return "done"

    assert run_transaction(store, block) == "done"
    assert calls == [1]
    assert store.get("k") == b"v"


def test_run_transaction_uses_transact_when_present() -> None:
    """Stores with ``transact`` (etcd) get the block, so that they can re-run it on conflict."""

    class Retrying(MemoryStore):
        attempts = 0

        def transact(self, block: Callable[[Transaction], object]) -> object:
            for _ in range(2):
                self.attempts += 1
                with self.transaction() as txn:
                    result = block(txn)
            return result

    store = Retrying()
    assert run_transaction(store, lambda txn: txn.put("k", os.urandom(1))) is None
    assert store.attempts == 2
