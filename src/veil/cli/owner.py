"""Model owner commands: keys, model encryption, uploading the model key."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import click
import fsspec

from veil.cli._common import coordinator_option, handle_errors, out, read_file, with_user_cert
from veil.cli._trust import open_client, with_trust
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
    """Model owner: upload and read user-defined secrets such as the model key."""


@secret.command("set")
@click.argument("name")
@click.option(
    "--key-file", type=click.Path(exists=True, dir_okay=False, path_type=Path), required=True
)
@coordinator_option
@with_trust
@with_user_cert
@handle_errors
def secret_set(name: str, key_file: Path, coordinator: str, **trust: Any) -> None:
    """Upload the secret NAME (needs a role with WriteSecret on it)."""
    value = load_key(read_file(key_file, "key file"))
    with open_client(coordinator, **trust) as c:
        c.set_secrets({name: value})
    out.print(f"secret {name!r} set")


@secret.command("get")
@click.argument("names", nargs=-1, required=True)
@coordinator_option
@with_trust
@with_user_cert
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the secrets (JSON, base64 fields) to this file (mode 0600) instead of stdout.",
)
@handle_errors
def secret_get(names: tuple[str, ...], coordinator: str, output: Path | None, **trust: Any) -> None:
    """Read the secrets NAMES (needs a role with ReadSecret on each)."""
    with open_client(coordinator, **trust) as c:
        values = c.get_secrets(*names)
    doc = {
        name: {k: base64.b64encode(v).decode() for k, v in fields.items()}
        for name, fields in values.items()
    }
    text = json.dumps(doc, indent=2)
    if output is None:
        out.print(text, markup=False)
        return
    output.touch(mode=0o600)
    output.write_text(text)
    out.print(f"saved {len(doc)} secret(s) to {output}")


def register(cli: click.Group) -> None:
    """Attach the owner commands."""
    cli.add_command(model)
    cli.add_command(secret)
