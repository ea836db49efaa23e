"""Composition root of the coordinator process: settings → TEE, store, service, listeners."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import ssl
from dataclasses import dataclass
from pathlib import Path

from veil._net import listen, serve_asgi, server_ssl_context, stop_asgi
from veil.attestation import (
    Evidence,
    SimulatedIdentity,
    SimulatedPlatform,
    TEEKind,
    TrustAnchors,
    measure,
)
from veil.coordinator.api import client_api, mesh_api
from veil.coordinator.service import CoordinatorService
from veil.coordinator.store import MemoryStore, SealedSQLiteStore, Store, open_data_key
from veil.errors import ConfigurationError, StorageError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CoordinatorSettings:
    """Settings of ``veil coordinator run`` (each has a ``VEIL_COORDINATOR_*`` variable)."""

    client_addr: str = "127.0.0.1:4433"
    mesh_addr: str = "127.0.0.1:2001"
    seal_dir: Path | None = Path("veil-coordinator-data")
    tee: str = "simulated"
    simulated_platform: Path | None = None
    dns_names: tuple[str, ...] = ("localhost",)
    ready_file: Path | None = None


class SimulatedCoordinatorTEE:
    """The coordinator's view of the simulated TEE it runs in."""

    tee: TEEKind = "simulated"

    def __init__(self, platform: SimulatedPlatform) -> None:
        self._platform = platform
        self.identity = SimulatedIdentity(unique_id=measure("coordinator"))

    def issue(self, report_data: bytes) -> Evidence:
        """Simulated evidence of the coordinator."""
        return self._platform.issue(self.identity, report_data)

    def seal_key(self) -> bytes:
        """Seal key bound to SignerID + ProductID (MarbleRun's default ProductKey mode)."""
        return self._platform.seal_key(self.identity)


def _split(addr: str) -> tuple[str, int]:
    host, sep, port = addr.rpartition(":")
    if not sep or not port.isdigit():
        raise ConfigurationError(f"address {addr!r} must be HOST:PORT")
    return host.strip("[]") or "127.0.0.1", int(port)


def build_service(settings: CoordinatorSettings) -> CoordinatorService:
    """Create the TEE, open (or create) the sealed store and the service."""
    if settings.tee != "simulated":
        raise ConfigurationError(
            f"TEE {settings.tee!r} is not available to the coordinator in this build; "
            "use --tee simulated on machines without a TEE"
        )
    if settings.simulated_platform is None:
        raise ConfigurationError(
            "--tee simulated needs --simulated-platform DIR (create one with "
            "'veil attest simulated-platform init DIR')"
        )
    log.warning(
        "running in the SIMULATED TEE: no hardware protection; only policies that name "
        "TEE 'simulated' will accept this coordinator",
        extra={"event": "tee.simulated"},
    )
    platform = SimulatedPlatform(settings.simulated_platform)
    tee = SimulatedCoordinatorTEE(platform)
    anchors = TrustAnchors(simulated_root_der=platform.root_der)
    store: Store
    recovery = False
    if settings.seal_dir is None:
        store = MemoryStore()
    else:
        settings.seal_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        try:
            data_key, created = open_data_key(settings.seal_dir / "sealed_key", tee)
        except StorageError as exc:
            log.warning("%s", exc.message, extra={"event": "state.recovery"})
            data_key, created, recovery = os.urandom(32), False, True
        if recovery:
            store = MemoryStore()
        else:
            store = SealedSQLiteStore(settings.seal_dir / "state.db", data_key)
            log.info("state opened", extra={"event": "state.opened", "new_state": created})
    return CoordinatorService(
        store, tee, trust_anchors=anchors, dns_names=settings.dns_names, recovery=recovery
    )


async def run(settings: CoordinatorSettings) -> None:
    """Run the coordinator until SIGINT/SIGTERM."""
    service = build_service(settings)
    client_ctx = server_ssl_context(
        service.root.cert_pem,
        service.root.key_pem(),
        client_ca_pem=service.user_certificates_pem(),
    )

    def trust_users() -> None:
        certs = service.user_certificates_pem()
        if certs:
            client_ctx.load_verify_locations(cadata=b"".join(certs).decode("ascii"))
            client_ctx.verify_mode = ssl.CERT_OPTIONAL

    trust_users()
    mesh_key, mesh_chain = service.mesh_identity
    mesh_ctx = server_ssl_context(
        mesh_chain, mesh_key.key_pem(), client_ca_pem=[service.marble_root_pem]
    )
    client_sock = listen(*_split(settings.client_addr))
    mesh_sock = listen(*_split(settings.mesh_addr))
    client_server = await serve_asgi(
        client_api(service, on_manifest_set=trust_users), client_sock, client_ctx
    )
    mesh_server = await serve_asgi(mesh_api(service), mesh_sock, mesh_ctx)
    ready = {
        "client_port": client_sock.getsockname()[1],
        "mesh_port": mesh_sock.getsockname()[1],
        "pid": os.getpid(),
    }
    log.info("coordinator ready", extra={"event": "ready", **ready})
    if settings.ready_file is not None:
        tmp = settings.ready_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(ready))
        tmp.replace(settings.ready_file)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("coordinator stopping", extra={"event": "stopping"})
    await stop_asgi(client_server)
    await stop_asgi(mesh_server)
