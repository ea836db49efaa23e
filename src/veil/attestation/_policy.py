"""Attestation policy: which workloads a verifier accepts (MarbleRun keys, plus ``TEE``)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import cast

from veil.attestation._model import TEE_KINDS, Claims, TEEKind
from veil.errors import ConfigurationError, PolicyError

DEFAULT_TCB_STATUSES = ("UpToDate", "SWHardeningNeeded")
_KEYS = {
    "tee": "TEE",
    "uniqueid": "UniqueID",
    "signerid": "SignerID",
    "productid": "ProductID",
    "securityversion": "SecurityVersion",
    "debug": "Debug",
    "acceptedtcbstatuses": "AcceptedTCBStatuses",
    "acceptedadvisories": "AcceptedAdvisories",
}


def _hex32(value: object, key: str) -> bytes:
    if not isinstance(value, str):
        raise ConfigurationError(f"policy key {key} must be a hex string")
    try:
        raw = bytes.fromhex(value)
    except ValueError:
        raise ConfigurationError(f"policy key {key} is not hex: {value!r}") from None
    if len(raw) != 32:
        raise ConfigurationError(f"policy key {key} must be 32 bytes (64 hex digits)")
    return raw


def _uint(value: object, key: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ConfigurationError(f"policy key {key} must be a non-negative integer")
    return value


@dataclass(frozen=True)
class Policy:
    """What a verifier accepts. Fail closed: a policy must pin an identity.

    A policy pins either ``unique_id`` (one exact build) or ``signer_id`` + ``product_id`` +
    ``min_security_version``. ``tee`` must name the TEE exactly: simulated evidence is accepted
    only by a policy whose ``tee`` is ``"simulated"``.
    """

    tee: TEEKind
    unique_id: bytes | None = None
    signer_id: bytes | None = None
    product_id: int | None = None
    min_security_version: int | None = None
    debug: bool = False
    accepted_tcb_statuses: tuple[str, ...] = DEFAULT_TCB_STATUSES
    accepted_advisories: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if self.tee not in TEE_KINDS:
            raise ConfigurationError(f"policy TEE must be one of {', '.join(TEE_KINDS)}")
        signer_complete = (
            self.signer_id is not None
            and self.product_id is not None
            and self.min_security_version is not None
        )
        if self.unique_id is None and not signer_complete:
            raise ConfigurationError(
                "the policy pins no identity: give UniqueID, or SignerID with ProductID and "
                "SecurityVersion"
            )

    @classmethod
    def from_dict(cls, doc: Mapping[str, object]) -> Policy:
        """Build from MarbleRun-style keys (``UniqueID``, ``SignerID``, …) plus ``TEE``."""
        values: dict[str, object] = {}
        for key, value in doc.items():
            canonical = _KEYS.get(key.lower())
            if canonical is None:
                raise ConfigurationError(f"unknown policy key {key!r}")
            values[canonical] = value
        tee = values.get("TEE", "sgx")
        if tee not in TEE_KINDS:
            raise ConfigurationError(f"policy TEE must be one of {', '.join(TEE_KINDS)}")
        statuses = values.get("AcceptedTCBStatuses", list(DEFAULT_TCB_STATUSES))
        advisories = values.get("AcceptedAdvisories")
        if not isinstance(statuses, list) or not all(isinstance(s, str) for s in statuses):
            raise ConfigurationError("policy key AcceptedTCBStatuses must be a list of strings")
        if advisories is not None and (
            not isinstance(advisories, list) or not all(isinstance(a, str) for a in advisories)
        ):
            raise ConfigurationError("policy key AcceptedAdvisories must be a list of strings")
        debug = values.get("Debug", False)
        if not isinstance(debug, bool):
            raise ConfigurationError("policy key Debug must be true or false")
        return cls(
            tee=tee,
            unique_id=_hex32(values["UniqueID"], "UniqueID") if "UniqueID" in values else None,
            signer_id=_hex32(values["SignerID"], "SignerID") if "SignerID" in values else None,
            product_id=_uint(values["ProductID"], "ProductID") if "ProductID" in values else None,
            min_security_version=(
                _uint(values["SecurityVersion"], "SecurityVersion")
                if "SecurityVersion" in values
                else None
            ),
            debug=debug,
            accepted_tcb_statuses=tuple(cast(list[str], statuses)),
            accepted_advisories=(
                tuple(cast(list[str], advisories)) if advisories is not None else None
            ),
        )

    @classmethod
    def from_file(cls, path: str | Path) -> Policy:
        """Read a JSON policy file."""
        try:
            doc = json.loads(Path(path).read_text(encoding="utf-8"))
        except OSError as exc:
            raise ConfigurationError(f"cannot read policy file {path}: {exc.strerror}") from None
        except ValueError as exc:
            raise ConfigurationError(f"policy file {path} is not valid JSON: {exc}") from None
        if not isinstance(doc, dict):
            raise ConfigurationError(f"policy file {path} must hold a JSON object")
        return cls.from_dict(doc)

    def to_dict(self) -> dict[str, object]:
        """The policy in MarbleRun-style keys, for files and display."""
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
        return doc


def check_claims(claims: Claims, policy: Policy) -> None:
    """Raise :class:`PolicyError` naming the first claim that the policy does not accept."""
    # 1. The TEE kind must be exactly the one the policy names; no fallback to simulation.
    if claims.tee != policy.tee:
        if claims.tee == "simulated":
            raise PolicyError(
                "simulated-TEE evidence refused: this policy requires real "
                f"{policy.tee} hardware evidence (set TEE to 'simulated' explicitly to accept it)",
                claim="tee",
            )
        raise PolicyError(
            f"evidence comes from a {claims.tee} TEE but the policy requires {policy.tee}",
            claim="tee",
        )
    # 2. Debug must equal the policy (MarbleRun semantics): a debug enclave is not confidential.
    if claims.debug != policy.debug:
        state = "a debug" if claims.debug else "a production"
        raise PolicyError(
            f"evidence is from {state} enclave, which the policy refuses", claim="debug"
        )
    # 3. Identity.
    if policy.unique_id is not None and claims.unique_id != policy.unique_id:
        raise PolicyError(
            f"measurement (UniqueID) {claims.unique_id.hex()} does not match the expected "
            f"{policy.unique_id.hex()}: a different or modified build",
            claim="unique_id",
        )
    if policy.signer_id is not None and claims.signer_id != policy.signer_id:
        raise PolicyError(
            f"SignerID {claims.signer_id.hex()} does not match the expected "
            f"{policy.signer_id.hex()}",
            claim="signer_id",
        )
    if policy.product_id is not None and claims.product_id != policy.product_id:
        raise PolicyError(
            f"ProductID {claims.product_id} does not match the expected {policy.product_id}",
            claim="product_id",
        )
    if (
        policy.min_security_version is not None
        and claims.security_version < policy.min_security_version
    ):
        raise PolicyError(
            f"SecurityVersion {claims.security_version} is below the minimum "
            f"{policy.min_security_version}",
            claim="security_version",
        )
    # 4. Platform TCB.
    if claims.tcb_status not in policy.accepted_tcb_statuses:
        raise PolicyError(
            f"TCB status {claims.tcb_status} is not accepted "
            f"(accepted: {', '.join(policy.accepted_tcb_statuses) or 'none'})",
            claim="tcb_status",
        )
    if policy.accepted_advisories is not None:
        extra = sorted(set(claims.advisories) - set(policy.accepted_advisories))
        if extra:
            raise PolicyError(
                f"advisories {', '.join(extra)} are not accepted by the policy", claim="advisories"
            )
