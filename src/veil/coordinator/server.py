"""Composition root of the coordinator process: settings → TEE, store, service, listeners."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import signal
import ssl
import warnings
from dataclasses import dataclass
from pathlib import Path

from veil._net import listen, serve_asgi, server_ssl_context, stop_asgi
from veil.attestation import (
    Collateral,
    Evidence,
    SimulatedIdentity,
    SimulatedPlatform,
    TEEKind,
    TrustAnchors,
    measure,
)
from veil.coordinator.api import client_api, mesh_api, ops_app
from veil.coordinator.core import Status
from veil.coordinator.service import CoordinatorService
from veil.coordinator.store import MemoryStore, StateDirectory, Store
from veil.errors import ConfigurationError, StateError, StorageError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CoordinatorSettings:
    """Settings of ``veil coordinator run`` (each has a ``VEIL_COORDINATOR_*`` variable).

    ``seal_dir`` is the data directory (``--data-dir``; ``None`` keeps the state in memory).
    ``store="etcd"`` shares the state with other replicas in etcd (ADR 0008): the data directory
    then holds only the replica id, and ``key_addr`` serves the data key to attested peers.
    """

    client_addr: str = "127.0.0.1:4433"
    mesh_addr: str = "127.0.0.1:2001"
    seal_dir: Path | None = Path("veil-coordinator-data")
    tee: str = "simulated"
    simulated_platform: Path | None = None
    dns_names: tuple[str, ...] = ("localhost",)
    ready_file: Path | None = None
    metrics_addr: str | None = None
    startup_manifest: Path | None = None
    intel_root: Path | None = None
    dcap_collateral: Path | None = None
    amd_ark: Path | None = None
    snp_vcek: Path | None = None
    store: str = "sqlite"
    etcd_endpoints: tuple[str, ...] = ()
    etcd_prefix: str = "/veil/"
    key_addr: str = "127.0.0.1:5433"
    peers: tuple[str, ...] = ()


def _der_certs(path: Path) -> tuple[bytes, ...]:
    """DER of every certificate in a PEM or DER file."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    try:
        data = path.read_bytes()
        with warnings.catch_warnings():  # AMD VCEKs have non-positive serial numbers
            warnings.filterwarnings("ignore", message=".*serial number.*", category=UserWarning)
            certs = (
                x509.load_pem_x509_certificates(data)
                if b"-----BEGIN" in data
                else [x509.load_der_x509_certificate(data)]
            )
    except (OSError, ValueError) as exc:
        raise ConfigurationError(f"cannot read certificates from {path}: {exc}") from None
    return tuple(c.public_bytes(serialization.Encoding.DER) for c in certs)


def hardware_trust(
    settings: CoordinatorSettings, simulated_root_der: bytes | None
) -> tuple[TrustAnchors, Collateral]:
    """Trust anchors and fixed collateral for marbles' hardware evidence, from the settings."""
    intel = _der_certs(settings.intel_root) if settings.intel_root else ()
    dcap = settings.dcap_collateral.read_bytes() if settings.dcap_collateral else None
    return (
        TrustAnchors(
            simulated_root_der=simulated_root_der,
            intel_root_der=intel[0] if intel else None,
            amd_roots_der=_der_certs(settings.amd_ark) if settings.amd_ark else (),
        ),
        Collateral(
            dcap_json=dcap,
            certs=_der_certs(settings.snp_vcek) if settings.snp_vcek else (),
        ),
    )


class SimulatedCoordinatorTEE:
    """The coordinator's view of the simulated TEE it runs in."""

    tee: TEEKind = "simulated"

    def __init__(self, platform: SimulatedPlatform) -> None:
        self._platform = platform
        self.identity = SimulatedIdentity(unique_id=measure("coordinator"))

    def issue(self, report_data: bytes) -> Evidence:
        """Simulated evidence of the coordinator."""
        return self._platform.issue(self.identity, report_data)

    def seal_key(self, mode: str = "ProductKey") -> bytes:
        """Seal key for ``mode`` (``ProductKey``: SignerID + ProductID, MarbleRun's default)."""
        return self._platform.seal_key(self.identity, mode=mode)


def _split(addr: str) -> tuple[str, int]:
    host, sep, port = addr.rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        raise ConfigurationError(f"address {addr!r} must be HOST:PORT")
    return host.strip("[]") or "127.0.0.1", int(port)


def build_service(settings: CoordinatorSettings) -> CoordinatorService:
    """Create the TEE, open (or create) the sealed state and the service.

    When the sealed state exists but cannot be unsealed, the service starts in recovery with a
    temporary identity in memory; the state file is left untouched for recovery.
    """
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
    anchors, collateral = hardware_trust(settings, platform.root_der)
    if settings.store == "etcd":
        from veil.coordinator._replicated import build_replica

        return build_replica(settings, tee, anchors, collateral)
    if settings.store != "sqlite":
        raise ConfigurationError(f"unknown store {settings.store!r}: use sqlite or etcd")
    if settings.seal_dir is None:
        return CoordinatorService(
            MemoryStore(),
            tee,
            trust_anchors=anchors,
            dns_names=settings.dns_names,
            collateral=collateral,
        )
    state_dir = StateDirectory(settings.seal_dir, tee)
    store: Store
    recovery = False
    try:
        store = state_dir.open()
        log.info("state opened", extra={"event": "state.opened"})
    except StorageError as exc:
        log.warning("%s", exc.message, extra={"event": "state.recovery"})
        store, recovery = MemoryStore(), True
    return CoordinatorService(
        store,
        tee,
        trust_anchors=anchors,
        dns_names=settings.dns_names,
        recovery=recovery,
        state_dir=state_dir,
        collateral=collateral,
    )


def _load_chain(ctx: ssl.SSLContext, chain_pem: bytes, key_pem: bytes) -> None:
    cert_fd = os.memfd_create("veil-cert", os.MFD_CLOEXEC)
    key_fd = os.memfd_create("veil-key", os.MFD_CLOEXEC)
    try:
        os.write(cert_fd, chain_pem)
        os.write(key_fd, key_pem)
        ctx.load_cert_chain(f"/proc/self/fd/{cert_fd}", f"/proc/self/fd/{key_fd}")
    finally:
        os.close(cert_fd)
        os.close(key_fd)


def apply_startup_manifest(service: CoordinatorService, path: Path, data_dir: Path | None) -> None:
    """Set the manifest in ``path`` if none is set; its recovery secrets go to the data dir."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigurationError(
            f"cannot read the startup manifest {path}: {exc.strerror}"
        ) from None
    if service.status() != Status.ACCEPTING_MANIFEST:
        log.warning(
            "a manifest is already set (or recovery is needed): the startup manifest is ignored",
            extra={"event": "startup_manifest.ignored"},
        )
        return
    try:
        result = service.set_manifest(raw)
    except StateError:  # another replica set it first (--store etcd)
        log.warning(
            "another replica set a manifest first: the startup manifest is ignored",
            extra={"event": "startup_manifest.ignored"},
        )
        return
    if result.recovery_secrets and data_dir is not None:
        out = data_dir / "recovery-secrets.json"
        doc = {k: base64.b64encode(v).decode() for k, v in result.recovery_secrets.items()}
        out.write_text(json.dumps(doc, indent=2))
        log.warning(
            "recovery secrets (encrypted to the RecoveryKeys) written; hand them to their holders",
            extra={"event": "startup_manifest.recovery_secrets", "path": str(out)},
        )


async def run(settings: CoordinatorSettings) -> None:
    """Run the coordinator until SIGINT/SIGTERM."""
    service = build_service(settings)
    if settings.startup_manifest is not None:
        apply_startup_manifest(service, settings.startup_manifest, settings.seal_dir)
    client_ctx = server_ssl_context(
        service.root.cert_pem,
        service.root.key_pem(),
        client_ca_pem=service.user_certificates_pem(),
    )
    mesh_key, mesh_chain = service.mesh_identity
    mesh_ctx = server_ssl_context(
        mesh_chain, mesh_key.key_pem(), client_ca_pem=[service.marble_root_pem]
    )

    def reload_tls() -> None:
        _load_chain(client_ctx, service.root.cert_pem, service.root.key_pem())
        certs = service.user_certificates_pem()
        if certs:
            client_ctx.load_verify_locations(cadata=b"".join(certs).decode("ascii"))
            client_ctx.verify_mode = ssl.CERT_OPTIONAL
        key, chain = service.mesh_identity
        _load_chain(mesh_ctx, chain, key.key_pem())
        mesh_ctx.load_verify_locations(cadata=service.marble_root_pem.decode("ascii"))

    service.add_listener(reload_tls)
    client_sock = listen(*_split(settings.client_addr))
    mesh_sock = listen(*_split(settings.mesh_addr))
    servers = [
        await serve_asgi(client_api(service), client_sock, client_ctx),
        await serve_asgi(mesh_api(service), mesh_sock, mesh_ctx),
    ]
    ready = {
        "client_port": client_sock.getsockname()[1],
        "mesh_port": mesh_sock.getsockname()[1],
        "pid": os.getpid(),
        "status": int(service.status()),
    }
    replication = None
    if settings.store == "etcd":
        from veil.coordinator._replicated import Replication
        from veil.coordinator.store._replicas import ReplicaState

        assert isinstance(service.sealed_state, ReplicaState)  # noqa: S101 - build_replica made it
        replication = Replication(service, service.sealed_state)
        ready["key_port"] = await replication.start(settings.key_addr)
    if settings.metrics_addr is not None:
        metrics_sock = listen(*_split(settings.metrics_addr))
        servers.append(await serve_asgi(ops_app(service), metrics_sock, None))
        ready["metrics_port"] = metrics_sock.getsockname()[1]
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
    if replication is not None:
        await replication.stop()
    for server in servers:
        await stop_asgi(server)
