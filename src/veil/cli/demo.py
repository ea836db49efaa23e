"""``veil demo``: the seven-step walkthrough on one machine."""

from __future__ import annotations

import signal
import tempfile
import threading
from pathlib import Path

import click

from veil.cli._common import handle_errors, out
from veil.cli._demo import walkthrough
from veil.errors import Error


@click.command("demo")
@click.option(
    "--keep-running", is_flag=True, help="Leave the services up and print commands to try."
)
@click.option(
    "--workdir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Keep files here instead of a temporary directory.",
)
@handle_errors
def demo(keep_running: bool, workdir: Path | None) -> None:
    """Run all seven steps: owner, administrator, inference service and client."""
    with tempfile.TemporaryDirectory(prefix="veil-demo-") as tmp:
        root = workdir or Path(tmp)
        root.mkdir(parents=True, exist_ok=True)
        with walkthrough(root) as w:
            result = w.run(keep_running=keep_running)
            if keep_running:
                stop = threading.Event()
                signal.signal(signal.SIGINT, lambda *_: stop.set())
                signal.signal(signal.SIGTERM, lambda *_: stop.set())
                stop.wait()
        if result.client_accuracy != result.plaintext_accuracy:
            raise Error("the client's accuracy differs from the plaintext model's")
        out.print("[green]demo finished; every process was stopped[/]")


def register(cli: click.Group) -> None:
    """Attach the demo command."""
    cli.add_command(demo)
