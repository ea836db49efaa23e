"""ConfigfsTsmIssuer requests TDX quotes and SNP reports through a configfs-tsm entry."""

from __future__ import annotations

import datetime as dt
import re
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from veil.attestation.backends.sev_snp import split_snp_evidence, verify_snp_report
from veil.attestation.issuers import ConfigfsTsmIssuer, EvidenceIssuer
from veil.errors import ConfigurationError, EnvironmentFailure, EvidenceError

from .conftest import FakeTsm

TDX_QUOTE = "phala-dcap-qvl/sample/tdx_quote"
SNP_DIR = "confidential-containers-trustee/deps/verifier/test_data/snp"
VCEK_GUID = uuid.UUID("63da758d-e664-4564-adc5-f4b93be8accd").bytes


def cert_table(*entries: tuple[bytes, bytes]) -> bytes:
    """A GHCB certificate table: (GUID, offset, length) entries, a zero entry, then the certs."""
    header = 24 * (len(entries) + 1)
    table, blobs = b"", b""
    for guid, der in entries:
        table += guid + (header + len(blobs)).to_bytes(4, "little") + len(der).to_bytes(4, "little")
        blobs += der
    return table + bytes(24) + blobs


def test_tdx_quote_is_read_and_the_entry_removed(
    make_tsm: Callable[..., FakeTsm], vectors: Path
) -> None:
    """The evidence is outblob, inblob held the report data, and the entry is gone afterwards."""
    quote = (vectors / TDX_QUOTE).read_bytes()
    fake = make_tsm(provider="tdx_guest", outblob=quote)
    issuer: EvidenceIssuer = ConfigfsTsmIssuer(fake.root, provider="tdx_guest")
    evidence = issuer.issue(quote[568:632])
    assert (evidence.tee, evidence.raw) == ("tdx", quote)
    assert fake.inblobs == [quote[568:632]]
    assert [e.exists() for e in fake.entries] == [False]


def test_snp_evidence_carries_the_auxblob_certificates_and_verifies(
    make_tsm: Callable[..., FakeTsm], vectors: Path
) -> None:
    """SNP evidence is report ‖ auxblob; split, it verifies against the pinned Milan ARK."""
    report = (vectors / SNP_DIR / "test-report.bin").read_bytes()
    vcek = (vectors / SNP_DIR / "test-vcek.der").read_bytes()
    fake = make_tsm(provider="sev_guest", outblob=report, auxblob=cert_table((VCEK_GUID, vcek)))
    evidence = ConfigfsTsmIssuer(fake.root, provider="sev_guest").issue(report[0x50:0x90])
    assert evidence.tee == "sev-snp"
    assert evidence.raw == report + fake.auxblob
    got_report, certs = split_snp_evidence(evidence.raw)
    assert (got_report, certs) == (report, [vcek])
    pem = vectors / "confidential-containers-trustee/deps/verifier/src/snp/milan_ask_ark_asvk.pem"
    anchors = [
        c.public_bytes(Encoding.DER) for c in x509.load_pem_x509_certificates(pem.read_bytes())
    ]
    claims = verify_snp_report(
        got_report, certs=certs, trust_anchors=anchors, now=dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
    )
    assert claims.report_data == report[0x50:0x90]


def test_a_certificate_table_entry_outside_the_table_is_a_parse_failure(vectors: Path) -> None:
    """A table entry that points past the auxblob is refused."""
    report = (vectors / SNP_DIR / "test-report.bin").read_bytes()
    bad = VCEK_GUID + (48).to_bytes(4, "little") + (4096).to_bytes(4, "little") + bytes(24)
    with pytest.raises(EvidenceError) as caught:
        split_snp_evidence(report + bad)
    assert caught.value.step == "parse"


def test_an_interleaved_writer_causes_a_retry(
    make_tsm: Callable[..., FakeTsm], vectors: Path
) -> None:
    """When generation moves during the read, a fresh entry is used and its answer returned."""
    quote = (vectors / TDX_QUOTE).read_bytes()
    fake = make_tsm(provider="tdx_guest", outblob=quote, interleave=1)
    evidence = ConfigfsTsmIssuer(fake.root, provider="tdx_guest").issue(quote[568:632])
    assert evidence.raw == quote
    assert len(fake.entries) == 2
    assert not any(e.exists() for e in fake.entries)


def test_a_generation_that_keeps_moving_is_an_environment_failure(
    make_tsm: Callable[..., FakeTsm], vectors: Path
) -> None:
    """After three interleaved attempts the issuer gives up and says why."""
    quote = (vectors / TDX_QUOTE).read_bytes()
    fake = make_tsm(provider="tdx_guest", outblob=quote, interleave=99)
    with pytest.raises(EnvironmentFailure, match="generation"):
        ConfigfsTsmIssuer(fake.root, provider="tdx_guest").issue(quote[568:632])
    assert len(fake.entries) == 3
    assert not any(e.exists() for e in fake.entries)


def test_a_missing_configfs_tree_is_a_configuration_error_naming_the_path(tmp_path: Path) -> None:
    """Without configfs-tsm the error names the directory that is missing."""
    root = tmp_path / "no-tsm"
    with pytest.raises(ConfigurationError, match=re.escape(str(root))):
        ConfigfsTsmIssuer(root, provider="tdx_guest").issue(bytes(64))


def test_another_provider_is_a_configuration_error(
    make_tsm: Callable[..., FakeTsm], vectors: Path
) -> None:
    """A TDX issuer on an SNP guest says so instead of returning the wrong evidence."""
    report = (vectors / SNP_DIR / "test-report.bin").read_bytes()
    fake = make_tsm(provider="sev_guest", outblob=report)
    with pytest.raises(ConfigurationError, match="sev_guest"):
        ConfigfsTsmIssuer(fake.root, provider="tdx_guest").issue(bytes(64))
    assert not any(e.exists() for e in fake.entries)


def test_an_outblob_for_other_report_data_is_an_environment_failure(
    make_tsm: Callable[..., FakeTsm], vectors: Path
) -> None:
    """A quote that does not carry the inblob's report data is not returned."""
    quote = (vectors / TDX_QUOTE).read_bytes()
    fake = make_tsm(provider="tdx_guest", outblob=quote)
    with pytest.raises(EnvironmentFailure, match="report data"):
        ConfigfsTsmIssuer(fake.root, provider="tdx_guest").issue(b"\x07" * 64)
    assert fake.inblobs == [b"\x07" * 64]


def test_an_unknown_provider_is_a_configuration_error(tmp_path: Path) -> None:
    """Only tdx_guest and sev_guest are supported providers."""
    with pytest.raises(ConfigurationError):
        ConfigfsTsmIssuer(tmp_path, provider="arm_cca_guest")  # type: ignore[arg-type]
