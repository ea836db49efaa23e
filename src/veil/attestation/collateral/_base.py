"""The collateral-source seam and the argument checks every source shares."""

from __future__ import annotations

import re
from typing import Protocol

from veil.errors import ConfigurationError

__all__ = ["CollateralSource", "check_dcap_args", "check_snp_args", "vcek_query"]

_FMSPC = re.compile(r"[0-9A-Fa-f]{12}")
_PRODUCT = re.compile(r"[A-Za-z][A-Za-z0-9-]{0,31}")
_CAS = ("processor", "platform")
_TEES = ("sgx", "tdx")


class CollateralSource(Protocol):
    """Where verification collateral comes from (a directory, Intel PCS/PCCS and AMD KDS, …)."""

    def dcap_collateral(self, *, fmspc: str, ca: str, tee: str) -> bytes:
        """QuoteCollateralV3 JSON (UTF-8) for an FMSPC, PCK CA ("processor"/"platform") and TEE."""
        ...

    def snp_vcek(self, *, product: str, chip_id: bytes, reported_tcb: bytes) -> bytes:
        """The DER VCEK of a chip at a REPORTED_TCB, for ``product`` (Milan, Genoa, Turin)."""
        ...


def check_dcap_args(fmspc: str, ca: str, tee: str) -> str:
    """Validate DCAP lookup arguments (they end up in URLs and paths); the FMSPC in upper case."""
    if not _FMSPC.fullmatch(fmspc):
        raise ConfigurationError(f"FMSPC must be 12 hex digits, got {fmspc!r}")
    if ca not in _CAS:
        raise ConfigurationError(f"PCK CA must be 'processor' or 'platform', got {ca!r}")
    if tee not in _TEES:
        raise ConfigurationError(f"DCAP TEE must be 'sgx' or 'tdx', got {tee!r}")
    return fmspc.upper()


def check_snp_args(product: str, chip_id: bytes, reported_tcb: bytes) -> None:
    """Validate VCEK lookup arguments (they end up in URLs and paths)."""
    if not _PRODUCT.fullmatch(product):
        raise ConfigurationError(
            f"product must be an AMD product name such as Milan, got {product!r}"
        )
    if len(chip_id) != 64:
        raise ConfigurationError(f"CHIP_ID must be 64 bytes, got {len(chip_id)}")
    if len(reported_tcb) != 8:
        raise ConfigurationError(f"REPORTED_TCB must be 8 bytes, got {len(reported_tcb)}")


def vcek_query(product: str, chip_id: bytes, reported_tcb: bytes) -> tuple[str, dict[str, str]]:
    """The KDS hwID path segment and SPL query (VCEK spec §4.1; Turin: 8-byte hwID, fmcSPL)."""
    check_snp_args(product, chip_id, reported_tcb)
    t = reported_tcb
    if product == "Turin":
        spl = {"fmcSPL": t[0], "blSPL": t[1], "teeSPL": t[2], "snpSPL": t[3], "ucodeSPL": t[7]}
        return chip_id[:8].hex(), {k: str(v) for k, v in spl.items()}
    spl = {"blSPL": t[0], "teeSPL": t[1], "snpSPL": t[6], "ucodeSPL": t[7]}
    return chip_id.hex(), {k: str(v) for k, v in spl.items()}
