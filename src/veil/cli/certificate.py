"""``veil certificate root|intermediate|chain``: save the coordinator's certificates."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from veil.cli._common import coordinator_option, handle_errors, out
from veil.cli._trust import open_client, with_trust


@click.group("certificate")
def certificate_group() -> None:
    """Everyone: save the coordinator's root, intermediate or chain (PEM)."""


def _command(which: str, default: str) -> click.Command:
    @certificate_group.command(which)
    @coordinator_option
    @with_trust
    @click.option(
        "-o",
        "--output",
        type=click.Path(dir_okay=False, path_type=Path),
        default=Path(default),
        show_default=True,
    )
    @handle_errors
    def command(coordinator: str, output: Path, **trust: Any) -> None:
        with open_client(coordinator, **trust) as c:
            intermediate, root = c.certificates()
        pem = {"root": root, "intermediate": intermediate, "chain": intermediate + root}[which]
        output.write_bytes(pem)
        out.print(f"saved the coordinator {which} certificate to {output}")

    command.__doc__ = f"Save the coordinator's {which} certificate (PEM)."
    command.help = command.__doc__
    return command


_command("root", "coordinator-root.crt")
_command("intermediate", "coordinator-intermediate.crt")
_command("chain", "coordinator-chain.crt")


def register(cli: click.Group) -> None:
    """Attach the certificate commands."""
    cli.add_command(certificate_group)
