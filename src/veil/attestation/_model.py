"""Evidence and claims: the typed objects that cross the attestation boundary."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

TEEKind = Literal["sgx", "tdx", "sev-snp", "nvidia", "simulated"]
TEE_KINDS: tuple[TEEKind, ...] = ("sgx", "tdx", "sev-snp", "nvidia", "simulated")
REPORT_DATA_SIZE = 64
MAX_EVIDENCE_SIZE = 64 * 1024


@dataclass(frozen=True)
class Evidence:
    """Opaque TEE evidence as produced by an issuer, tagged with the TEE that made it."""

    tee: TEEKind
    raw: bytes


@dataclass(frozen=True)
class Claims:
    """What verified evidence says about the workload that produced it.

    ``unique_id`` is MRENCLAVE (SGX), MRTD (TDX), MEASUREMENT (SNP) or the simulated measurement;
    ``signer_id`` is MRSIGNER or its equivalent. ``report_data`` is the 64 bytes the workload
    bound into its evidence.
    """

    tee: TEEKind
    unique_id: bytes
    signer_id: bytes
    product_id: int
    security_version: int
    debug: bool
    report_data: bytes
    tcb_status: str = "UpToDate"
    advisories: tuple[str, ...] = field(default_factory=tuple)
    fields: Mapping[str, object] = field(default_factory=dict)

    def describe(self) -> dict[str, object]:
        """A JSON-friendly view (hex for bytes) for logs and CLI output; holds no secrets."""
        return {
            "tee": self.tee,
            "unique_id": self.unique_id.hex(),
            "signer_id": self.signer_id.hex(),
            "product_id": self.product_id,
            "security_version": self.security_version,
            "debug": self.debug,
            "tcb_status": self.tcb_status,
            "advisories": list(self.advisories),
        }
