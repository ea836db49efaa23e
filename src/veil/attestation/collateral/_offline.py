"""Collateral from local files: a directory laid out by FMSPC / chip, or fixed file paths.

Directory layout (names are case-sensitive)::

    <directory>/dcap/<tee>/<FMSPC, upper-case hex>/<ca>.json      QuoteCollateralV3 JSON
    <directory>/snp/<product>/<CHIP_ID hex>/<REPORTED_TCB hex>.der  VCEK (DER)

Files are returned as stored; the verifiers check every signature. A file that plainly belongs to
another FMSPC, TEE or chip is refused as a configuration mistake.
"""

from __future__ import annotations

import json
from pathlib import Path

from cryptography import x509

from veil.attestation.backends._der import TAG_OCTET_STRING, DerError, read_single
from veil.attestation.backends.sev_snp import load_der_certificate
from veil.attestation.collateral._base import check_dcap_args, check_snp_args
from veil.errors import ConfigurationError, StorageError

__all__ = ["OfflineCollateral"]

_MAX_FILE = 4 * 1024 * 1024
_OID_HWID = x509.ObjectIdentifier("1.3.6.1.4.1.3704.1.4")


def _read(path: Path, what: str) -> bytes:
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise ConfigurationError(
            f"no {what} at {path}; put the file there or fetch it online"
        ) from None
    except OSError as exc:
        raise StorageError(f"could not read {path}: {exc.strerror}") from None
    if size > _MAX_FILE:
        raise ConfigurationError(f"{path} is larger than {_MAX_FILE} bytes; it is not {what}")
    try:
        return path.read_bytes()
    except OSError as exc:
        raise StorageError(f"could not read {path}: {exc.strerror}") from None


def _check_dcap_file(data: bytes, path: Path, fmspc: str, tee: str) -> None:
    try:
        tcb_info = json.loads(json.loads(data)["tcb_info"])
        got_fmspc, got_id = str(tcb_info["fmspc"]).upper(), str(tcb_info["id"])
    except (ValueError, KeyError, TypeError):
        raise ConfigurationError(f"{path} is not QuoteCollateralV3 JSON") from None
    if got_fmspc != fmspc or got_id != tee.upper():
        raise ConfigurationError(
            f"{path} holds {got_id} collateral for FMSPC {got_fmspc}, not {tee.upper()} {fmspc}"
        )


def _check_vcek_file(data: bytes, path: Path, chip_id: bytes) -> None:
    """Refuse a VCEK whose hwID names another chip (a VLEK has no hwID and passes)."""
    try:
        cert = load_der_certificate(data)
    except ValueError:
        raise ConfigurationError(f"{path} is not a DER certificate") from None
    try:
        ext = cert.extensions.get_extension_for_oid(_OID_HWID).value
    except x509.ExtensionNotFound:
        return
    raw = ext.value if isinstance(ext, x509.UnrecognizedExtension) else b""
    try:
        hwid = raw if len(raw) == 64 else read_single(raw, TAG_OCTET_STRING)
    except DerError:
        raise ConfigurationError(f"{path} has a malformed hwID extension") from None
    if any(chip_id) and hwid != chip_id:
        raise ConfigurationError(f"{path} is a VCEK for another chip than the one asked for")


class OfflineCollateral:
    """Collateral from a directory (see the module docstring), or from fixed files."""

    def __init__(
        self,
        directory: Path | None = None,
        *,
        dcap_file: Path | None = None,
        vcek_file: Path | None = None,
    ) -> None:
        self.directory = directory
        self.dcap_file = dcap_file
        self.vcek_file = vcek_file

    @classmethod
    def from_files(
        cls, *, dcap_collateral: Path | None = None, snp_vcek: Path | None = None
    ) -> OfflineCollateral:
        """A source that always serves these files (after checking they fit the request)."""
        return cls(None, dcap_file=dcap_collateral, vcek_file=snp_vcek)

    def _path(self, fixed: Path | None, *parts: str) -> Path:
        if fixed is not None:
            return fixed
        if self.directory is None:
            raise ConfigurationError("this offline collateral source has no file for that request")
        return self.directory.joinpath(*parts)

    def dcap_collateral(self, *, fmspc: str, ca: str, tee: str) -> bytes:
        """QuoteCollateralV3 JSON from ``dcap/<tee>/<FMSPC>/<ca>.json`` or the fixed file."""
        fmspc = check_dcap_args(fmspc, ca, tee)
        path = self._path(self.dcap_file, "dcap", tee, fmspc, f"{ca}.json")
        data = _read(path, "QuoteCollateralV3 JSON")
        _check_dcap_file(data, path, fmspc, tee)
        return data

    def snp_vcek(self, *, product: str, chip_id: bytes, reported_tcb: bytes) -> bytes:
        """The VCEK from ``snp/<product>/<CHIP_ID>/<REPORTED_TCB>.der`` or the fixed file."""
        check_snp_args(product, chip_id, reported_tcb)
        path = self._path(
            self.vcek_file, "snp", product, chip_id.hex(), f"{reported_tcb.hex()}.der"
        )
        data = _read(path, "VCEK certificate")
        _check_vcek_file(data, path, chip_id)
        return data
