"""Attestation policy: which workloads a verifier accepts.

Keys are MarbleRun's (``UniqueID``, ``SignerID``, ``ProductID``, ``SecurityVersion``, ``Debug``,
``AcceptedTCBStatuses``, ``AcceptedAdvisories``) plus ``TEE`` / ``Simulation``, TDX keys (``MrTd``,
``Rtmr0``…``Rtmr3``, ``MrConfigId``, ``MrOwner``) and SNP keys (``Measurement``, ``MinimumTcb``,
``ChipIds``). Fail closed: empty allow-lists reject, the simulated TEE must be named.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

from veil.attestation._model import TEE_KINDS, Claims, TEEKind
from veil.errors import ConfigurationError, PolicyError

DEFAULT_TCB_STATUSES = ("UpToDate", "SWHardeningNeeded")
_KEYS = {
    k.lower(): k
    for k in (
        "TEE",
        "Simulation",
        "UniqueID",
        "SignerID",
        "ProductID",
        "SecurityVersion",
        "Debug",
        "AcceptedTCBStatuses",
        "AcceptedAdvisories",
        "MrTd",
        "Rtmr0",
        "Rtmr1",
        "Rtmr2",
        "Rtmr3",
        "MrConfigId",
        "MrOwner",
        "Measurement",
        "MinimumTcb",
        "ChipIds",
    )
}


def _hex(value: object, key: str, sizes: tuple[int, ...]) -> bytes:
    if not isinstance(value, str):
        raise ConfigurationError(f"policy key {key} must be a hex string")
    try:
        raw = bytes.fromhex(value.removeprefix("0x"))
    except ValueError:
        raise ConfigurationError(f"policy key {key} is not hex: {value!r}") from None
    if len(raw) not in sizes:
        raise ConfigurationError(
            f"policy key {key} must be {' or '.join(str(s) for s in sizes)} bytes"
        )
    return raw


def _uint(value: object, key: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ConfigurationError(f"policy key {key} must be a non-negative integer")
    return value


def _strings(value: object, key: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(s, str) for s in value):
        raise ConfigurationError(f"policy key {key} must be a list of strings")
    return tuple(cast(list[str], value))


@dataclass(frozen=True)
class Policy:
    """What a verifier accepts.

    An identity policy pins ``unique_id`` (one exact build: MRENCLAVE, MRTD, SNP MEASUREMENT or
    the simulated measurement) or ``signer_id`` + ``product_id`` + ``min_security_version``.
    ``tee`` must name the TEE exactly; simulated evidence is accepted only by ``tee="simulated"``.
    ``accepted_advisories`` of ``None`` accepts any advisory of an accepted status (MarbleRun);
    an empty tuple accepts none.
    """

    tee: TEEKind
    unique_id: bytes | None = None
    signer_id: bytes | None = None
    product_id: int | None = None
    min_security_version: int | None = None
    debug: bool = False
    accepted_tcb_statuses: tuple[str, ...] = DEFAULT_TCB_STATUSES
    accepted_advisories: tuple[str, ...] | None = None
    rtmrs: Mapping[int, bytes] = field(default_factory=dict)
    mr_config_id: bytes | None = None
    mr_owner: bytes | None = None
    minimum_tcb: int | None = None
    chip_ids: tuple[bytes, ...] | None = None
    require_identity: bool = True

    def __post_init__(self) -> None:
        if self.tee not in TEE_KINDS:
            raise ConfigurationError(f"policy TEE must be one of {', '.join(TEE_KINDS)}")
        signer_complete = (
            self.signer_id is not None
            and self.product_id is not None
            and self.min_security_version is not None
        )
        if self.require_identity and self.unique_id is None and not signer_complete:
            raise ConfigurationError(
                "the policy pins no identity: give UniqueID (or MrTd / Measurement), or "
                "SignerID with ProductID and SecurityVersion"
            )

    @classmethod
    def platform_default(cls, tee: TEEKind) -> Policy:
        """No identity pinned; production defaults (no debug, UpToDate/SWHardeningNeeded)."""
        return cls(tee=tee, require_identity=False)

    @classmethod
    def from_dict(cls, doc: Mapping[str, object], *, require_identity: bool = True) -> Policy:
        """Build from a policy document (keys case-insensitive, as Go's JSON decoder reads them)."""
        v: dict[str, object] = {}
        for key, value in doc.items():
            canonical = _KEYS.get(key.lower())
            if canonical is None:
                raise ConfigurationError(f"unknown policy key {key!r}")
            v[canonical] = value
        simulation = v.get("Simulation", False)
        if not isinstance(simulation, bool):
            raise ConfigurationError("policy key Simulation must be true or false")
        tee = v.get("TEE", "simulated" if simulation else "sgx")
        if tee not in TEE_KINDS:
            raise ConfigurationError(f"policy TEE must be one of {', '.join(TEE_KINDS)}")
        if simulation and tee != "simulated":
            raise ConfigurationError("policy says Simulation: true but names another TEE")
        debug = v.get("Debug", False)
        if not isinstance(debug, bool):
            raise ConfigurationError("policy key Debug must be true or false")
        ids = [k for k in ("UniqueID", "MrTd", "Measurement") if k in v]
        if len(ids) > 1:
            raise ConfigurationError(f"policy keys {' and '.join(ids)} name the same measurement")
        unique = _hex(v[ids[0]], ids[0], (32, 48)) if ids else None
        chip_ids = v.get("ChipIds")
        if chip_ids is not None:
            chip_ids = tuple(_hex(c, "ChipIds", (64,)) for c in _strings(chip_ids, "ChipIds"))
        return cls(
            tee=tee,
            unique_id=unique,
            signer_id=_hex(v["SignerID"], "SignerID", (32,)) if "SignerID" in v else None,
            product_id=_uint(v["ProductID"], "ProductID") if "ProductID" in v else None,
            min_security_version=(
                _uint(v["SecurityVersion"], "SecurityVersion") if "SecurityVersion" in v else None
            ),
            debug=debug,
            accepted_tcb_statuses=_strings(
                v.get("AcceptedTCBStatuses", list(DEFAULT_TCB_STATUSES)), "AcceptedTCBStatuses"
            ),
            accepted_advisories=(
                _strings(v["AcceptedAdvisories"], "AcceptedAdvisories")
                if "AcceptedAdvisories" in v
                else None
            ),
            rtmrs={i: _hex(v[f"Rtmr{i}"], f"Rtmr{i}", (48,)) for i in range(4) if f"Rtmr{i}" in v},
            mr_config_id=_hex(v["MrConfigId"], "MrConfigId", (48,)) if "MrConfigId" in v else None,
            mr_owner=_hex(v["MrOwner"], "MrOwner", (48,)) if "MrOwner" in v else None,
            minimum_tcb=_uint(v["MinimumTcb"], "MinimumTcb") if "MinimumTcb" in v else None,
            chip_ids=chip_ids,
            require_identity=require_identity,
        )

    @classmethod
    def from_file(cls, path: str | Path, *, require_identity: bool = True) -> Policy:
        """Read a JSON policy file."""
        try:
            doc = json.loads(Path(path).read_text(encoding="utf-8"))
        except OSError as exc:
            raise ConfigurationError(f"cannot read policy file {path}: {exc.strerror}") from None
        except ValueError as exc:
            raise ConfigurationError(f"policy file {path} is not valid JSON: {exc}") from None
        if not isinstance(doc, dict):
            raise ConfigurationError(f"policy file {path} must hold a JSON object")
        return cls.from_dict(doc, require_identity=require_identity)

    def to_dict(self) -> dict[str, object]:
        """The policy in its file form."""
        doc: dict[str, object] = {"TEE": self.tee, "Debug": self.debug}
        if self.unique_id is not None:
            doc["UniqueID"] = self.unique_id.hex()
        if self.signer_id is not None:
            doc["SignerID"] = self.signer_id.hex()
        if self.product_id is not None:
            doc["ProductID"] = self.product_id
        if self.min_security_version is not None:
            doc["SecurityVersion"] = self.min_security_version
        doc["AcceptedTCBStatuses"] = list(self.accepted_tcb_statuses)
        if self.accepted_advisories is not None:
            doc["AcceptedAdvisories"] = list(self.accepted_advisories)
        for i, value in sorted(self.rtmrs.items()):
            doc[f"Rtmr{i}"] = value.hex()
        if self.mr_config_id is not None:
            doc["MrConfigId"] = self.mr_config_id.hex()
        if self.mr_owner is not None:
            doc["MrOwner"] = self.mr_owner.hex()
        if self.minimum_tcb is not None:
            doc["MinimumTcb"] = self.minimum_tcb
        if self.chip_ids is not None:
            doc["ChipIds"] = [c.hex() for c in self.chip_ids]
        return doc


def _field_bytes(claims: Claims, name: str) -> bytes | None:
    value = claims.fields.get(name)
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        try:
            return bytes.fromhex(value)
        except ValueError:
            return None
    return None


def _fail(claim: str, message: str) -> PolicyError:
    return PolicyError(message, claim=claim)


def check_claims(claims: Claims, policy: Policy) -> None:
    """Raise :class:`PolicyError` naming the first claim that the policy does not accept."""
    # 1. The TEE kind must be exactly the one the policy names; no fallback to simulation.
    if claims.tee != policy.tee:
        if claims.tee == "simulated":
            raise _fail(
                "tee",
                "simulated-TEE evidence refused: this policy requires real "
                f"{policy.tee} hardware evidence (set TEE to 'simulated' explicitly to accept it)",
            )
        raise _fail(
            "tee", f"evidence comes from a {claims.tee} TEE but the policy requires {policy.tee}"
        )
    # 2. Debug must equal the policy (MarbleRun semantics): a debug enclave is not confidential.
    if claims.debug and not policy.debug:
        raise _fail("debug", "evidence is from a debug enclave, which the policy refuses")
    if policy.debug != claims.debug and policy.require_identity:
        raise _fail("debug", "evidence is from a production enclave but the policy expects debug")
    # 3. Identity.
    if policy.unique_id is not None and claims.unique_id != policy.unique_id:
        raise _fail(
            "unique_id",
            f"measurement (UniqueID) {claims.unique_id.hex()} does not match the expected "
            f"{policy.unique_id.hex()}: a different or modified build",
        )
    if policy.signer_id is not None and claims.signer_id != policy.signer_id:
        raise _fail(
            "signer_id",
            f"SignerID {claims.signer_id.hex()} does not match the expected "
            f"{policy.signer_id.hex()}",
        )
    if policy.product_id is not None and claims.product_id != policy.product_id:
        raise _fail(
            "product_id",
            f"ProductID {claims.product_id} does not match the expected {policy.product_id}",
        )
    if (
        policy.min_security_version is not None
        and claims.security_version < policy.min_security_version
    ):
        raise _fail(
            "security_version",
            f"SecurityVersion {claims.security_version} is below the minimum "
            f"{policy.min_security_version}",
        )
    # 4. TEE-specific measurements (TDX RTMRs and config, SNP TCB and chip).
    for i, expected in sorted(policy.rtmrs.items()):
        if _field_bytes(claims, f"rtmr{i}") != expected:
            raise _fail(f"rtmr{i}", f"RTMR{i} does not match the policy")
    if (
        policy.mr_config_id is not None
        and _field_bytes(claims, "mr_config_id") != policy.mr_config_id
    ):
        raise _fail("mr_config_id", "MRCONFIGID does not match the policy")
    if policy.mr_owner is not None and _field_bytes(claims, "mr_owner") != policy.mr_owner:
        raise _fail("mr_owner", "MROWNER does not match the policy")
    if policy.chip_ids is not None and _field_bytes(claims, "chip_id") not in policy.chip_ids:
        raise _fail("chip_id", "the CHIP_ID is not in the policy's ChipIds")
    if policy.minimum_tcb is not None:
        reported = _field_bytes(claims, "reported_tcb")
        if reported is None or _tcb_below(reported, policy.minimum_tcb):
            raise _fail("reported_tcb", "the reported TCB is below the policy's MinimumTcb")
    # 5. Platform TCB.
    if claims.tcb_status not in policy.accepted_tcb_statuses:
        raise _fail(
            "tcb_status",
            f"TCB status {claims.tcb_status} is not accepted "
            f"(accepted: {', '.join(policy.accepted_tcb_statuses) or 'none'})",
        )
    if policy.accepted_advisories is not None:
        extra = sorted(set(claims.advisories) - set(policy.accepted_advisories))
        if extra:
            raise _fail(
                "advisories", f"advisories {', '.join(extra)} are not accepted by the policy"
            )


def _tcb_below(reported: bytes, minimum: int) -> bool:
    """SNP TCB_VERSION: compare each SPL byte (boot loader, TEE, SNP, microcode) component-wise."""
    have = int.from_bytes(reported[:8], "little")
    return any((have >> s) & 0xFF < (minimum >> s) & 0xFF for s in (0, 8, 48, 56))
