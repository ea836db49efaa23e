"""OnlineCollateral assembles byte-exact QuoteCollateralV3 from PCS v4 answers and caches it."""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from veil.attestation.collateral import (
    CollateralSource,
    HttpGet,
    OnlineCollateral,
    collateral_next_update,
)
from veil.errors import ConfigurationError, NetworkError, ProtocolError

from .conftest import DCAP_COLLATERAL, FakeServices

Clock = Callable[[], dt.datetime]
SGX = "phala-dcap-qvl/sample/sgx_quote_collateral.json"


def at(when: dt.datetime) -> Clock:
    """A clock fixed at ``when``."""
    return lambda: when


def online(
    services: FakeServices, tmp_path: Path, clock: Clock, **kwargs: object
) -> OnlineCollateral:
    """An online source pointed at the loopback services, caching under ``tmp_path``."""
    return OnlineCollateral(
        pccs_url=services.url,
        amd_kds_url=services.url,
        root_ca_crl_url=f"{services.url}/IntelSGXRootCA.der",
        cache_dir=tmp_path / "cache",
        clock=clock,
        **kwargs,  # type: ignore[arg-type]
    )


def issue_time(collateral: dict[str, str]) -> dt.datetime:
    """A moment inside the collateral's validity (its TCB info issue date)."""
    return dt.datetime.fromisoformat(json.loads(collateral["tcb_info"])["issueDate"])


@pytest.mark.parametrize("relative", DCAP_COLLATERAL)
@pytest.mark.parametrize("client", ["urllib", "httpx"])
def test_assembled_collateral_equals_the_vector_field_by_field(
    services: FakeServices,
    tmp_path: Path,
    load_collateral: Callable[[str], dict[str, str]],
    httpx_get: HttpGet,
    relative: str,
    client: str,
) -> None:
    """Every one of the nine fields equals the vector's, through urllib or an httpx adapter."""
    expected = load_collateral(relative)
    facts = services.serve_dcap(expected)
    extra = {"http": httpx_get} if client == "httpx" else {}
    source: CollateralSource = online(services, tmp_path, at(issue_time(expected)), **extra)
    got = json.loads(source.dcap_collateral(fmspc=facts.fmspc.lower(), ca=facts.ca, tee=facts.tee))
    assert list(got) == list(expected)
    for key, value in expected.items():
        assert got[key] == value, key


def test_the_tcb_info_signature_verifies_over_the_assembled_bytes(
    services: FakeServices, tmp_path: Path, load_collateral: Callable[[str], dict[str, str]]
) -> None:
    """The TCB info is kept byte-exact, so Intel's signature still verifies over it."""
    expected = load_collateral(SGX)
    facts = services.serve_dcap(expected)
    source = online(services, tmp_path, at(issue_time(expected)))
    got = json.loads(source.dcap_collateral(fmspc=facts.fmspc, ca=facts.ca, tee=facts.tee))
    signer = x509.load_pem_x509_certificates(got["tcb_info_issuer_chain"].encode())[0]
    key = signer.public_key()
    assert isinstance(key, ec.EllipticCurvePublicKey)
    raw = bytes.fromhex(got["tcb_info_signature"])
    signature = encode_dss_signature(
        int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big")
    )
    key.verify(signature, got["tcb_info"].encode(), ec.ECDSA(hashes.SHA256()))


def test_fresh_cached_collateral_is_reused_without_a_request(
    services: FakeServices, tmp_path: Path, load_collateral: Callable[[str], dict[str, str]]
) -> None:
    """Before nextUpdate a second request, even from a new source object, is served from disk."""
    expected = load_collateral(SGX)
    facts = services.serve_dcap(expected)
    clock = at(issue_time(expected))
    first = online(services, tmp_path, clock).dcap_collateral(
        fmspc=facts.fmspc, ca=facts.ca, tee=facts.tee
    )
    hits = len(services.hits)
    second = online(services, tmp_path, clock).dcap_collateral(
        fmspc=facts.fmspc, ca=facts.ca, tee=facts.tee
    )
    assert second == first
    assert len(services.hits) == hits == 4


def test_collateral_past_next_update_is_refetched(
    services: FakeServices, tmp_path: Path, load_collateral: Callable[[str], dict[str, str]]
) -> None:
    """After the earliest nextUpdate the cache is not trusted and PCS is asked again."""
    expected = load_collateral(SGX)
    facts = services.serve_dcap(expected)
    first = online(services, tmp_path, at(issue_time(expected))).dcap_collateral(
        fmspc=facts.fmspc, ca=facts.ca, tee=facts.tee
    )
    later = at(collateral_next_update(first))
    online(services, tmp_path, later).dcap_collateral(fmspc=facts.fmspc, ca=facts.ca, tee=facts.tee)
    assert len(services.hits) == 8


def test_stale_collateral_is_refused_when_the_refetch_fails(
    services: FakeServices, tmp_path: Path, load_collateral: Callable[[str], dict[str, str]]
) -> None:
    """Without the insecure switch an outage after nextUpdate is a NetworkError, not stale data."""
    expected = load_collateral(SGX)
    facts = services.serve_dcap(expected)
    first = online(services, tmp_path, at(issue_time(expected))).dcap_collateral(
        fmspc=facts.fmspc, ca=facts.ca, tee=facts.tee
    )
    services.down = True
    with pytest.raises(NetworkError, match="503"):
        online(services, tmp_path, at(collateral_next_update(first))).dcap_collateral(
            fmspc=facts.fmspc, ca=facts.ca, tee=facts.tee
        )


def test_insecure_allow_stale_serves_stale_collateral_with_a_warning(
    services: FakeServices,
    tmp_path: Path,
    load_collateral: Callable[[str], dict[str, str]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The explicit insecure switch serves the stale copy during an outage and logs a warning."""
    expected = load_collateral(SGX)
    facts = services.serve_dcap(expected)
    first = online(services, tmp_path, at(issue_time(expected))).dcap_collateral(
        fmspc=facts.fmspc, ca=facts.ca, tee=facts.tee
    )
    services.down = True
    stale = online(services, tmp_path, at(collateral_next_update(first)), insecure_allow_stale=True)
    with caplog.at_level(logging.WARNING, logger="veil.attestation.collateral._online"):
        got = stale.dcap_collateral(fmspc=facts.fmspc, ca=facts.ca, tee=facts.tee)
    assert got == first
    assert any("stale" in r.getMessage() for r in caplog.records)


def test_an_outage_without_a_cache_is_a_network_error(
    services: FakeServices, tmp_path: Path
) -> None:
    """Nothing cached and nothing reachable: the caller learns the network failed."""
    services.down = True
    with pytest.raises(NetworkError):
        online(
            services,
            tmp_path,
            at(dt.datetime(2025, 7, 1, tzinfo=dt.UTC)),
            insecure_allow_stale=True,
        ).dcap_collateral(fmspc="00A067110000", ca="processor", tee="sgx")


def test_an_unreachable_server_is_a_network_error(tmp_path: Path) -> None:
    """A refused connection is reported as a NetworkError naming the URL."""
    source = OnlineCollateral(pccs_url="http://127.0.0.1:9", cache_dir=None)
    with pytest.raises(NetworkError, match=re.escape("127.0.0.1:9")):
        source.dcap_collateral(fmspc="00A067110000", ca="processor", tee="sgx")


def test_an_unknown_fmspc_is_a_network_error_with_the_status(
    services: FakeServices, tmp_path: Path, load_collateral: Callable[[str], dict[str, str]]
) -> None:
    """PCS answering 404 for an FMSPC is reported with its status."""
    services.serve_dcap(load_collateral(SGX))
    with pytest.raises(NetworkError, match="404"):
        online(services, tmp_path, at(dt.datetime(2025, 7, 1, tzinfo=dt.UTC))).dcap_collateral(
            fmspc="FFFFFFFFFFFF", ca="processor", tee="sgx"
        )


def test_a_missing_issuer_chain_header_is_a_protocol_error(
    services: FakeServices, tmp_path: Path, load_collateral: Callable[[str], dict[str, str]]
) -> None:
    """A TCB info answer without its issuer chain cannot become collateral."""
    expected = load_collateral(SGX)
    facts = services.serve_dcap(expected)
    path = f"/sgx/certification/v4/tcb?fmspc={facts.fmspc}"
    _, _, body = services.routes[path]
    services.routes[path] = (200, {}, body)
    with pytest.raises(ProtocolError, match="tcb-info-issuer-chain"):
        online(services, tmp_path, at(issue_time(expected))).dcap_collateral(
            fmspc=facts.fmspc, ca=facts.ca, tee=facts.tee
        )


def test_a_tcb_info_body_that_is_not_signed_json_is_a_protocol_error(
    services: FakeServices, tmp_path: Path, load_collateral: Callable[[str], dict[str, str]]
) -> None:
    """A body without the tcbInfo/signature members is refused."""
    expected = load_collateral(SGX)
    facts = services.serve_dcap(expected)
    path = f"/sgx/certification/v4/tcb?fmspc={facts.fmspc}"
    status, headers, _ = services.routes[path]
    services.routes[path] = (status, headers, b'{"tcbInfo": {}}')
    with pytest.raises(ProtocolError):
        online(services, tmp_path, at(issue_time(expected))).dcap_collateral(
            fmspc=facts.fmspc, ca=facts.ca, tee=facts.tee
        )


@pytest.mark.parametrize(
    ("fmspc", "ca", "tee"),
    [
        ("00A06711", "processor", "sgx"),
        ("00A067110000", "root", "sgx"),
        ("00A067110000", "platform", "sev"),
    ],
)
def test_bad_lookup_arguments_are_configuration_errors(
    tmp_path: Path, fmspc: str, ca: str, tee: str
) -> None:
    """FMSPC, CA and TEE are checked before they reach a URL or a path."""
    with pytest.raises(ConfigurationError):
        OnlineCollateral(cache_dir=tmp_path).dcap_collateral(fmspc=fmspc, ca=ca, tee=tee)
