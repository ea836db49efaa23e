"""TCB evaluation: QE identity, platform level matching, TDX module identity and convergence."""

from __future__ import annotations

import dataclasses

import pytest
from cryptography import x509

from veil.attestation.backends.dcap import Quote, TdReportBody, parse_quote
from veil.attestation.backends.dcap._collateral import (
    QeTcbLevel,
    TcbLevel,
    parse_qe_identity,
    parse_tcb_info,
)
from veil.attestation.backends.dcap._pck import PckExtension, parse_pck_extension
from veil.attestation.backends.dcap._tcb import (
    TcbResult,
    converge,
    match_platform_tcb,
    match_qe_identity,
)
from veil.errors import EvidenceError

from ._vectors import vector


def _pck(vector_id: str) -> tuple[Quote, PckExtension]:
    quote = parse_quote(vector(vector_id).quote)
    leaf = x509.load_pem_x509_certificates(quote.auth.pck_chain_pem.rstrip(b"\x00"))[0]
    return quote, parse_pck_extension(leaf)


@pytest.mark.parametrize(
    ("platform", "component", "expected"),
    [
        ("UpToDate", "UpToDate", "UpToDate"),
        ("SWHardeningNeeded", "UpToDate", "SWHardeningNeeded"),
        ("UpToDate", "OutOfDate", "OutOfDate"),
        ("SWHardeningNeeded", "OutOfDate", "OutOfDate"),
        ("ConfigurationNeeded", "OutOfDate", "OutOfDateConfigurationNeeded"),
        ("ConfigurationAndSWHardeningNeeded", "OutOfDate", "OutOfDateConfigurationNeeded"),
        ("OutOfDate", "OutOfDate", "OutOfDate"),
        ("ConfigurationNeeded", "Revoked", "Revoked"),
        ("UpToDate", "ConfigurationNeeded", "UpToDate"),
    ],
)
def test_converge_follows_intel_qvl(platform: str, component: str, expected: str) -> None:
    """Only an OutOfDate or Revoked QE / module status changes the platform status."""
    assert converge(TcbResult(platform, ()), TcbResult(component, ())).status == expected


def test_converge_appends_new_advisories_in_order() -> None:
    """Advisories are the platform's, then the component's that are new."""
    merged = converge(TcbResult("OutOfDate", ("A", "B")), TcbResult("OutOfDate", ("B", "C", "C")))
    assert merged.advisories == ("A", "B", "C")


def test_qe_below_every_level_is_refused() -> None:
    """A QE whose ISVSVN is below every QE identity level fails at 'qe-identity'."""
    quote = parse_quote(vector("dcapqvl-sgx-v3").quote)
    identity = parse_qe_identity(vector("dcapqvl-sgx-v3").collateral.qe_identity)
    raised = dataclasses.replace(identity, levels=(QeTcbLevel(99, "UpToDate", ()),))
    with pytest.raises(EvidenceError) as caught:
        match_qe_identity(quote.auth.qe_report, raised)
    assert caught.value.step == "qe-identity"


@pytest.mark.parametrize(
    "change",
    [
        {"mrsigner": bytes(32)},
        {"isv_prod_id": 7},
        {"attributes": bytes(15) + b"\x01", "attributes_mask": b"\xff" * 16},
        {"miscselect": b"\x01\x00\x00\x00"},
    ],
    ids=["mrsigner", "isvprodid", "attributes", "miscselect"],
)
def test_qe_identity_fields_must_match(change: dict[str, object]) -> None:
    """MRSIGNER, ISVPRODID and the masked ATTRIBUTES / MISCSELECT must match the QE report."""
    quote = parse_quote(vector("dcapqvl-tdx-v4").quote)
    identity = parse_qe_identity(vector("dcapqvl-tdx-v4").collateral.qe_identity)
    with pytest.raises(EvidenceError) as caught:
        match_qe_identity(quote.auth.qe_report, dataclasses.replace(identity, **change))
    assert caught.value.step == "qe-identity"


def test_qe_status_comes_from_the_first_level_met() -> None:
    """The QE status is that of the first level whose ISVSVN the QE reaches."""
    quote = parse_quote(vector("dcapqvl-sgx-v3").quote)
    identity = parse_qe_identity(vector("dcapqvl-sgx-v3").collateral.qe_identity)
    assert match_qe_identity(quote.auth.qe_report, identity) == TcbResult("UpToDate", ())


def test_sgx_levels_are_tried_in_order() -> None:
    """The first level whose every component SVN and PCESVN the platform reaches wins."""
    quote, pck = _pck("dcapqvl-sgx-v3")
    info = parse_tcb_info(vector("dcapqvl-sgx-v3").collateral.tcb_info)
    first = match_platform_tcb(info, pck, quote.body)
    assert first.status == "ConfigurationAndSWHardeningNeeded"
    floor = TcbLevel((0,) * 16, 0, (), "UpToDate", ())
    higher = tuple(svn + (index == 15) for index, svn in enumerate(pck.tcb_components))
    too_new = TcbLevel(higher, 0, (), "UpToDate", ())
    assert (
        match_platform_tcb(dataclasses.replace(info, levels=(*info.levels, floor)), pck, quote.body)
        == first
    )
    assert match_platform_tcb(
        dataclasses.replace(info, levels=(floor, *info.levels)), pck, quote.body
    ) == TcbResult("UpToDate", ())
    assert (
        match_platform_tcb(
            dataclasses.replace(info, levels=(too_new, *info.levels)), pck, quote.body
        )
        == first
    )
    with pytest.raises(EvidenceError) as caught:
        match_platform_tcb(dataclasses.replace(info, levels=(too_new,)), pck, quote.body)
    assert caught.value.step == "tcb"


def test_tdx_module_identity_status_is_converged() -> None:
    """An OutOfDate TDX module level turns an UpToDate platform level OutOfDate."""
    quote, pck = _pck("dcapqvl-tdx-v4")
    info = parse_tcb_info(vector("dcapqvl-tdx-v4").collateral.tcb_info)
    assert match_platform_tcb(info, pck, quote.body).status == "UpToDate"
    module = next(m for m in info.tdx_module_identities if m.id == "TDX_01")
    stale = dataclasses.replace(module, levels=((99, "UpToDate", ()), (0, "OutOfDate", ("SA",))))
    info = dataclasses.replace(info, tdx_module_identities=(stale,))
    assert match_platform_tcb(info, pck, quote.body) == TcbResult("OutOfDate", ("SA",))


def test_unknown_tdx_module_or_signer_is_refused() -> None:
    """A TDX module version without identity, or another module signer, fails at 'tcb'."""
    quote, pck = _pck("dcapqvl-tdx-v4")
    assert isinstance(quote.body, TdReportBody)
    info = parse_tcb_info(vector("dcapqvl-tdx-v4").collateral.tcb_info)
    others = tuple(m for m in info.tdx_module_identities if m.id != "TDX_01")
    for changed in (
        dataclasses.replace(info, tdx_module_identities=others),
        dataclasses.replace(
            info,
            tdx_module_identities=tuple(
                dataclasses.replace(m, mrsigner=b"\x01" * 48) for m in info.tdx_module_identities
            ),
        ),
    ):
        with pytest.raises(EvidenceError) as caught:
            match_platform_tcb(changed, pck, quote.body)
        assert caught.value.step == "tcb"
