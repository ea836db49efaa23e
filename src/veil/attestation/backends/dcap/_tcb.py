"""TCB evaluation: QE identity, platform TCB level, TDX module identity, status convergence.

Intel, *SGX and TDX PCS API v4*, "TCB Info V3" (tcbLevels, tdxModule, tdxModuleIdentities) and
"Enclave Identity V2"; Intel SGX-TDX-DCAP-QuoteVerificationLibrary, TcbLevelCheck / TdxModuleCheck /
QeTcbStatus convergence. Matching follows dcap-qvl 0.7.0 so that the two verifiers agree:
levels are tried in the order Intel serves them and the first level whose every SVN is lower than
or equal to the platform's wins.
"""

from __future__ import annotations

from dataclasses import dataclass

from veil.attestation.backends.dcap._collateral import QeIdentity, TcbInfo, TdxModuleIdentity
from veil.attestation.backends.dcap._pck import PckExtension
from veil.attestation.backends.dcap._quote import SgxReportBody, TdReportBody
from veil.errors import EvidenceError

__all__ = ["TcbResult", "converge", "match_platform_tcb", "match_qe_identity"]


@dataclass(frozen=True)
class TcbResult:
    """A TCB status string as Intel spells it, with its advisory IDs in order."""

    status: str
    advisories: tuple[str, ...]


def _masked_equal(actual: bytes, expected: bytes, mask: bytes) -> bool:
    return all((a & m) == (e & m) for a, e, m in zip(actual, expected, mask, strict=True))


def match_qe_identity(report: SgxReportBody, identity: QeIdentity) -> TcbResult:
    """Check the QE report against the QE identity and return the QE's TCB status.

    MRSIGNER and ISVPRODID must be equal, MISCSELECT and ATTRIBUTES equal under their masks;
    the first ``tcbLevels`` entry with ``isvsvn`` <= the QE's ISVSVN gives the status.
    """

    def refuse(message: str) -> EvidenceError:
        return EvidenceError(
            f"the quoting enclave does not match its identity: {message}", step="qe-identity"
        )

    if report.mr_signer != identity.mrsigner:
        raise refuse("MRSIGNER differs")
    if report.isv_prod_id != identity.isv_prod_id:
        raise refuse(f"ISVPRODID {report.isv_prod_id} != {identity.isv_prod_id}")
    misc_select = report.misc_select.to_bytes(4, "little")
    if not _masked_equal(misc_select, identity.miscselect, identity.miscselect_mask):
        raise refuse("MISCSELECT differs under the mask")
    if not _masked_equal(report.attributes, identity.attributes, identity.attributes_mask):
        raise refuse("ATTRIBUTES differ under the mask")
    for level in identity.levels:
        if report.isv_svn >= level.isv_svn:
            return TcbResult(level.status, level.advisories)
    raise refuse(f"ISVSVN {report.isv_svn} is below every QE identity TCB level")


def converge(platform: TcbResult, component: TcbResult) -> TcbResult:
    """Combine the platform status with a QE or TDX module status (Intel QVL convergence).

    Only an ``OutOfDate`` or ``Revoked`` component changes the platform status. Advisory IDs are
    the platform's followed by the component's that are new.
    """
    status = platform.status
    if component.status == "Revoked":
        status = "Revoked"
    elif component.status == "OutOfDate":
        if status in ("UpToDate", "SWHardeningNeeded"):
            status = "OutOfDate"
        elif status in ("ConfigurationNeeded", "ConfigurationAndSWHardeningNeeded"):
            status = "OutOfDateConfigurationNeeded"
    advisories = platform.advisories + tuple(
        item for item in dict.fromkeys(component.advisories) if item not in platform.advisories
    )
    return TcbResult(status, advisories)


def _no_level() -> EvidenceError:
    return EvidenceError(
        "no matching TCB level: the platform's TCB is older than every level in the TCB info "
        "(Intel QVL: TCB level not supported); update the platform or fetch newer collateral",
        step="tcb",
    )


def _tdx_module(tcb_info: TcbInfo, body: TdReportBody) -> TcbResult | None:
    """TDX module identity (TdxModuleCheck): MRSIGNERSEAM, SEAMATTRIBUTES and module ISVSVN."""
    isv_svn, version = body.tee_tcb_svn[0], body.tee_tcb_svn[1]
    module: TdxModuleIdentity | None = tcb_info.tdx_module
    if module is None:
        raise EvidenceError("TDX TCB info has no tdxModule", step="tcb")
    if version > 0 and tcb_info.tdx_module_identities:
        wanted = f"TDX_{version:02X}"
        module = next((m for m in tcb_info.tdx_module_identities if m.id.upper() == wanted), None)
        if module is None:
            raise EvidenceError(f"the TCB info has no TDX module identity {wanted}", step="tcb")
    if body.mr_signer_seam != module.mrsigner:
        raise EvidenceError("the TDX module is not signed by the expected signer", step="tcb")
    if not _masked_equal(body.seam_attributes, module.attributes, module.attributes_mask) or any(
        a & ~m & 0xFF for a, m in zip(body.seam_attributes, module.attributes_mask, strict=True)
    ):
        raise EvidenceError("the TDX module SEAMATTRIBUTES do not match", step="tcb")
    if not module.levels:
        return None
    for level_svn, status, advisories in module.levels:
        if isv_svn >= level_svn:
            return TcbResult(status, advisories)
    raise EvidenceError(f"TDX module ISVSVN {isv_svn} is below every module TCB level", step="tcb")


def match_platform_tcb(
    tcb_info: TcbInfo, pck: PckExtension, body: SgxReportBody | TdReportBody
) -> TcbResult:
    """The status of the first TCB level the platform meets (TcbLevelCheck), or ``tcb`` error.

    SGX: the 16 PCK certificate TCB component SVNs and PCESVN. TDX additionally: the 16 bytes of
    TEE_TCB_SVN against ``tdxtcbcomponents``, then the TDX module identity status converged in.
    """
    for level in tcb_info.levels:
        if pck.pce_svn < level.pce_svn:
            continue
        if any(a < b for a, b in zip(pck.tcb_components, level.sgx_components, strict=True)):
            continue
        if isinstance(body, TdReportBody):
            if any(a < b for a, b in zip(body.tee_tcb_svn, level.tdx_components, strict=True)):
                continue
            result = TcbResult(level.status, level.advisories)
            module = _tdx_module(tcb_info, body)
            return result if module is None else converge(result, module)
        return TcbResult(level.status, level.advisories)
    raise _no_level()
