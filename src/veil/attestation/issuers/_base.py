"""The evidence-issuer seam and helpers shared by the issuers."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from veil.attestation._model import MAX_EVIDENCE_SIZE, REPORT_DATA_SIZE, Evidence, TEEKind
from veil.errors import ConfigurationError, EnvironmentFailure

__all__ = ["EvidenceIssuer", "embedded_report_data"]

_SNP_REPORT_SIZE = 0x4A0


class EvidenceIssuer(Protocol):
    """Makes evidence of the TEE it runs in, binding 64 bytes of report data into it."""

    tee: TEEKind

    def issue(self, report_data: bytes) -> Evidence:
        """Evidence whose signed report data is ``report_data`` (exactly 64 bytes)."""
        ...


def embedded_report_data(tee: TEEKind, blob: bytes) -> bytes | None:
    """Where the hardware put REPORTDATA in a quote/report (LAYOUT.md §2, §3, §4, §7); None if unknown.

    Not a verification: issuers use it to notice that the device answered for another request.
    """
    if tee == "sev-snp":
        return blob[0x50:0x90] if len(blob) >= _SNP_REPORT_SIZE else None
    if len(blob) < 48:
        return None
    version = int.from_bytes(blob[0:2], "little")
    if tee == "sgx" and version == 3:
        offset = 368
    elif tee == "tdx" and version == 4:
        offset = 568
    elif tee == "tdx" and version == 5:
        offset = 574
    else:
        return None
    end = offset + REPORT_DATA_SIZE
    return blob[offset:end] if len(blob) >= end else None


def check_report_data_size(report_data: bytes) -> None:
    """Issuers bind exactly 64 bytes; anything else is a programming or settings mistake."""
    if len(report_data) != REPORT_DATA_SIZE:
        raise ConfigurationError(
            f"report data must be exactly {REPORT_DATA_SIZE} bytes, got {len(report_data)}"
        )


def read_limited(path: Path, what: str) -> bytes:
    """Read a device file, refusing empty or oversized answers (``EnvironmentFailure``)."""
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_EVIDENCE_SIZE + 1)
    except OSError as exc:
        raise EnvironmentFailure(f"could not read {what} from {path}: {exc.strerror}") from None
    if not data:
        raise EnvironmentFailure(f"{path} returned no {what}; check the TEE's quoting service")
    if len(data) > MAX_EVIDENCE_SIZE:
        raise EnvironmentFailure(f"{path} returned more than {MAX_EVIDENCE_SIZE} bytes of {what}")
    return data


def write_device(path: Path, data: bytes) -> None:
    """Write a whole device file in one call (pseudo-files take one write)."""
    try:
        with path.open("wb", buffering=0) as handle:
            handle.write(data)
    except OSError as exc:
        raise EnvironmentFailure(f"could not write {path}: {exc.strerror}") from None
