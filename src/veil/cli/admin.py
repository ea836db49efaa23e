"""Administrator commands: coordinator, manifest, users and the simulated platform."""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path

import click

from veil._logging import configure_service_logging
from veil.cli._common import (
    coordinator_cert_option,
    coordinator_option,
    handle_errors,
    out,
    read_file,
)
from veil.client import CoordinatorClient
from veil.coordinator.server import CoordinatorSettings, run
from veil.manifest import Manifest
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
    "--seal-dir",
    envvar="VEIL_COORDINATOR_SEAL_DIR",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("veil-coordinator-data"),
    show_default=True,
)
@click.option(
    "--tee",
    envvar="VEIL_TEE",
    type=click.Choice(["simulated"]),
    required=True,
    help="TEE to run in (explicit; no fallback).",
)
@click.option(
    "--simulated-platform",
    envvar="VEIL_SIMULATED_PLATFORM",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
)
@click.option("--dns-name", "dns_names", multiple=True, default=["localhost"], show_default=True)
@click.option(
    "--ready-file",
    envvar="VEIL_COORDINATOR_READY_FILE",
    type=click.Path(dir_okay=False, path_type=Path),
)
@handle_errors
def coordinator_run(
    client_addr: str,
    mesh_addr: str,
    seal_dir: Path,
    tee: str,
    simulated_platform: Path | None,
    dns_names: tuple[str, ...],
    ready_file: Path | None,
) -> None:
    """Run the coordinator (client API and mesh API) until SIGINT/SIGTERM."""
    configure_service_logging()
    settings = CoordinatorSettings(
        client_addr=client_addr,
        mesh_addr=mesh_addr,
        seal_dir=seal_dir,
        tee=tee,
        simulated_platform=simulated_platform,
        dns_names=dns_names,
        ready_file=ready_file,
    )
    asyncio.run(run(settings))


@click.group("manifest")
def manifest_group() -> None:
    """Administrator: set, get and check manifests."""


@manifest_group.command("set")
@click.argument("manifest_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@coordinator_option
@coordinator_cert_option
@handle_errors
def manifest_set(manifest_file: Path, coordinator: str, coordinator_cert: Path) -> None:
    """Set MANIFEST_FILE on a verified coordinator."""
    raw = read_file(manifest_file, "manifest")
    with CoordinatorClient(
        coordinator, root_pem=read_file(coordinator_cert, "coordinator certificate")
    ) as c:
        c.set_manifest(raw)
    out.print(f"manifest set; fingerprint {Manifest.from_json(raw).fingerprint()}")


@manifest_group.command("get")
@coordinator_option
@coordinator_cert_option
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path))
@handle_errors
def manifest_get(coordinator: str, coordinator_cert: Path, output: Path | None) -> None:
    """Print (or save) the deployed manifest after checking the root's signature on it."""
    with CoordinatorClient(
        coordinator, root_pem=read_file(coordinator_cert, "coordinator certificate")
    ) as c:
        raw, fingerprint = c.manifest()
    if output:
        output.write_bytes(raw)
        out.print(f"saved manifest {fingerprint} to {output}")
    else:
        out.print(raw.decode())


@manifest_group.command("signature")
@click.argument("manifest_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@handle_errors
def manifest_signature(manifest_file: Path) -> None:
    """Print the fingerprint (SHA-256 of the canonical bytes) of a local manifest."""
    out.print(Manifest.from_json(read_file(manifest_file, "manifest")).fingerprint())


@click.command("status")
@coordinator_option
@coordinator_cert_option
@handle_errors
def status(coordinator: str, coordinator_cert: Path) -> None:
    """Print the coordinator's state code and message."""
    with CoordinatorClient(
        coordinator, root_pem=read_file(coordinator_cert, "coordinator certificate")
    ) as c:
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
    for cmd in (coordinator_group, manifest_group, status, user_group):
        cli.add_command(cmd)
