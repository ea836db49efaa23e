"""``veil recover``: a recovery key holder unlocks a coordinator that lost its seal key."""

from __future__ import annotations

import base64
import binascii
import json
from pathlib import Path
from typing import Any

import click

from veil.cli._common import coordinator_option, handle_errors, out, read_file
from veil.cli._trust import open_client, with_trust
from veil.client import (
    decrypt_recovery_secret,
    encrypt_for_coordinator,
    load_recovery_key,
    sign_recovery_secret,
)
from veil.errors import ConfigurationError


def _encrypted_secret(data: bytes, name: str | None) -> bytes:
    """The holder's encrypted secret from a JSON file of all of them, base64 text, or raw bytes."""
    try:
        doc = json.loads(data)
    except ValueError:
        doc = None
    if isinstance(doc, dict):
        doc = doc.get("recoverySecrets", doc)
        if name is None:
            if len(doc) != 1:
                raise ConfigurationError(
                    f"the file holds secrets for {', '.join(sorted(doc))}: choose one with --name"
                )
            name = next(iter(doc))
        if name not in doc:
            raise ConfigurationError(f"the file holds no recovery secret for {name!r}")
        data = str(doc[name]).encode()
    try:
        return base64.b64decode(data.strip(), validate=True)
    except (binascii.Error, ValueError):
        return data


@click.command("recover")
@click.argument("secret_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@coordinator_option
@with_trust
@click.option(
    "-k",
    "--key",
    "key_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    required=True,
    help="Your recovery private key (RSA, PEM).",
)
@click.option("--name", help="Your recovery key's name, when SECRET_FILE holds several secrets.")
@click.option(
    "--no-transport-encryption",
    is_flag=True,
    help="Send the secret only TLS-protected, not also encrypted to the coordinator's key.",
)
@handle_errors
def recover(
    secret_file: Path,
    coordinator: str,
    key_file: Path,
    name: str | None,
    no_transport_encryption: bool,
    **trust: Any,
) -> None:
    """Decrypt your recovery secret, sign it and upload it to a coordinator in recovery mode."""
    key = load_recovery_key(read_file(key_file, "recovery key"))
    encrypted = _encrypted_secret(read_file(secret_file, "recovery secret"), name)
    secret = decrypt_recovery_secret(encrypted, key)
    signature = sign_recovery_secret(secret, key)
    with open_client(coordinator, **trust) as c:
        if not no_transport_encryption:
            secret = encrypt_for_coordinator(secret, c.recovery_public_key())
        remaining, message = c.recover(secret, signature)
    out.print(message)
    if remaining == 0:
        out.print("the coordinator recovered its sealed state; verify it again before use")


def register(cli: click.Group) -> None:
    """Attach the recover command."""
    cli.add_command(recover)
