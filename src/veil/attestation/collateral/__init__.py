"""Collateral sources: where verifiers' inputs (Intel DCAP collateral, AMD VCEKs) come from.

The verifiers are pure; these sources do the I/O one layer up. ``OfflineCollateral`` reads a
directory or fixed files; ``OnlineCollateral`` fetches from Intel PCS/PCCS (API v4) and AMD KDS
and keeps a disk cache with freshness rules. Both implement :class:`CollateralSource`.
"""

from veil.attestation.collateral._assemble import assemble_quote_collateral, collateral_next_update
from veil.attestation.collateral._base import CollateralSource, vcek_query
from veil.attestation.collateral._http import HttpGet, HttpResponse, urllib_get
from veil.attestation.collateral._offline import OfflineCollateral
from veil.attestation.collateral._online import OnlineCollateral

__all__ = [
    "CollateralSource",
    "HttpGet",
    "HttpResponse",
    "OfflineCollateral",
    "OnlineCollateral",
    "assemble_quote_collateral",
    "collateral_next_update",
    "urllib_get",
    "vcek_query",
]
