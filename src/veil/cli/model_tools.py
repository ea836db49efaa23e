"""Model owner commands ``veil model decrypt`` and ``veil model inspect`` (any fsspec URL).

Attached to the ``model`` group of :mod:`veil.cli.owner`. ``inspect`` reads only the header and
the size: it never needs, and never prints, a key.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, BinaryIO

import click
import fsspec
from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn

from veil.cli._common import handle_errors, out, read_file
from veil.cli.owner import model as model_group
from veil.errors import ProtocolError, StorageError
from veil.modelcrypto import (
    SEGMENT_SIZE,
    decrypt_stream,
    load_key,
    model_associated_data,
    plaintext_size,
    read_header,
)

_PROGRESS_MIN_BYTES = 64 * 1024 * 1024  # smaller files finish before a bar is worth drawing
_CHUNK = 8 * 1024 * 1024


class _Counting:
    """A read-only file wrapper that advances a progress bar."""

    def __init__(self, raw: BinaryIO, advance: Any) -> None:
        self._raw = raw
        self._advance = advance

    def read(self, size: int = -1) -> bytes:
        data = self._raw.read(size)
        self._advance(len(data))
        return data

    def readinto(self, buffer: Any) -> int:
        count = self._raw.readinto(buffer)  # type: ignore[attr-defined]
        self._advance(count or 0)
        return int(count or 0)

    def seekable(self) -> bool:
        return bool(self._raw.seekable())

    def seek(self, offset: int, whence: int = 0) -> int:
        return int(self._raw.seek(offset, whence))

    def tell(self) -> int:
        return int(self._raw.tell())


def _size(url: str) -> int:
    try:
        filesystem, path = fsspec.core.url_to_fs(url)
        return int(filesystem.size(path))
    except (OSError, ValueError) as exc:
        raise StorageError(f"cannot read {url}: {exc}") from None


def _progress(total: int, description: str) -> Progress:
    return Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        disable=total < _PROGRESS_MIN_BYTES,
        transient=True,
    )


@model_group.command("decrypt")
@click.argument("source")
@click.argument("destination")
@click.option(
    "--key", "key_file", type=click.Path(exists=True, dir_okay=False, path_type=Path), required=True
)
@click.option("--model-name", required=True, help="Model name the file was encrypted for.")
@handle_errors
def decrypt(source: str, destination: str, key_file: Path, model_name: str) -> None:
    """Decrypt SOURCE to DESTINATION (local paths or fsspec URLs); nothing is written on failure.

    The whole file is authenticated in memory before the first plaintext byte is written.
    """
    key = load_key(read_file(key_file, "key file"))
    total = _size(source)
    with _progress(total, "decrypting") as progress:
        task = progress.add_task("decrypting", total=total)
        try:
            with fsspec.open(source, "rb") as raw:
                counted = _Counting(raw, lambda n: progress.advance(task, n))
                plaintext = decrypt_stream(
                    counted,  # type: ignore[arg-type]
                    key=key,
                    associated_data=model_associated_data(model_name),
                )
        except OSError as exc:
            raise StorageError(f"cannot read {source}: {exc}") from None
        try:
            writing = progress.add_task("writing", total=len(plaintext))
            with fsspec.open(destination, "wb") as dst:
                view = memoryview(plaintext)
                for start in range(0, len(view), _CHUNK):
                    dst.write(view[start : start + _CHUNK])
                    progress.advance(writing, len(view[start : start + _CHUNK]))
        except OSError as exc:
            raise StorageError(f"cannot write {destination}: {exc}") from None
        finally:
            plaintext[:] = bytes(len(plaintext))
    out.print(f"decrypted {source} → {destination} ({total} bytes) for model {model_name!r}")


@model_group.command("inspect")
@click.argument("source")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@handle_errors
def inspect(source: str, as_json: bool) -> None:
    """Show the header of an encrypted model: format, segment size, sizes (never a key)."""
    size = _size(source)
    try:
        with fsspec.open(source, "rb") as src:
            head = src.read(64)
    except OSError as exc:
        raise StorageError(f"cannot read {source}: {exc}") from None
    if not head:
        raise ProtocolError(f"{source} is empty; it is not an encrypted model.")
    header = read_header(head)
    info = {
        "source": source,
        "format": "Tink AES256_GCM_HKDF_1MB streaming AEAD (veil model format)",
        "header_length": header.header_length,
        "segment_size": SEGMENT_SIZE,
        "salt": header.salt.hex(),
        "nonce_prefix": header.nonce_prefix.hex(),
        "ciphertext_size": size,
        "plaintext_size": plaintext_size(size),
        "segments": max(1, -(-size // SEGMENT_SIZE)),
        "associated_data": "veil-model:v1:<model name> (not stored in the file)",
    }
    if as_json:
        out.print(json.dumps(info, indent=2))
        return
    for name, value in info.items():
        out.print(f"{name:16} {value}")
