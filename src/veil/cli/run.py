"""Marble launcher command: ``veil run --coordinator ADDR --marble-type NAME -- CMD ARGS…``."""

from __future__ import annotations

from pathlib import Path

import click

from veil._logging import configure_service_logging
from veil.cli._common import handle_errors, read_file
from veil.runtime import MarbleSettings, exec_launch, launch


@click.command(
    "run", context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False}
)
@click.option("--coordinator", envvar="VEIL_MARBLE_COORDINATOR_ADDR", required=True)
@click.option("--marble-type", envvar="VEIL_MARBLE_TYPE", required=True)
@click.option(
    "--coordinator-cert",
    envvar="VEIL_MARBLE_COORDINATOR_CERT",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Coordinator root; without it the coordinator is NOT authenticated.",
)
@click.option(
    "--uuid-file",
    envvar="VEIL_MARBLE_UUID_FILE",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("uuid"),
    show_default=True,
)
@click.option(
    "--tee",
    envvar="VEIL_TEE",
    type=click.Choice(["simulated", "gramine", "tdx", "sev-snp"]),
    required=True,
)
@click.option(
    "--simulated-platform",
    envvar="VEIL_SIMULATED_PLATFORM",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
)
@click.option(
    "--measure-extra-file",
    "measured_files",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Extra files measured into the simulated UniqueID (e.g. the program).",
)
@click.option(
    "--files-dir-parent",
    envvar="VEIL_MARBLE_FILES_PARENT",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Where the private files directory is made (default: /dev/shm, a tmpfs).",
)
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
@handle_errors
def run(
    coordinator: str,
    marble_type: str,
    coordinator_cert: Path | None,
    uuid_file: Path,
    tee: str,
    simulated_platform: Path | None,
    measured_files: tuple[Path, ...],
    files_dir_parent: Path | None,
    command: tuple[str, ...],
) -> None:
    """Activate as a marble, place the manifest's Files/Env/Argv, then exec COMMAND."""
    configure_service_logging()
    settings = MarbleSettings(
        coordinator_addr=coordinator,
        marble_type=marble_type,
        uuid_file=uuid_file,
        coordinator_root_pem=read_file(coordinator_cert, "coordinator certificate")
        if coordinator_cert
        else None,
        simulated_platform=simulated_platform,
        entry_point="run",
        measured_files=measured_files,
        tee=tee,
    )
    exec_launch(launch(settings, command, files_parent=files_dir_parent))


def register(cli: click.Group) -> None:
    """Attach the launcher command."""
    cli.add_command(run)
