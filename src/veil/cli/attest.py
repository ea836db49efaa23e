"""Attestation commands: the simulated platform, measurements, and verifying evidence files."""

from __future__ import annotations

import json
from pathlib import Path

import click

from veil.attestation import SimulatedPlatform, measure
from veil.cli._common import handle_errors, out


@click.group("attest")
def attest_group() -> None:
    """Administrator: simulated TEE platform and measurements."""


@attest_group.group("simulated-platform")
def simulated_platform_group() -> None:
    """The explicit simulated TEE (for machines without TEE hardware)."""


@simulated_platform_group.command("init")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@handle_errors
def simulated_platform_init(directory: Path) -> None:
    """Create a simulated platform (root CA, attestation key, seal secret) in DIRECTORY."""
    platform = SimulatedPlatform.create(directory)
    out.print(
        f"simulated platform created in {directory}; root certificate {directory / 'root.pem'}"
    )
    out.print("[yellow]warning: the simulated TEE protects nothing; use it only for development[/]")
    del platform


@attest_group.command("measure")
@click.option("--entry", type=click.Choice(["coordinator", "serve"]), required=True)
@click.option(
    "--extra-file",
    "extra_files",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
)
@click.option("--json", "as_json", is_flag=True, help="Print a policy JSON document instead.")
@handle_errors
def attest_measure(entry: str, extra_files: tuple[Path, ...], as_json: bool) -> None:
    """Print the simulated UniqueID of this veil installation for an entry point."""
    unique_id = measure(entry, extra_files=extra_files).hex()
    if as_json:
        out.print(json.dumps({"TEE": "simulated", "UniqueID": unique_id, "Debug": False}, indent=2))
    else:
        out.print(unique_id)


def register(cli: click.Group) -> None:
    """Attach the attestation commands."""
    cli.add_command(attest_group)
