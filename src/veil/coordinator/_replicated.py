"""Composition of a coordinator replica on etcd: find the data key, then serve it (ADR 0008).

Start-up order of a replica: (1) on an empty store, the first replica creates the data key (an
etcd create-if-absent decides the race); (2) otherwise it unseals its own copy; (3) otherwise it
asks each live peer through the key API; (4) with no live peer and no unsealable copy it starts
in recovery, and the recovery key holders restore the key (ADR 0010).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import socket
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from veil.attestation import Collateral, TrustAnchors
from veil.coordinator._keyapi import KeyServer, request_data_key
from veil.coordinator.service import CoordinatorService, CoordinatorTEE
from veil.coordinator.store import MemoryStore, Store
from veil.coordinator.store._etcd import EtcdStore
from veil.coordinator.store._replicas import ReplicaState
from veil.errors import ConfigurationError, Error, NetworkError

if TYPE_CHECKING:
    from veil.coordinator.server import CoordinatorSettings

__all__ = ["Replication", "advertised", "build_replica", "key_server"]

log = logging.getLogger(__name__)
JOIN_WAIT = 10.0  # seconds a joining replica waits for a peer that may still be starting


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _obtain_key(
    state: ReplicaState,
    tee: CoordinatorTEE,
    anchors: TrustAnchors,
    peers: Sequence[str],
    *,
    clock: Callable[[], dt.datetime],
    wait: float,
) -> bool:
    """Steps (1)-(3); False when the replica must enter recovery."""
    store = state.store
    give_up = time.monotonic() + wait
    while True:
        if store.get_meta("keycheck") is None:
            if store.has_state():
                log.warning(
                    "the shared state has no key check value: recovery is needed",
                    extra={"event": "state.recovery"},
                )
                return False
            if state.create():
                log.info("created the shared state's data key", extra={"event": "key.created"})
                return True
        if state.unseal_own_copy():
            log.info(
                "unsealed this replica's copy of the data key", extra={"event": "key.unsealed"}
            )
            return True
        candidates = list(dict.fromkeys([*peers, *state.peer_addresses()]))
        refused = 0
        for addr in candidates:
            try:
                key = request_data_key(
                    addr, tee=tee, anchors=anchors, seal_mode=state.seal_mode_hint(), now=clock()
                )
                state.accept(key)
            except NetworkError:
                continue
            except Error as exc:
                refused += 1
                log.warning(
                    "a peer's key exchange failed",
                    extra={"event": "key.refused", "peer": addr, "reason": exc.message},
                )
                continue
            log.info(
                "obtained the data key from a peer after mutual attestation",
                extra={"event": "key.obtained", "peer": addr},
            )
            return True
        if refused or time.monotonic() > give_up:
            log.warning(
                "no live peer shared the data key and this replica has no copy it can unseal: "
                "recovery is needed",
                extra={"event": "state.recovery", "peers": len(candidates), "refused": refused},
            )
            return False
        time.sleep(0.5)


def build_replica(
    settings: CoordinatorSettings,
    tee: CoordinatorTEE,
    anchors: TrustAnchors,
    collateral: Collateral,
    *,
    clock: Callable[[], dt.datetime] = _utcnow,
    wait: float = JOIN_WAIT,
) -> CoordinatorService:
    """A coordinator replica sharing its state in etcd with any number of others."""
    if not settings.etcd_endpoints:
        raise ConfigurationError("--store etcd needs --etcd-endpoints URL[,URL...]")
    if settings.seal_dir is None:
        raise ConfigurationError("--store etcd needs --data-dir (it holds the replica id)")
    etcd = EtcdStore(settings.etcd_endpoints, None, prefix=settings.etcd_prefix)
    state = ReplicaState(settings.seal_dir, etcd, tee)
    found = _obtain_key(state, tee, anchors, settings.peers, clock=clock, wait=wait)
    store: Store = etcd if found else MemoryStore()
    return CoordinatorService(
        store,
        tee,
        trust_anchors=anchors,
        dns_names=settings.dns_names,
        recovery=not found,
        state_dir=state,
        collateral=collateral,
        clock=clock,
    )


def key_server(service: CoordinatorService, state: ReplicaState) -> KeyServer:
    """The key API of a replica: shares the key only while the state is open."""

    def seal_mode() -> str:
        manifest = service.manifest()
        return manifest.config.seal_mode if manifest else state.seal_mode_hint()

    return KeyServer(
        tee=service.tee,
        anchors=service.anchors,
        data_key=lambda: state.data_key,
        seal_mode=seal_mode,
        clock=service.clock,
    )


def advertised(host: str, port: int) -> str:
    """The key API address peers should use for a listener bound to ``host``."""
    if host in ("", "0.0.0.0", "::"):  # noqa: S104 - deciding what to advertise, not binding
        host = socket.gethostname()
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class Replication:
    """A replica's background duties: the key API listener and watching for others' changes."""

    def __init__(self, service: CoordinatorService, state: ReplicaState, *, poll: float = 1.0):
        self._service = service
        self._state = state
        self._poll = poll
        self._server: asyncio.Server | None = None
        self._watch: asyncio.Task[None] | None = None

    async def start(self, key_addr: str) -> int:
        """Listen on ``key_addr``, register in the store, start watching; return the port."""
        from veil._net import listen
        from veil.coordinator.server import _split

        host, port = _split(key_addr)
        sock = listen(host, port)
        bound = int(sock.getsockname()[1])
        self._server = await key_server(self._service, self._state).serve(sock)
        await asyncio.to_thread(self._state.register, advertised(host, bound))
        self._watch = asyncio.create_task(self._watch_loop())
        return bound

    async def _watch_loop(self) -> None:
        while True:
            await asyncio.sleep(self._poll)
            try:
                await asyncio.to_thread(self._service.refresh)
            except Error as exc:
                log.warning(
                    "cannot check the shared state for changes",
                    extra={"event": "state.refresh_failed", "reason": exc.message},
                )

    async def stop(self) -> None:
        """Stop listening and watching."""
        if self._watch is not None:
            self._watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watch
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
