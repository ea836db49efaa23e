"""Loading the shared DCAP vectors (SGX and TDX entries of /work/shared/vectors/index.json)."""

from __future__ import annotations

import datetime as dt
import functools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from veil.attestation.backends.dcap import DcapCollateral

VECTORS_DIR = Path(__file__).resolve().parents[4].parent / "shared" / "vectors"


def vectors_dir() -> Path:
    """The shared vector folder; raises (so collection fails loudly) when it is missing."""
    if not (VECTORS_DIR / "index.json").is_file():
        raise FileNotFoundError(f"shared test vectors not found at {VECTORS_DIR}")
    return VECTORS_DIR


@dataclass(frozen=True)
class DcapVector:
    """One DCAP vector: its index entry, decoded quote, collateral text and instants."""

    entry: dict[str, Any]
    quote: bytes
    collateral_text: bytes
    root_der: bytes

    @property
    def id(self) -> str:
        """The vector id."""
        return str(self.entry["id"])

    @property
    def collateral(self) -> DcapCollateral:
        """The vector's collateral, parsed."""
        return DcapCollateral.from_json(self.collateral_text)

    @property
    def now(self) -> dt.datetime:
        """``verify_at_unix`` as an aware UTC datetime."""
        return dt.datetime.fromtimestamp(self.entry["verify_at_unix"], dt.UTC)

    @property
    def window(self) -> tuple[dt.datetime, dt.datetime]:
        """The half-open collateral validity window [start, end)."""
        start, end = self.entry["valid_window"]
        return dt.datetime.fromisoformat(start), dt.datetime.fromisoformat(end)

    @property
    def accepts_cryptographically(self) -> bool:
        """Accept vectors and policy rejects (debug): every cryptographic check passes."""
        return self.entry["expect"] == "accept" or self.entry["reject_stage"] == "policy"


def _decode(raw: bytes, encoding: str) -> bytes:
    if encoding == "raw":
        return raw
    text = raw.decode("ascii").strip()
    text = text.removeprefix("0x")
    return bytes.fromhex("".join(text.split()))


@functools.cache
def dcap_vectors() -> tuple[DcapVector, ...]:
    """Every sgx/tdx vector of index.json, in index order."""
    base = vectors_dir()
    index = json.loads((base / "index.json").read_text())
    return tuple(
        DcapVector(
            entry=entry,
            quote=_decode((base / entry["evidence"]).read_bytes(), entry["evidence_encoding"]),
            collateral_text=(base / entry["collateral"]).read_bytes(),
            root_der=(base / entry["trust_anchor"]).read_bytes(),
        )
        for entry in index["vectors"]
        if entry["tee"] in ("sgx", "tdx")
    )


def vector(vector_id: str) -> DcapVector:
    """The DCAP vector with this id."""
    return next(v for v in dcap_vectors() if v.id == vector_id)
