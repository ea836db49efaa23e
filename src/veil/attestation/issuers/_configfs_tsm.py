"""TDX quotes and SEV-SNP reports through Linux configfs-tsm (``/sys/kernel/config/tsm/report``).

Interface: Linux ``Documentation/ABI/testing/configfs-tsm-report``. Each request gets its own
entry directory: ``mkdir`` it, check ``provider``, write ``inblob`` (64 bytes), read ``outblob``
(and, for SNP, ``auxblob``: the GHCB certificate table with the VCEK/VLEK, ASK and ARK), then
check that ``generation`` did not move while reading (another writer would bump it), and
``rmdir``. SNP evidence is ``report ‖ auxblob`` (see
:func:`veil.attestation.backends.sev_snp.split_snp_evidence`).
"""

from __future__ import annotations

import logging
import os
import secrets
from pathlib import Path
from typing import Literal

from veil.attestation._model import MAX_EVIDENCE_SIZE, Evidence, TEEKind
from veil.attestation.issuers._base import (
    check_report_data_size,
    embedded_report_data,
    read_limited,
    write_device,
)
from veil.errors import ConfigurationError, EnvironmentFailure

__all__ = ["ConfigfsTsmIssuer", "Provider"]

Provider = Literal["tdx_guest", "sev_guest"]
_TEE: dict[str, TEEKind] = {"tdx_guest": "tdx", "sev_guest": "sev-snp"}
_ATTEMPTS = 3
_log = logging.getLogger(__name__)


def _read_optional(path: Path) -> bytes:
    """``auxblob`` is empty (or absent on older kernels) when the host supplies no certificates."""
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_EVIDENCE_SIZE + 1)
    except FileNotFoundError:
        return b""
    except OSError as exc:
        raise EnvironmentFailure(f"could not read {path}: {exc.strerror}") from None
    if len(data) > MAX_EVIDENCE_SIZE:
        raise EnvironmentFailure(f"{path} returned more than {MAX_EVIDENCE_SIZE} bytes")
    return data


class ConfigfsTsmIssuer:
    """Issues TDX quotes (``tdx_guest``) or SEV-SNP reports (``sev_guest``) via configfs-tsm."""

    def __init__(
        self,
        root: Path = Path("/sys/kernel/config/tsm/report"),
        *,
        provider: Provider = "tdx_guest",
    ) -> None:
        if provider not in _TEE:
            raise ConfigurationError("provider must be 'tdx_guest' or 'sev_guest'")
        self.root = root
        self.provider = provider
        self.tee: TEEKind = _TEE[provider]

    def issue(self, report_data: bytes) -> Evidence:
        """Evidence whose REPORTDATA is ``report_data`` (64 bytes); retries interleaved requests."""
        check_report_data_size(report_data)
        if not self.root.is_dir():
            raise ConfigurationError(
                f"{self.root} does not exist: mount configfs and use a kernel with "
                f"CONFIG_TSM_REPORTS and the {self.provider} driver"
            )
        for attempt in range(1, _ATTEMPTS + 1):
            entry = self._make_entry()
            try:
                raw = self._request(entry, report_data)
            finally:
                self._remove_entry(entry)
            if raw is not None:
                return Evidence(tee=self.tee, raw=raw)
            _log.warning("configfs-tsm request %d/%d was interleaved, retrying", attempt, _ATTEMPTS)
        raise EnvironmentFailure(
            f"configfs-tsm generation kept changing under {self.root}; another process writes "
            "to the same entry, retry later"
        )

    def _make_entry(self) -> Path:
        entry = self.root / f"veil-{os.getpid()}-{secrets.token_hex(8)}"
        try:
            entry.mkdir()
        except PermissionError:
            raise ConfigurationError(
                f"cannot create {entry}: configfs-tsm needs root (or CAP_SYS_ADMIN)"
            ) from None
        except OSError as exc:
            raise ConfigurationError(f"cannot create {entry}: {exc.strerror}") from None
        return entry

    @staticmethod
    def _remove_entry(entry: Path) -> None:
        try:
            entry.rmdir()
        except OSError as exc:  # a leftover entry is harmless; say so and go on
            _log.warning("could not remove configfs-tsm entry %s: %s", entry, exc.strerror)

    def _generation(self, entry: Path) -> int:
        text = read_limited(entry / "generation", "generation").strip()
        try:
            return int(text)
        except ValueError:
            raise EnvironmentFailure(f"{entry / 'generation'} is not a number") from None

    def _request(self, entry: Path, report_data: bytes) -> bytes | None:
        """One request in a fresh entry; None when the generation moved (interleaved writer)."""
        provider = read_limited(entry / "provider", "provider").strip().decode("ascii", "replace")
        if provider != self.provider:
            raise ConfigurationError(
                f"{entry / 'provider'} is {provider!r}, not {self.provider!r}: this VM is not a "
                f"{self.tee} guest, configure the matching provider"
            )
        write_device(entry / "inblob", report_data)
        before = self._generation(entry)
        blob = read_limited(entry / "outblob", "evidence")
        aux = _read_optional(entry / "auxblob") if self.tee == "sev-snp" else b""
        if self._generation(entry) != before:
            return None
        if embedded_report_data(self.tee, blob) != report_data:
            raise EnvironmentFailure(
                f"{entry / 'outblob'} does not carry the report data written to inblob"
            )
        return blob + aux
