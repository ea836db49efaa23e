"""How a CLI command comes to trust the coordinator (MarbleRun's verification flags).

One of: ``--coordinator-cert FILE`` (the root saved by ``veil verify``: TLS is pinned to it),
``--policy FILE`` (attest the coordinator now; ``--simulated-root`` for the simulated TEE), or
``--insecure`` (trust whatever root is presented; prints a warning every time it is used).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from veil.attestation import Policy, TrustAnchors
from veil.cli._common import console, read_file
from veil.client import CoordinatorClient, insecure_coordinator_root, verify_coordinator
from veil.errors import ConfigurationError

F = TypeVar("F", bound=Callable[..., Any])

_OPTIONS = [
    click.option(
        "--coordinator-cert",
        type=click.Path(exists=True, dir_okay=False, path_type=Path),
        envvar="VEIL_COORDINATOR_CERT",
        help="The coordinator root certificate saved by 'veil verify' (pins TLS).",
    ),
    click.option(
        "--policy",
        "policy_file",
        type=click.Path(exists=True, dir_okay=False, path_type=Path),
        help="Attest the coordinator now against this policy instead of a saved root.",
    ),
    click.option(
        "--simulated-root",
        type=click.Path(exists=True, dir_okay=False, path_type=Path),
        help="Root certificate of the simulated platform (with --policy, TEE 'simulated').",
    ),
    click.option(
        "--insecure",
        is_flag=True,
        help="DANGEROUS: trust the coordinator without verifying it (simulation/debugging only).",
    ),
]


def with_trust(func: F) -> F:
    """Add --coordinator-cert / --policy / --simulated-root / --insecure."""
    for option in reversed(_OPTIONS):
        func = option(func)
    return func


def coordinator_root(
    coordinator: str,
    *,
    coordinator_cert: Path | None,
    policy_file: Path | None,
    simulated_root: Path | None,
    insecure: bool,
) -> bytes:
    """The root certificate PEM to pin, by the first trust option given."""
    if coordinator_cert is not None:
        return read_file(coordinator_cert, "coordinator certificate")
    if policy_file is not None:
        anchors = TrustAnchors(
            simulated_root_der=x509.load_pem_x509_certificate(
                read_file(simulated_root, "simulated root")
            ).public_bytes(serialization.Encoding.DER)
            if simulated_root
            else None
        )
        return verify_coordinator(
            coordinator, Policy.from_file(policy_file), trust_anchors=anchors
        ).root_pem
    if insecure:
        console.print(
            "[bold yellow]warning:[/] --insecure: the coordinator is NOT verified; anyone on the "
            "network path could be answering. Never use this in production."
        )
        return insecure_coordinator_root(coordinator)
    raise ConfigurationError(
        "say how to trust the coordinator: --coordinator-cert FILE (from 'veil verify'), "
        "--policy FILE, or --insecure"
    )


def open_client(
    coordinator: str,
    *,
    coordinator_cert: Path | None,
    policy_file: Path | None,
    simulated_root: Path | None,
    insecure: bool,
    cert: Path | None = None,
    key: Path | None = None,
) -> CoordinatorClient:
    """A client pinned to the trusted root, with the user certificate when given."""
    root = coordinator_root(
        coordinator,
        coordinator_cert=coordinator_cert,
        policy_file=policy_file,
        simulated_root=simulated_root,
        insecure=insecure,
    )
    client_cert = None
    if cert is not None and key is not None:
        client_cert = (read_file(cert, "certificate"), read_file(key, "key"))
    return CoordinatorClient(coordinator, root_pem=root, client_cert=client_cert)
