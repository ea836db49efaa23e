"""The ``veil`` command: one group of sub-commands per stakeholder.

Exit codes: 0 success; 1 refused (verification or authorization failed — do not proceed);
2 bad input (flags, files, manifest, request); 3 environment (network, storage); 4 not possible
now (state, not found yet); 70 internal error.
"""

from __future__ import annotations

import logging

import click

from veil import __version__
from veil.cli import (  # noqa: F401 - model_tools attaches to `veil model` on import
    admin,
    attest,
    certificate,
    client,
    demo,
    manifest,
    model_tools,
    owner,
    recover,
    run,
    service,
)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--debug", is_flag=True, help="Show tracebacks and debug logs.")
@click.version_option(__version__, prog_name="veil")
def cli(debug: bool) -> None:
    """veil: confidential multi-stakeholder AI inference.

    \b
    Model owner:       veil model …, veil secret set|get
    Administrator:     veil coordinator run, veil status, veil manifest …, veil user new,
                       veil attest …, veil certificate …, veil recover
    Inference service: veil serve, veil run
    Client:            veil verify, veil predict
    Everyone:          veil demo, veil attest verify (offline evidence)
    """
    logging.basicConfig(level=logging.DEBUG if debug else logging.WARNING, format="%(message)s")


owner.register(cli)
admin.register(cli)
manifest.register(cli)
certificate.register(cli)
recover.register(cli)
attest.register(cli)
service.register(cli)
client.register(cli)
demo.register(cli)
run.register(cli)


def main() -> None:
    """Console entry point."""
    cli()


__all__ = ["cli", "main"]
