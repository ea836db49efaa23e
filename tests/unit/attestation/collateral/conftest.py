"""Fixtures: the shared vectors, and a loopback HTTP server playing Intel PCS and AMD KDS.

The server's answers are derived from real files: a QuoteCollateralV3 JSON becomes the PCS v4
bodies (``{"tcbInfo": <tcb_info text>, "signature": "<hex>"}``, …) with URL-encoded PEM issuer
chain headers, and the trustee VCEK is served by the KDS path for its chip and TCB.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from cryptography import x509
from cryptography.x509.oid import NameOID

from veil.attestation.collateral import HttpGet, HttpResponse
from veil.errors import NetworkError

Vector = dict[str, Any]
SNP_DIR = "confidential-containers-trustee/deps/verifier/test_data/snp"
DCAP_COLLATERAL = [
    "phala-dcap-qvl/sample/sgx_quote_collateral.json",
    "phala-dcap-qvl/sample/tdx_quote_collateral.json",
    "phala-dcap-qvl/sample/tdx_quote_outdated_collateral.json",
    "derived/trustee_tdx_00A06D080000_2025-10_collateral.json",
    "derived/go-tdx-guest_tdx_50806F000000_2023-06_collateral.json",
    "derived/automata_sgx_00606A000000_2025-08_collateral.json",
]


@pytest.fixture(scope="session")
def vectors() -> Path:
    """The shared vector folder (/work/shared/vectors); fails loudly when it is missing."""
    path = Path(__file__).resolve().parents[4].parent / "shared" / "vectors"
    if not (path / "index.json").is_file():
        pytest.fail(f"shared test vectors not found at {path}")
    return path


@dataclass(frozen=True)
class DcapFacts:
    """What a collateral file is for: its TEE, FMSPC and PCK CA."""

    tee: str
    fmspc: str
    ca: str


def dcap_facts(collateral: dict[str, str]) -> DcapFacts:
    """The TEE, FMSPC and PCK CA a QuoteCollateralV3 document belongs to."""
    tcb_info = json.loads(collateral["tcb_info"])
    issuer = x509.load_pem_x509_certificates(collateral["pck_crl_issuer_chain"].encode())[0]
    cn = str(issuer.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value)
    ca = "platform" if "Platform" in cn else "processor"
    return DcapFacts(tee=tcb_info["id"].lower(), fmspc=tcb_info["fmspc"].upper(), ca=ca)


@dataclass
class FakeServices:
    """Routes (path with query → status, headers, body), the requests seen, and an outage switch."""

    url: str = ""
    routes: dict[str, tuple[int, dict[str, str], bytes]] = field(default_factory=dict)
    hits: list[str] = field(default_factory=list)
    down: bool = False

    def serve_dcap(self, collateral: dict[str, str]) -> DcapFacts:
        """Answer the PCS v4 requests for one QuoteCollateralV3 document, as Intel PCS would."""
        facts = dcap_facts(collateral)
        base = f"/{facts.tee}/certification/v4"
        tcb_body = '{"tcbInfo":' + collateral["tcb_info"]
        tcb_body += ',"signature":"' + collateral["tcb_info_signature"] + '"}'
        qe_body = '{"enclaveIdentity":' + collateral["qe_identity"]
        qe_body += ',"signature":"' + collateral["qe_identity_signature"] + '"}'
        chain = {
            "TCB-Info-Issuer-Chain": quote(collateral["tcb_info_issuer_chain"], safe=""),
        }
        self.routes[f"{base}/tcb?fmspc={facts.fmspc}"] = (200, chain, tcb_body.encode())
        self.routes[f"{base}/qe/identity"] = (
            200,
            {
                "SGX-Enclave-Identity-Issuer-Chain": quote(
                    collateral["qe_identity_issuer_chain"], safe=""
                )
            },
            qe_body.encode(),
        )
        self.routes[f"/sgx/certification/v4/pckcrl?ca={facts.ca}&encoding=der"] = (
            200,
            {"SGX-PCK-CRL-Issuer-Chain": quote(collateral["pck_crl_issuer_chain"], safe="")},
            bytes.fromhex(collateral["pck_crl"]),
        )
        self.routes["/IntelSGXRootCA.der"] = (200, {}, bytes.fromhex(collateral["root_ca_crl"]))
        return facts


@pytest.fixture
def services() -> Iterator[FakeServices]:
    """A loopback HTTP server (127.0.0.1, ephemeral port) answering from ``routes``."""
    fake = FakeServices()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            fake.hits.append(self.path)
            status, headers, body = (
                (503, {}, b"") if fake.down else fake.routes.get(self.path, (404, {}, b"not found"))
            )
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            """Keep test output quiet."""

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture
def httpx_get() -> Iterator[HttpGet]:
    """An httpx-backed HttpGet, the way an adapter layer plugs httpx into OnlineCollateral."""
    with httpx.Client(timeout=10.0) as client:

        def get(url: str, /) -> HttpResponse:
            try:
                response = client.get(url)
            except httpx.HTTPError as exc:
                raise NetworkError(f"could not reach {url}: {exc}") from None
            headers = {k.lower(): v for k, v in response.headers.items()}
            return HttpResponse(status=response.status_code, body=response.content, headers=headers)

        yield get


@pytest.fixture
def load_collateral(vectors: Path) -> Callable[[str], dict[str, str]]:
    """Factory: a QuoteCollateralV3 vector file as a dict."""

    def load(relative: str) -> dict[str, str]:
        data: dict[str, str] = json.loads((vectors / relative).read_text())
        return data

    return load
