"""Administrator commands: run the coordinator, its status, user certificates."""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path
from typing import Any

import click

from veil._logging import configure_service_logging
from veil.cli._common import coordinator_option, handle_errors, out
from veil.cli._trust import open_client, with_trust
from veil.coordinator.server import CoordinatorSettings, run
from veil.pki import generate_key, private_key_pem, self_signed_user_certificate


@click.group("coordinator")
def coordinator_group() -> None:
    """Administrator: run the coordinator."""


@coordinator_group.command("run")
@click.option(
    "--client-addr",
    envvar="VEIL_COORDINATOR_CLIENT_ADDR",
    default="127.0.0.1:4433",
    show_default=True,
)
@click.option(
    "--mesh-addr", envvar="VEIL_COORDINATOR_MESH_ADDR", default="127.0.0.1:2001", show_default=True
)
@click.option(
    "--data-dir",
    "--seal-dir",
    "data_dir",
    envvar=["VEIL_COORDINATOR_DATA_DIR", "VEIL_COORDINATOR_SEAL_DIR"],
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("veil-coordinator-data"),
    show_default=True,
    help="Directory of the sealed state (--seal-dir is an alias).",
)
@click.option(
    "--metrics-addr",
    envvar="VEIL_COORDINATOR_METRICS_ADDR",
    help="Also serve /metrics, /events, /healthz, /readyz over plain HTTP on HOST:PORT.",
)
@click.option(
    "--startup-manifest",
    envvar="VEIL_COORDINATOR_STARTUP_MANIFEST",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Set this manifest at start when none is set yet.",
)
@click.option(
    "--tee",
    envvar=["VEIL_COORDINATOR_TEE", "VEIL_TEE"],
    type=click.Choice(["simulated"]),
    required=True,
    help="TEE to run in (explicit; no fallback).",
)
@click.option(
    "--simulated-platform",
    envvar=["VEIL_COORDINATOR_SIMULATED_PLATFORM", "VEIL_SIMULATED_PLATFORM"],
    type=click.Path(exists=True, file_okay=False, path_type=Path),
)
@click.option(
    "--dns-name",
    "dns_names",
    envvar="VEIL_COORDINATOR_DNS_NAMES",
    multiple=True,
    default=["localhost"],
    show_default=True,
    help="DNS name of the coordinator's certificates (repeat; the variable is space-separated).",
)
@click.option(
    "--ready-file",
    envvar="VEIL_COORDINATOR_READY_FILE",
    type=click.Path(dir_okay=False, path_type=Path),
)
@click.option(
    "--intel-root",
    envvar="VEIL_COORDINATOR_INTEL_ROOT",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Pinned Intel SGX Root CA (PEM or DER) for SGX/TDX marbles.",
)
@click.option(
    "--dcap-collateral",
    envvar="VEIL_COORDINATOR_DCAP_COLLATERAL",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="DCAP collateral (QuoteCollateralV3 JSON) for SGX/TDX marbles.",
)
@click.option(
    "--amd-ark",
    envvar="VEIL_COORDINATOR_AMD_ARK",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Pinned AMD ARK (or ASK+ARK bundle) for SEV-SNP marbles.",
)
@click.option(
    "--snp-vcek",
    envvar="VEIL_COORDINATOR_SNP_VCEK",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="VCEK/VLEK certificate for SEV-SNP marbles whose evidence does not carry it.",
)
@click.option(
    "--store",
    envvar="VEIL_COORDINATOR_STORE",
    type=click.Choice(["sqlite", "etcd"]),
    default="sqlite",
    show_default=True,
    help="sqlite: one instance, state in --data-dir; etcd: replicas share the state (HA).",
)
@click.option(
    "--etcd-endpoints",
    envvar="VEIL_COORDINATOR_ETCD_ENDPOINTS",
    default="",
    help="etcd client URLs, comma-separated (--store etcd).",
)
@click.option(
    "--etcd-prefix",
    envvar="VEIL_COORDINATOR_ETCD_PREFIX",
    default="/veil/",
    show_default=True,
    help="Key prefix of this deployment in etcd.",
)
@click.option(
    "--key-addr",
    envvar="VEIL_COORDINATOR_KEY_ADDR",
    default="127.0.0.1:5433",
    show_default=True,
    help="Key API (data key sharing between attested replicas, --store etcd).",
)
@click.option(
    "--peers",
    envvar="VEIL_COORDINATOR_PEERS",
    default="",
    help="Key API addresses of other replicas, comma-separated (besides those registered).",
)
@handle_errors
def coordinator_run(
    client_addr: str,
    mesh_addr: str,
    data_dir: Path,
    metrics_addr: str | None,
    startup_manifest: Path | None,
    tee: str,
    simulated_platform: Path | None,
    dns_names: tuple[str, ...],
    ready_file: Path | None,
    intel_root: Path | None,
    dcap_collateral: Path | None,
    amd_ark: Path | None,
    snp_vcek: Path | None,
    store: str,
    etcd_endpoints: str,
    etcd_prefix: str,
    key_addr: str,
    peers: str,
) -> None:
    """Run the coordinator (client API and mesh API) until SIGINT/SIGTERM."""
    configure_service_logging()
    settings = CoordinatorSettings(
        client_addr=client_addr,
        mesh_addr=mesh_addr,
        seal_dir=data_dir,
        metrics_addr=metrics_addr,
        startup_manifest=startup_manifest,
        tee=tee,
        simulated_platform=simulated_platform,
        dns_names=dns_names,
        ready_file=ready_file,
        intel_root=intel_root,
        dcap_collateral=dcap_collateral,
        amd_ark=amd_ark,
        snp_vcek=snp_vcek,
        store=store,
        etcd_endpoints=tuple(e.strip() for e in etcd_endpoints.split(",") if e.strip()),
        etcd_prefix=etcd_prefix,
        key_addr=key_addr,
        peers=tuple(p.strip() for p in peers.split(",") if p.strip()),
    )
    asyncio.run(run(settings))


@click.command("status")
@coordinator_option
@with_trust
@handle_errors
def status(coordinator: str, **trust: Any) -> None:
    """Print the coordinator's state code and message."""
    with open_client(coordinator, **trust) as c:
        code, message = c.status()
    out.print(f"{code}: {message}")


@click.group("user")
def user_group() -> None:
    """Administrator: create user certificates for the manifest."""


@user_group.command("new")
@click.argument("name")
@click.option("--cert-out", type=click.Path(dir_okay=False, path_type=Path), required=True)
@click.option("--key-out", type=click.Path(dir_okay=False, path_type=Path), required=True)
@handle_errors
def user_new(name: str, cert_out: Path, key_out: Path) -> None:
    """Create a self-signed client certificate and key for user NAME."""
    from cryptography.hazmat.primitives import serialization

    key = generate_key()
    cert = self_signed_user_certificate(key, name, now=dt.datetime.now(dt.UTC))
    key_out.touch(mode=0o600, exist_ok=False)
    key_out.write_bytes(private_key_pem(key))
    cert_out.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    out.print(f"user {name}: certificate {cert_out}, key {key_out}")


def register(cli: click.Group) -> None:
    """Attach the administrator commands."""
    for cmd in (coordinator_group, status, user_group):
        cli.add_command(cmd)
