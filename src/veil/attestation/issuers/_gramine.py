"""SGX DCAP quotes from inside a Gramine enclave, through the ``/dev/attestation`` pseudo-files.

Gramine documents the interface in "Attestation and Secret Provisioning" (``attestation_type``,
``user_report_data``, ``quote``, ``keys/<name>``). Writes and reads are serialised per issuer: the
pseudo-files are process-wide state.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Literal

from veil.attestation._model import Evidence, TEEKind
from veil.attestation.issuers._base import (
    check_report_data_size,
    embedded_report_data,
    read_limited,
    write_device,
)
from veil.errors import ConfigurationError, EnvironmentFailure

__all__ = ["GramineIssuer"]

_SEAL_KEY_SIZE = 16
_SEAL_KEY_NAMES = ("_sgx_mrenclave", "_sgx_mrsigner")


class GramineIssuer:
    """Issues SGX DCAP quotes through Gramine's ``/dev/attestation`` (``sgx.remote_attestation = "dcap"``)."""

    tee: TEEKind = "sgx"

    def __init__(self, root: Path = Path("/dev/attestation")) -> None:
        self.root = root
        self._lock = threading.Lock()

    def _require_dcap(self) -> None:
        path = self.root / "attestation_type"
        if not path.is_file():
            raise ConfigurationError(
                f'{path} does not exist: run inside Gramine with sgx.remote_attestation = "dcap"'
            )
        kind = read_limited(path, "attestation type").strip().decode("ascii", "replace")
        if kind != "dcap":
            raise ConfigurationError(
                f"{path} says {kind!r}, not 'dcap': set sgx.remote_attestation = \"dcap\" in the "
                "Gramine manifest"
            )

    def issue(self, report_data: bytes) -> Evidence:
        """An SGX quote v3 whose REPORTDATA is ``report_data`` (64 bytes)."""
        check_report_data_size(report_data)
        with self._lock:
            self._require_dcap()
            write_device(self.root / "user_report_data", report_data)
            quote = read_limited(self.root / "quote", "quote")
        if embedded_report_data(self.tee, quote) != report_data:
            raise EnvironmentFailure(
                f"{self.root / 'quote'} returned a quote for other report data; "
                "another writer used /dev/attestation concurrently, retry"
            )
        return Evidence(tee=self.tee, raw=quote)

    def seal_key(self, name: Literal["_sgx_mrenclave", "_sgx_mrsigner"] = "_sgx_mrsigner") -> bytes:
        """The 16-byte SGX seal key Gramine derives for ``name`` (EGETKEY, MRSIGNER policy by default)."""
        if name not in _SEAL_KEY_NAMES:
            raise ConfigurationError(f"seal key name must be one of {', '.join(_SEAL_KEY_NAMES)}")
        path = self.root / "keys" / name
        if not path.is_file():
            raise ConfigurationError(f"{path} does not exist: run inside a Gramine SGX enclave")
        key = read_limited(path, "seal key")
        if len(key) != _SEAL_KEY_SIZE:
            raise EnvironmentFailure(f"{path} returned a key that is not {_SEAL_KEY_SIZE} bytes")
        return key
