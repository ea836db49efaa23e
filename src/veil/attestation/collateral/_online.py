"""Collateral from Intel PCS/PCCS (API v4) and AMD KDS, with a disk cache and freshness rules.

Intel PCS v4 (*Intel SGX and TDX PCS API v4*): ``/{sgx,tdx}/certification/v4/tcb?fmspc=``
(``TCB-Info-Issuer-Chain``), ``/{sgx,tdx}/certification/v4/qe/identity``
(``SGX-Enclave-Identity-Issuer-Chain``), ``/sgx/certification/v4/pckcrl?ca=&encoding=der``
(``SGX-PCK-CRL-Issuer-Chain``); the chains are URL-encoded PEM. The Intel SGX Root CA CRL comes
from its own URL. AMD KDS (VCEK spec §4.1): ``/vcek/v1/{product}/{hwid}?blSPL=&teeSPL=&snpSPL=
&ucodeSPL=`` returns the DER VCEK.

Cache rules: cached DCAP collateral is reused while ``now`` is before its earliest nextUpdate
(TCB info, QE identity, both CRLs) and refetched after; a VCEK is reused while it is valid. When a
refetch fails, stale collateral is served only with ``insecure_allow_stale=True``, and a warning
is logged every time. Nothing here verifies signatures: the verifiers do.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote, unquote, urlencode

from veil.attestation.backends.sev_snp import load_der_certificate
from veil.attestation.collateral._assemble import (
    assemble_quote_collateral,
    collateral_next_update,
    crl_der,
)
from veil.attestation.collateral._base import check_dcap_args, vcek_query
from veil.attestation.collateral._cache import DiskCache
from veil.attestation.collateral._http import HttpGet, HttpResponse, urllib_get
from veil.errors import NetworkError, ProtocolError

__all__ = ["AMD_KDS_URL", "INTEL_PCS_URL", "INTEL_ROOT_CA_CRL_URL", "OnlineCollateral"]

INTEL_PCS_URL = "https://api.trustedservices.intel.com"
INTEL_ROOT_CA_CRL_URL = "https://certificates.trustedservices.intel.com/IntelSGXRootCA.der"
AMD_KDS_URL = "https://kdsintf.amd.com"

_log = logging.getLogger(__name__)


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class OnlineCollateral:
    """Fetches collateral over HTTP(S) and caches it in ``cache_dir`` (no cache when None)."""

    def __init__(
        self,
        *,
        pccs_url: str = INTEL_PCS_URL,
        amd_kds_url: str = AMD_KDS_URL,
        root_ca_crl_url: str = INTEL_ROOT_CA_CRL_URL,
        cache_dir: Path | None = None,
        clock: Callable[[], dt.datetime] = _utcnow,
        http: HttpGet = urllib_get,
        insecure_allow_stale: bool = False,
    ) -> None:
        self.pccs_url = pccs_url.rstrip("/")
        self.amd_kds_url = amd_kds_url.rstrip("/")
        self.root_ca_crl_url = root_ca_crl_url
        self._cache = DiskCache(cache_dir) if cache_dir is not None else None
        self._clock = clock
        self._http = http
        self.insecure_allow_stale = insecure_allow_stale
        if insecure_allow_stale:
            _log.warning(
                "INSECURE: collateral past its nextUpdate will be served when a refetch fails "
                "(insecure_allow_stale=True); revoked TCB levels may go unnoticed"
            )

    # -- HTTP -----------------------------------------------------------------------------------

    def _get(self, url: str, what: str) -> HttpResponse:
        response = self._http(url)
        if response.status != 200:
            raise NetworkError(
                f"{url} answered HTTP {response.status} for the {what}; check the URL, FMSPC or "
                "chip, or retry later"
            )
        return response

    @staticmethod
    def _chain(response: HttpResponse, names: tuple[str, ...], what: str) -> str:
        headers = {k.lower(): v for k, v in response.headers.items()}
        for name in names:
            if name in headers:
                chain = unquote(headers[name])
                if "-----BEGIN CERTIFICATE-----" in chain:
                    return chain
        raise ProtocolError(f"the {what} response has no {names[0]} header with a PEM chain")

    def _fetch_dcap(self, fmspc: str, ca: str, tee: str) -> bytes:
        base = f"{self.pccs_url}/{tee}/certification/v4"
        tcb = self._get(f"{base}/tcb?{urlencode({'fmspc': fmspc})}", "TCB info")
        qe = self._get(f"{base}/qe/identity", "QE identity")
        pck = self._get(
            f"{self.pccs_url}/sgx/certification/v4/pckcrl?{urlencode({'ca': ca, 'encoding': 'der'})}",
            "PCK CRL",
        )
        root = self._get(self.root_ca_crl_url, "Intel SGX Root CA CRL")
        return assemble_quote_collateral(
            pck_crl_issuer_chain=self._chain(pck, ("sgx-pck-crl-issuer-chain",), "PCK CRL"),
            root_ca_crl=crl_der(root.body, "Intel SGX Root CA CRL"),
            pck_crl=crl_der(pck.body, "PCK CRL"),
            tcb_info_issuer_chain=self._chain(
                tcb, ("tcb-info-issuer-chain", "sgx-tcb-info-issuer-chain"), "TCB info"
            ),
            tcb_info_body=tcb.body,
            qe_identity_issuer_chain=self._chain(
                qe, ("sgx-enclave-identity-issuer-chain",), "QE identity"
            ),
            qe_identity_body=qe.body,
        )

    def _fetch_vcek(self, product: str, hwid: str, params: dict[str, str]) -> bytes:
        url = f"{self.amd_kds_url}/vcek/v1/{quote(product)}/{hwid}?{urlencode(params)}"
        body = self._get(url, "VCEK").body
        try:
            load_der_certificate(body)
        except ValueError:
            raise ProtocolError(f"{url} did not return a DER certificate") from None
        return body

    # -- cache ----------------------------------------------------------------------------------

    def _cached(
        self,
        name: str,
        fresh_until: Callable[[bytes], dt.datetime],
        fetch: Callable[[], bytes],
    ) -> bytes:
        cached = self._cache.get(name) if self._cache is not None else None
        expiry: dt.datetime | None = None
        if cached is not None:
            try:
                expiry = fresh_until(cached)
            except (ValueError, KeyError, TypeError):
                _log.warning("ignoring unreadable cached collateral %s", name)
                cached = None
        now = self._clock()
        if cached is not None and expiry is not None and now < expiry:
            return cached
        try:
            fresh = fetch()
        except (NetworkError, ProtocolError) as exc:
            if cached is None or not self.insecure_allow_stale:
                raise
            _log.warning(
                "INSECURE: serving stale collateral %s (nextUpdate %s passed at %s) because the "
                "refetch failed: %s",
                name,
                expiry,
                now,
                exc,
            )
            return cached
        if self._cache is not None:
            self._cache.put(name, fresh)
        return fresh

    # -- CollateralSource -----------------------------------------------------------------------

    def dcap_collateral(self, *, fmspc: str, ca: str, tee: str) -> bytes:
        """QuoteCollateralV3 JSON for ``fmspc``, PCK CA ``ca`` and ``tee``, fetched or cached."""
        fmspc = check_dcap_args(fmspc, ca, tee)
        return self._cached(
            f"dcap-{tee}-{fmspc}-{ca}.json",
            collateral_next_update,
            lambda: self._fetch_dcap(fmspc, ca, tee),
        )

    def snp_vcek(self, *, product: str, chip_id: bytes, reported_tcb: bytes) -> bytes:
        """The DER VCEK for a chip at a REPORTED_TCB from AMD KDS, fetched or cached."""
        hwid, params = vcek_query(product, chip_id, reported_tcb)

        def valid_until(der: bytes) -> dt.datetime:
            return load_der_certificate(der).not_valid_after_utc

        return self._cached(
            f"vcek-{product}-{hwid}-{reported_tcb.hex()}.der",
            valid_until,
            lambda: self._fetch_vcek(product, hwid, params),
        )
