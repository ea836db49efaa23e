"""DCAP collateral: the dcap-qvl ``QuoteCollateralV3`` JSON, TCB info and QE identity.

TCB info (v3) and enclave identity (v2) follow Intel, *SGX and TDX PCS API v4*, "TCB Info" and
"Enclave Identity" models. Their JSON text is kept byte-exact: the signature covers those bytes,
so it is verified before the text is parsed (see ``_verify``).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from dataclasses import dataclass

from veil.errors import EvidenceError

__all__ = [
    "TCB_STATUSES",
    "DcapCollateral",
    "QeIdentity",
    "QeTcbLevel",
    "TcbInfo",
    "TcbLevel",
    "TdxModuleIdentity",
    "parse_qe_identity",
    "parse_tcb_info",
]

TCB_STATUSES = frozenset(
    {
        "UpToDate",
        "SWHardeningNeeded",
        "ConfigurationNeeded",
        "ConfigurationAndSWHardeningNeeded",
        "OutOfDate",
        "OutOfDateConfigurationNeeded",
        "Revoked",
    }
)
_HEX = frozenset("0123456789abcdefABCDEF")


def _fail(message: str) -> EvidenceError:
    return EvidenceError(f"DCAP collateral is malformed: {message}", step="parse")


def _unique_keys(pairs: list[tuple[str, object]]) -> dict[str, object]:
    result: dict[str, object] = {}
    for key, value in pairs:
        if key in result:
            raise _fail(f"key {key!r} appears twice")
        result[key] = value
    return result


def _load(text: str | bytes, what: str) -> dict[str, object]:
    try:
        document = json.loads(text, object_pairs_hook=_unique_keys)
    except EvidenceError:
        raise
    except (ValueError, RecursionError):
        raise _fail(f"{what} is not JSON") from None
    if not isinstance(document, dict):
        raise _fail(f"{what} is not a JSON object")
    return document


def _hex(text: str, what: str, size: int | None = None) -> bytes:
    if len(text) % 2 or not _HEX.issuperset(text):
        raise _fail(f"{what} is not hex")
    raw = bytes.fromhex(text)
    if size is not None and len(raw) != size:
        raise _fail(f"{what} must be {size} bytes")
    return raw


def _str(doc: Mapping[str, object], key: str, what: str) -> str:
    value = doc.get(key)
    if not isinstance(value, str):
        raise _fail(f"{what}.{key} is missing or not a string")
    return value


def _int(doc: Mapping[str, object], key: str, what: str, maximum: int = 2**32 - 1) -> int:
    value = doc.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= maximum:
        raise _fail(f"{what}.{key} is missing or not an integer in [0, {maximum}]")
    return value


def _obj(doc: Mapping[str, object], key: str, what: str) -> dict[str, object]:
    value = doc.get(key)
    if not isinstance(value, dict):
        raise _fail(f"{what}.{key} is missing or not an object")
    return value


def _list(doc: Mapping[str, object], key: str, what: str) -> list[object]:
    value = doc.get(key, [])
    if not isinstance(value, list):
        raise _fail(f"{what}.{key} is not a list")
    return value


def _date(doc: Mapping[str, object], key: str, what: str) -> dt.datetime:
    text = _str(doc, key, what)
    try:
        value = dt.datetime.fromisoformat(text)
    except ValueError:
        raise _fail(f"{what}.{key} is not an RFC 3339 date") from None
    if value.tzinfo is None:
        raise _fail(f"{what}.{key} has no time zone")
    return value.astimezone(dt.UTC)


def _status(doc: Mapping[str, object], what: str) -> tuple[str, tuple[str, ...]]:
    status = _str(doc, "tcbStatus", what)
    if status not in TCB_STATUSES:
        raise _fail(f"{what}.tcbStatus {status!r} is unknown")
    advisories = _list(doc, "advisoryIDs", what)
    if not all(isinstance(item, str) for item in advisories):
        raise _fail(f"{what}.advisoryIDs must be strings")
    return status, tuple(str(item) for item in advisories)


@dataclass(frozen=True)
class DcapCollateral:
    """Quote collateral in dcap-qvl's ``QuoteCollateralV3`` JSON form (PEM chains, hex CRLs)."""

    pck_crl_issuer_chain: str
    root_ca_crl: bytes
    pck_crl: bytes
    tcb_info_issuer_chain: str
    tcb_info: str
    tcb_info_signature: bytes
    qe_identity_issuer_chain: str
    qe_identity: str
    qe_identity_signature: bytes

    @classmethod
    def from_json(cls, text: str | bytes) -> DcapCollateral:
        """Read the nine-field JSON object; raise ``EvidenceError(step="parse")`` if malformed."""
        if isinstance(text, bytes):
            try:
                text = text.decode("utf-8")
            except UnicodeDecodeError:
                raise _fail("collateral is not UTF-8") from None
        doc = _load(text, "collateral")
        names = set(cls.__dataclass_fields__)
        if set(doc) != names:
            unknown, missing = sorted(set(doc) - names), sorted(names - set(doc))
            raise _fail(f"collateral fields differ: unknown {unknown}, missing {missing}")
        values = {name: _str(doc, name, "collateral") for name in names}
        return cls(
            pck_crl_issuer_chain=values["pck_crl_issuer_chain"],
            root_ca_crl=_hex(values["root_ca_crl"], "root_ca_crl"),
            pck_crl=_hex(values["pck_crl"], "pck_crl"),
            tcb_info_issuer_chain=values["tcb_info_issuer_chain"],
            tcb_info=values["tcb_info"],
            tcb_info_signature=_hex(values["tcb_info_signature"], "tcb_info_signature", 64),
            qe_identity_issuer_chain=values["qe_identity_issuer_chain"],
            qe_identity=values["qe_identity"],
            qe_identity_signature=_hex(
                values["qe_identity_signature"], "qe_identity_signature", 64
            ),
        )


@dataclass(frozen=True)
class TcbLevel:
    """One entry of ``tcbLevels``: minimum SVNs and the status they earn."""

    sgx_components: tuple[int, ...]
    pce_svn: int
    tdx_components: tuple[int, ...]
    status: str
    advisories: tuple[str, ...]


@dataclass(frozen=True)
class TdxModuleIdentity:
    """A ``tdxModuleIdentities`` entry (or the base ``tdxModule`` with no levels)."""

    id: str
    mrsigner: bytes
    attributes: bytes
    attributes_mask: bytes
    levels: tuple[tuple[int, str, tuple[str, ...]], ...]


@dataclass(frozen=True)
class TcbInfo:
    """The signed ``tcbInfo`` body (version 3, SGX or TDX)."""

    id: str
    version: int
    issue_date: dt.datetime
    next_update: dt.datetime
    fmspc: bytes
    pce_id: bytes
    tcb_evaluation_data_number: int
    tdx_module: TdxModuleIdentity | None
    tdx_module_identities: tuple[TdxModuleIdentity, ...]
    levels: tuple[TcbLevel, ...]


@dataclass(frozen=True)
class QeTcbLevel:
    """A QE identity ``tcbLevels`` entry: minimum ISVSVN and its status."""

    isv_svn: int
    status: str
    advisories: tuple[str, ...]


@dataclass(frozen=True)
class QeIdentity:
    """The signed ``enclaveIdentity`` body (version 2, id ``QE`` or ``TD_QE``)."""

    id: str
    version: int
    issue_date: dt.datetime
    next_update: dt.datetime
    miscselect: bytes
    miscselect_mask: bytes
    attributes: bytes
    attributes_mask: bytes
    mrsigner: bytes
    isv_prod_id: int
    levels: tuple[QeTcbLevel, ...]


def _svns(doc: Mapping[str, object], key: str, what: str) -> tuple[int, ...]:
    items = _list(doc, key, what)
    svns = tuple(
        _int(item, "svn", what + "." + key, 255) for item in items if isinstance(item, dict)
    )
    if len(svns) != 16 or len(items) != 16:
        raise _fail(f"{what}.{key} must list 16 components")
    return svns


def _module(doc: Mapping[str, object], what: str, *, with_levels: bool) -> TdxModuleIdentity:
    levels: list[tuple[int, str, tuple[str, ...]]] = []
    for item in _list(doc, "tcbLevels", what) if with_levels else []:
        if not isinstance(item, dict):
            raise _fail(f"{what}.tcbLevels entries must be objects")
        levels.append((_int(_obj(item, "tcb", what), "isvsvn", what, 255), *_status(item, what)))
    return TdxModuleIdentity(
        id=_str(doc, "id", what) if with_levels else "",
        mrsigner=_hex(_str(doc, "mrsigner", what), what + ".mrsigner", 48),
        attributes=_hex(_str(doc, "attributes", what), what + ".attributes", 8),
        attributes_mask=_hex(_str(doc, "attributesMask", what), what + ".attributesMask", 8),
        levels=tuple(levels),
    )


def parse_tcb_info(text: str) -> TcbInfo:
    """Parse the (already signature-checked) TCB info JSON text."""
    doc = _load(text, "tcbInfo")
    tcb_id, version = _str(doc, "id", "tcbInfo"), _int(doc, "version", "tcbInfo")
    if version != 3 or tcb_id not in ("SGX", "TDX") or _int(doc, "tcbType", "tcbInfo") != 0:
        raise _fail(f"TCB info {tcb_id} version {version} is not supported (SGX/TDX v3, type 0)")
    is_tdx = tcb_id == "TDX"
    levels: list[TcbLevel] = []
    for item in _list(doc, "tcbLevels", "tcbInfo"):
        if not isinstance(item, dict):
            raise _fail("tcbInfo.tcbLevels entries must be objects")
        tcb = _obj(item, "tcb", "tcbInfo.tcbLevels")
        levels.append(
            TcbLevel(
                sgx_components=_svns(tcb, "sgxtcbcomponents", "tcb"),
                pce_svn=_int(tcb, "pcesvn", "tcb", 0xFFFF),
                tdx_components=_svns(tcb, "tdxtcbcomponents", "tcb") if is_tdx else (),
                status=_status(item, "tcbLevel")[0],
                advisories=_status(item, "tcbLevel")[1],
            )
        )
    identities = tuple(
        _module(item, "tdxModuleIdentities", with_levels=True)
        for item in _list(doc, "tdxModuleIdentities", "tcbInfo")
        if isinstance(item, dict)
    )
    if len(identities) != len(_list(doc, "tdxModuleIdentities", "tcbInfo")):
        raise _fail("tcbInfo.tdxModuleIdentities entries must be objects")
    if is_tdx and "tdxModule" not in doc:
        raise _fail("TDX TCB info has no tdxModule")
    return TcbInfo(
        id=tcb_id,
        version=version,
        issue_date=_date(doc, "issueDate", "tcbInfo"),
        next_update=_date(doc, "nextUpdate", "tcbInfo"),
        fmspc=_hex(_str(doc, "fmspc", "tcbInfo"), "tcbInfo.fmspc", 6),
        pce_id=_hex(_str(doc, "pceId", "tcbInfo"), "tcbInfo.pceId", 2),
        tcb_evaluation_data_number=_int(doc, "tcbEvaluationDataNumber", "tcbInfo"),
        tdx_module=_module(_obj(doc, "tdxModule", "tcbInfo"), "tdxModule", with_levels=False)
        if is_tdx
        else None,
        tdx_module_identities=identities,
        levels=tuple(levels),
    )


def parse_qe_identity(text: str) -> QeIdentity:
    """Parse the (already signature-checked) QE identity JSON text."""
    doc = _load(text, "enclaveIdentity")
    what = "enclaveIdentity"
    levels: list[QeTcbLevel] = []
    for item in _list(doc, "tcbLevels", what):
        if not isinstance(item, dict):
            raise _fail("enclaveIdentity.tcbLevels entries must be objects")
        status, advisories = _status(item, what)
        levels.append(
            QeTcbLevel(_int(_obj(item, "tcb", what), "isvsvn", what, 0xFFFF), status, advisories)
        )
    return QeIdentity(
        id=_str(doc, "id", what),
        version=_int(doc, "version", what),
        issue_date=_date(doc, "issueDate", what),
        next_update=_date(doc, "nextUpdate", what),
        miscselect=_hex(_str(doc, "miscselect", what), what + ".miscselect", 4),
        miscselect_mask=_hex(_str(doc, "miscselectMask", what), what + ".miscselectMask", 4),
        attributes=_hex(_str(doc, "attributes", what), what + ".attributes", 16),
        attributes_mask=_hex(_str(doc, "attributesMask", what), what + ".attributesMask", 16),
        mrsigner=_hex(_str(doc, "mrsigner", what), what + ".mrsigner", 32),
        isv_prod_id=_int(doc, "isvprodid", what, 0xFFFF),
        levels=tuple(levels),
    )
