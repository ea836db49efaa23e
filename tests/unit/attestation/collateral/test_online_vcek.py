"""OnlineCollateral fetches VCEKs from AMD KDS by chip and TCB, and caches them while valid."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from veil.attestation.backends.sev_snp import parse_snp_report, verify_snp_report
from veil.attestation.collateral import OnlineCollateral, vcek_query
from veil.errors import ConfigurationError, NetworkError, ProtocolError

from .conftest import SNP_DIR, FakeServices

NOW = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)


def kds(services: FakeServices, tmp_path: Path, **kwargs: object) -> OnlineCollateral:
    """An online source whose KDS is the loopback server."""
    return OnlineCollateral(
        amd_kds_url=services.url,
        cache_dir=tmp_path / "cache",
        clock=lambda: NOW,
        **kwargs,  # type: ignore[arg-type]
    )


def serve_trustee_vcek(services: FakeServices, vectors: Path) -> tuple[bytes, bytes]:
    """Serve the trustee VCEK at its KDS path; return (report, VCEK DER)."""
    report = (vectors / SNP_DIR / "test-report.bin").read_bytes()
    vcek = (vectors / SNP_DIR / "test-vcek.der").read_bytes()
    parsed = parse_snp_report(report)
    path = f"/vcek/v1/Milan/{parsed.chip_id.hex()}?blSPL=3&teeSPL=0&snpSPL=8&ucodeSPL=115"
    services.routes[path] = (200, {"Content-Type": "application/pkix-cert"}, vcek)
    return report, vcek


def test_the_vcek_is_fetched_by_chip_and_tcb_and_verifies_the_report(
    services: FakeServices, tmp_path: Path, vectors: Path
) -> None:
    """The KDS answer is the VCEK that verifies the report it was asked for."""
    report, vcek = serve_trustee_vcek(services, vectors)
    parsed = parse_snp_report(report)
    got = kds(services, tmp_path).snp_vcek(
        product="Milan", chip_id=parsed.chip_id, reported_tcb=parsed.reported_tcb
    )
    assert got == vcek
    pem = (
        vectors / "confidential-containers-trustee/deps/verifier/src/snp/milan_ask_ark_asvk.pem"
    ).read_bytes()
    anchors = [c.public_bytes(Encoding.DER) for c in x509.load_pem_x509_certificates(pem)]
    verify_snp_report(report, certs=[got], trust_anchors=anchors, now=NOW)


def test_a_cached_vcek_is_reused_while_valid(
    services: FakeServices, tmp_path: Path, vectors: Path
) -> None:
    """A second lookup for the same chip and TCB does not ask KDS again."""
    report, _ = serve_trustee_vcek(services, vectors)
    parsed = parse_snp_report(report)
    for _ in range(2):
        kds(services, tmp_path).snp_vcek(
            product="Milan", chip_id=parsed.chip_id, reported_tcb=parsed.reported_tcb
        )
    assert len(services.hits) == 1


def test_a_kds_answer_that_is_not_a_certificate_is_a_protocol_error(
    services: FakeServices, tmp_path: Path, vectors: Path
) -> None:
    """KDS error pages are not taken for certificates."""
    report, _ = serve_trustee_vcek(services, vectors)
    parsed = parse_snp_report(report)
    for path in services.routes:
        services.routes[path] = (200, {}, b"<html>rate limited</html>")
    with pytest.raises(ProtocolError):
        kds(services, tmp_path).snp_vcek(
            product="Milan", chip_id=parsed.chip_id, reported_tcb=parsed.reported_tcb
        )


def test_kds_rate_limiting_is_a_network_error(services: FakeServices, tmp_path: Path) -> None:
    """HTTP 429 (or any non-200) is reported with its status."""
    services.down = True
    with pytest.raises(NetworkError, match="503"):
        kds(services, tmp_path).snp_vcek(product="Milan", chip_id=bytes(64), reported_tcb=bytes(8))


def test_turin_queries_use_the_short_hwid_and_fmc_spl() -> None:
    """Turin VCEKs are looked up by the first 8 CHIP_ID bytes and include fmcSPL."""
    hwid, params = vcek_query("Turin", bytes(range(64)), bytes([1, 2, 3, 4, 0, 0, 0, 5]))
    assert hwid == bytes(range(8)).hex()
    assert params == {"fmcSPL": "1", "blSPL": "2", "teeSPL": "3", "snpSPL": "4", "ucodeSPL": "5"}


@pytest.mark.parametrize(
    ("product", "chip_id", "tcb"),
    [
        ("../Milan", bytes(64), bytes(8)),
        ("Milan", bytes(63), bytes(8)),
        ("Milan", bytes(64), bytes(7)),
    ],
)
def test_bad_vcek_lookup_arguments_are_configuration_errors(
    tmp_path: Path, product: str, chip_id: bytes, tcb: bytes
) -> None:
    """Product, CHIP_ID and REPORTED_TCB are checked before they reach a URL or a path."""
    with pytest.raises(ConfigurationError):
        OnlineCollateral(cache_dir=tmp_path).snp_vcek(
            product=product, chip_id=chip_id, reported_tcb=tcb
        )
