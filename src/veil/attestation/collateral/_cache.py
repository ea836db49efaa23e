"""A small on-disk cache of collateral files, written atomically."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from veil.errors import StorageError

__all__ = ["DiskCache"]


class DiskCache:
    """Files under one directory, by name; ``put`` replaces atomically (write, fsync, rename)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def get(self, name: str) -> bytes | None:
        """The cached bytes, or None when there are none."""
        try:
            return (self.directory / name).read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StorageError(
                f"could not read cache file {self.directory / name}: {exc.strerror}"
            ) from None

    def put(self, name: str, data: bytes) -> None:
        """Store ``data`` under ``name``, replacing what was there."""
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=f".{name}.")
            try:
                with os.fdopen(fd, "wb") as handle:
                    handle.write(data)
                    handle.flush()
                    os.fsync(handle.fileno())
                Path(tmp).replace(self.directory / name)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        except OSError as exc:
            raise StorageError(
                f"could not write cache file {self.directory / name}: {exc.strerror}"
            ) from None
