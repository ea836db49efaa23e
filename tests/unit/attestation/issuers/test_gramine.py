"""GramineIssuer writes report data to /dev/attestation and returns the quote it reads back."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest

from veil.attestation.issuers import EvidenceIssuer, GramineIssuer
from veil.errors import ConfigurationError, EnvironmentFailure

from .conftest import Vector

SGX_REPORT_DATA = slice(368, 432)


def test_issue_returns_the_quote_and_writes_the_report_data(
    gramine_root: Path, index: dict[str, Vector]
) -> None:
    """The evidence is the real SGX quote, and the report data went to user_report_data."""
    quote = (gramine_root / "quote").read_bytes()
    report_data = quote[SGX_REPORT_DATA]
    issuer: EvidenceIssuer = GramineIssuer(root=gramine_root)
    evidence = issuer.issue(report_data)
    assert evidence.tee == "sgx"
    assert evidence.raw == quote
    assert hashlib.sha256(evidence.raw).hexdigest() == index["dcapqvl-sgx-v3"]["evidence_sha256"]
    assert (gramine_root / "user_report_data").read_bytes() == report_data


def test_a_quote_for_other_report_data_is_an_environment_failure(gramine_root: Path) -> None:
    """A quote that does not carry the report data just written is not returned."""
    with pytest.raises(EnvironmentFailure, match="other report data"):
        GramineIssuer(root=gramine_root).issue(b"\x01" * 64)
    assert (gramine_root / "user_report_data").read_bytes() == b"\x01" * 64


def test_a_missing_device_is_a_configuration_error_naming_the_path(tmp_path: Path) -> None:
    """Outside Gramine there is no /dev/attestation, and the error says which path is missing."""
    root = tmp_path / "nowhere"
    with pytest.raises(ConfigurationError, match=re.escape(str(root / "attestation_type"))):
        GramineIssuer(root=root).issue(bytes(64))


def test_an_attestation_type_other_than_dcap_is_a_configuration_error(gramine_root: Path) -> None:
    """EPID or "none" attestation cannot produce DCAP quotes."""
    (gramine_root / "attestation_type").write_text("epid")
    with pytest.raises(ConfigurationError, match="'epid'"):
        GramineIssuer(root=gramine_root).issue(bytes(64))


def test_report_data_must_be_64_bytes(gramine_root: Path) -> None:
    """Issuers bind exactly 64 bytes of report data."""
    with pytest.raises(ConfigurationError, match="64 bytes"):
        GramineIssuer(root=gramine_root).issue(bytes(32))


def test_seal_key_reads_the_16_byte_mrsigner_key(gramine_root: Path) -> None:
    """The default seal key is Gramine's _sgx_mrsigner key."""
    assert GramineIssuer(root=gramine_root).seal_key() == bytes(range(16))


def test_a_missing_seal_key_is_a_configuration_error_naming_the_path(gramine_root: Path) -> None:
    """Asking for the MRENCLAVE key where the device has none names the missing file."""
    with pytest.raises(ConfigurationError, match="_sgx_mrenclave"):
        GramineIssuer(root=gramine_root).seal_key("_sgx_mrenclave")


def test_a_seal_key_of_the_wrong_size_is_an_environment_failure(gramine_root: Path) -> None:
    """A key file that is not 16 bytes is refused rather than used."""
    (gramine_root / "keys" / "_sgx_mrsigner").write_bytes(bytes(8))
    with pytest.raises(EnvironmentFailure):
        GramineIssuer(root=gramine_root).seal_key()


def test_an_unknown_seal_key_name_is_a_configuration_error(gramine_root: Path) -> None:
    """Only Gramine's two SGX seal key names are allowed (no path tricks)."""
    with pytest.raises(ConfigurationError):
        GramineIssuer(root=gramine_root).seal_key("../quote")  # type: ignore[arg-type]
