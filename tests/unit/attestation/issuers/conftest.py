"""Fixtures: real quotes from the shared vectors, and fake Gramine / configfs-tsm device trees."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from veil.attestation.issuers import _base, _configfs_tsm

Vector = dict[str, Any]


@pytest.fixture(scope="session")
def vectors() -> Path:
    """The shared vector folder (/work/shared/vectors); fails loudly when it is missing."""
    path = Path(__file__).resolve().parents[4].parent / "shared" / "vectors"
    if not (path / "index.json").is_file():
        pytest.fail(f"shared test vectors not found at {path}")
    return path


@pytest.fixture(scope="session")
def index(vectors: Path) -> dict[str, Vector]:
    """Every vector of index.json, by id."""
    return {v["id"]: v for v in json.loads((vectors / "index.json").read_text())["vectors"]}


@pytest.fixture
def gramine_root(tmp_path: Path, vectors: Path) -> Path:
    """A fake /dev/attestation holding a real SGX v3 DCAP quote and a 16-byte seal key."""
    root = tmp_path / "dev-attestation"
    (root / "keys").mkdir(parents=True)
    (root / "attestation_type").write_text("dcap")
    (root / "quote").write_bytes((vectors / "phala-dcap-qvl/sample/sgx_quote").read_bytes())
    (root / "user_report_data").write_bytes(bytes(64))
    (root / "keys" / "_sgx_mrsigner").write_bytes(bytes(range(16)))
    return root


@dataclass
class FakeTsm:
    """A fake configfs-tsm report directory: ``mkdir`` creates the attributes, like the kernel.

    ``interleave`` is how many requests see another writer bump ``generation`` while ``outblob``
    is read. ``inblobs`` records what each entry's ``inblob`` held when it was removed.
    """

    root: Path
    provider: str
    outblob: bytes
    auxblob: bytes = b""
    interleave: int = 0
    inblobs: list[bytes] = field(default_factory=list)
    entries: list[Path] = field(default_factory=list)

    def populate(self, entry: Path) -> None:
        """What the kernel shows in a fresh entry (after our inblob write, generation is 1)."""
        self.entries.append(entry)
        (entry / "provider").write_text(self.provider + "\n")
        (entry / "generation").write_text("1\n")
        (entry / "inblob").write_bytes(b"")
        (entry / "outblob").write_bytes(self.outblob)
        (entry / "auxblob").write_bytes(self.auxblob)

    def remove(self, entry: Path) -> None:
        """``rmdir`` of an entry drops its attributes, like the kernel."""
        self.inblobs.append((entry / "inblob").read_bytes())
        for child in entry.iterdir():
            child.unlink()


@pytest.fixture
def make_tsm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., FakeTsm]:
    """Factory: a fake configfs-tsm tree for ``provider`` answering with ``outblob``."""

    def make(
        *, provider: str, outblob: bytes, auxblob: bytes = b"", interleave: int = 0
    ) -> FakeTsm:
        root = tmp_path / "tsm" / "report"
        root.mkdir(parents=True)
        fake = FakeTsm(root, provider, outblob, auxblob, interleave)
        real_mkdir, real_rmdir = Path.mkdir, Path.rmdir
        real_read = _base.read_limited

        def mkdir(self: Path, *args: Any, **kwargs: Any) -> None:
            real_mkdir(self, *args, **kwargs)
            if self.parent == root:
                fake.populate(self)

        def rmdir(self: Path) -> None:
            if self.parent == root:
                fake.remove(self)
            real_rmdir(self)

        def read_limited(path: Path, what: str) -> bytes:
            data = real_read(path, what)
            if path.name == "outblob" and fake.interleave > 0:
                fake.interleave -= 1
                (path.parent / "generation").write_text("2\n")
            return data

        monkeypatch.setattr(Path, "mkdir", mkdir)
        monkeypatch.setattr(Path, "rmdir", rmdir)
        monkeypatch.setattr(_configfs_tsm, "read_limited", read_limited)
        return fake

    return make
