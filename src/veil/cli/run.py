"""Marble launcher command: ``veil run --coordinator ADDR --marble-type NAME -- CMD ARGS…``."""

from __future__ import annotations

from pathlib import Path

import click

from veil._logging import configure_service_logging
from veil.cli._common import handle_errors, marble_options, marble_settings
from veil.runtime import exec_launch, launch


@click.command(
    "run", context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False}
)
@marble_options(required=True)
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
    device_root: Path | None,
    simulated_platform: Path | None,
    measured_files: tuple[Path, ...],
    files_dir_parent: Path | None,
    command: tuple[str, ...],
) -> None:
    """Activate as a marble, place the manifest's Files/Env/Argv, then exec COMMAND."""
    configure_service_logging()
    settings = marble_settings(
        coordinator=coordinator,
        marble_type=marble_type,
        coordinator_cert=coordinator_cert,
        uuid_file=uuid_file,
        tee=tee,
        device_root=device_root,
        simulated_platform=simulated_platform,
        measured_files=measured_files,
        entry_point="run",
    )
    exec_launch(launch(settings, command, files_parent=files_dir_parent))


def register(cli: click.Group) -> None:
    """Attach the launcher command."""
    cli.add_command(run)
