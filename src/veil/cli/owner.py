"""Model owner commands: keys, model encryption, uploading the model key."""

from __future__ import annotations

from pathlib import Path

import click
import fsspec

from veil.cli._common import (
    coordinator_cert_option,
    coordinator_option,
    handle_errors,
    out,
    read_file,
    with_user_cert,
)
from veil.client import CoordinatorClient
from veil.errors import StorageError
from veil.modelcrypto import encrypt_stream, generate_key, load_key, model_associated_data


@click.group("model")
def model() -> None:
    """Model owner: create keys and encrypt models (any fsspec URL)."""


@model.command("keygen")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True)
@handle_errors
def keygen(output: Path) -> None:
    """Write a new random 256-bit model key (mode 0600)."""
    output.touch(mode=0o600, exist_ok=False)
    output.write_bytes(generate_key())
    out.print(f"wrote a new 256-bit model key to {output}")


@model.command("encrypt")
@click.argument("source")
@click.argument("destination")
@click.option(
    "--key", "key_file", type=click.Path(exists=True, dir_okay=False, path_type=Path), required=True
)
@click.option("--model-name", required=True, help="Model name; bound as associated data.")
@handle_errors
def encrypt(source: str, destination: str, key_file: Path, model_name: str) -> None:
    """Encrypt SOURCE to DESTINATION (local paths or fsspec URLs such as s3://…)."""
    key = load_key(read_file(key_file, "key file"))
    try:
        with fsspec.open(source, "rb") as src, fsspec.open(destination, "wb") as dst:
            n = encrypt_stream(src, dst, key=key, associated_data=model_associated_data(model_name))
    except OSError as exc:
        raise StorageError(f"cannot read {source} or write {destination}: {exc}") from None
    out.print(f"encrypted {source} → {destination} ({n} bytes) for model {model_name!r}")


@click.group("secret")
def secret() -> None:
    """Model owner: upload user-defined secrets such as the model key."""


@secret.command("set")
@click.argument("name")
@click.option(
    "--key-file", type=click.Path(exists=True, dir_okay=False, path_type=Path), required=True
)
@coordinator_option
@coordinator_cert_option
@with_user_cert
@handle_errors
def secret_set(
    name: str, key_file: Path, coordinator: str, coordinator_cert: Path, cert: Path, key: Path
) -> None:
    """Upload the secret NAME (needs a role with WriteSecret on it)."""
    value = load_key(read_file(key_file, "key file"))
    with CoordinatorClient(
        coordinator,
        root_pem=read_file(coordinator_cert, "coordinator certificate"),
        client_cert=(read_file(cert, "certificate"), read_file(key, "key")),
    ) as c:
        c.set_secrets({name: value})
    out.print(f"secret {name!r} set")


def register(cli: click.Group) -> None:
    """Attach the owner commands."""
    cli.add_command(model)
    cli.add_command(secret)
