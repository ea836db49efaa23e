"""OfflineCollateral serves collateral from a directory layout or fixed files, and says what is missing."""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path

import pytest

from veil.attestation.backends.sev_snp import parse_snp_report
from veil.attestation.collateral import CollateralSource, OfflineCollateral, collateral_next_update
from veil.errors import ConfigurationError

from .conftest import SNP_DIR, dcap_facts

SGX = "phala-dcap-qvl/sample/sgx_quote_collateral.json"
TDX = "phala-dcap-qvl/sample/tdx_quote_collateral.json"


def test_dcap_collateral_is_found_by_tee_fmspc_and_ca(tmp_path: Path, vectors: Path) -> None:
    """``dcap/<tee>/<FMSPC>/<ca>.json`` is returned byte for byte."""
    data = (vectors / SGX).read_bytes()
    facts = dcap_facts(json.loads(data))
    target = tmp_path / "dcap" / facts.tee / facts.fmspc / f"{facts.ca}.json"
    target.parent.mkdir(parents=True)
    target.write_bytes(data)
    source: CollateralSource = OfflineCollateral(tmp_path)
    assert source.dcap_collateral(fmspc=facts.fmspc.lower(), ca=facts.ca, tee=facts.tee) == data


def test_missing_dcap_collateral_names_the_expected_path(tmp_path: Path) -> None:
    """The error says exactly where the file should be."""
    expected = tmp_path / "dcap" / "tdx" / "B0C06F000000" / "platform.json"
    with pytest.raises(ConfigurationError, match=re.escape(str(expected))):
        OfflineCollateral(tmp_path).dcap_collateral(fmspc="b0c06f000000", ca="platform", tee="tdx")


def test_a_fixed_file_for_another_tee_is_refused(vectors: Path) -> None:
    """A fixed SGX collateral file is not handed out for a TDX request."""
    source = OfflineCollateral.from_files(dcap_collateral=vectors / SGX)
    facts = dcap_facts(json.loads((vectors / SGX).read_bytes()))
    with pytest.raises(ConfigurationError, match="SGX collateral"):
        source.dcap_collateral(fmspc=facts.fmspc, ca=facts.ca, tee="tdx")


def test_a_fixed_file_for_the_right_fmspc_is_served(vectors: Path) -> None:
    """A fixed file that matches the request is served as stored."""
    data = (vectors / TDX).read_bytes()
    facts = dcap_facts(json.loads(data))
    source = OfflineCollateral.from_files(dcap_collateral=vectors / TDX)
    assert source.dcap_collateral(fmspc=facts.fmspc, ca=facts.ca, tee=facts.tee) == data


def test_the_vcek_is_found_by_product_chip_and_tcb(tmp_path: Path, vectors: Path) -> None:
    """``snp/<product>/<CHIP_ID>/<REPORTED_TCB>.der`` is returned byte for byte."""
    parsed = parse_snp_report((vectors / SNP_DIR / "test-report.bin").read_bytes())
    vcek = (vectors / SNP_DIR / "test-vcek.der").read_bytes()
    target = tmp_path / "snp" / "Milan" / parsed.chip_id.hex() / f"{parsed.reported_tcb.hex()}.der"
    target.parent.mkdir(parents=True)
    target.write_bytes(vcek)
    got = OfflineCollateral(tmp_path).snp_vcek(
        product="Milan", chip_id=parsed.chip_id, reported_tcb=parsed.reported_tcb
    )
    assert got == vcek


def test_a_fixed_vcek_for_another_chip_is_refused(vectors: Path) -> None:
    """The go-sev-guest VCEK is not handed out for the trustee report's chip."""
    parsed = parse_snp_report((vectors / SNP_DIR / "test-report.bin").read_bytes())
    source = OfflineCollateral.from_files(
        snp_vcek=vectors / "google-go-sev-guest/verify/testdata/vcek.testcer"
    )
    with pytest.raises(ConfigurationError, match="another chip"):
        source.snp_vcek(product="Milan", chip_id=parsed.chip_id, reported_tcb=parsed.reported_tcb)


def test_a_source_without_a_directory_or_file_says_so() -> None:
    """Asking a fixed-file source for something it has no file for is a configuration error."""
    with pytest.raises(ConfigurationError):
        OfflineCollateral.from_files().snp_vcek(
            product="Milan", chip_id=bytes(64), reported_tcb=bytes(8)
        )


def test_next_update_is_the_end_of_the_vector_valid_window(vectors: Path) -> None:
    """The earliest nextUpdate equals the end of the index's valid_window for dcapqvl-sgx-v3."""
    index = json.loads((vectors / "index.json").read_text())
    vector = next(v for v in index["vectors"] if v["id"] == "dcapqvl-sgx-v3")
    end = collateral_next_update((vectors / vector["collateral"]).read_bytes())
    assert end == dt.datetime.fromisoformat(vector["valid_window"][1].replace("Z", "+00:00"))
