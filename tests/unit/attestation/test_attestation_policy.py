"""Policies fail closed: they must pin an identity, name the TEE, and reject every bad key."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from veil.attestation import DEFAULT_TCB_STATUSES, Claims, Policy, check_claims
from veil.errors import ConfigurationError, PolicyError

UNIQUE_HEX = "ab" * 32
SIGNER_HEX = "cd" * 32


@pytest.fixture
def make_claims() -> Callable[..., Claims]:
    """Factory: claims of a production simulated workload measured as UNIQUE_HEX."""

    def make(**overrides: object) -> Claims:
        fields: dict[str, object] = {
            "tee": "simulated",
            "unique_id": bytes.fromhex(UNIQUE_HEX),
            "signer_id": bytes.fromhex(SIGNER_HEX),
            "product_id": 7,
            "security_version": 3,
            "debug": False,
            "report_data": bytes(64),
        }
        fields.update(overrides)
        return Claims(**fields)  # type: ignore[arg-type]

    return make


# -- parsing -----------------------------------------------------------------------------------


def test_from_dict_reads_marblerun_keys_case_insensitively() -> None:
    """MarbleRun-style keys are accepted in any letter case and mapped to typed fields."""
    policy = Policy.from_dict(
        {
            "tee": "simulated",
            "signerid": SIGNER_HEX,
            "PRODUCTID": 7,
            "SecurityVersion": 3,
            "debug": True,
            "AcceptedTCBStatuses": ["UpToDate"],
            "acceptedadvisories": ["INTEL-SA-00001"],
        }
    )
    assert policy.tee == "simulated"
    assert policy.signer_id == bytes.fromhex(SIGNER_HEX)
    assert policy.product_id == 7
    assert policy.min_security_version == 3
    assert policy.debug is True
    assert policy.accepted_tcb_statuses == ("UpToDate",)
    assert policy.accepted_advisories == ("INTEL-SA-00001",)


def test_from_dict_defaults_to_sgx_so_simulation_is_never_implied() -> None:
    """A policy that does not name a TEE requires SGX, never the simulated TEE."""
    policy = Policy.from_dict({"UniqueID": UNIQUE_HEX})
    assert policy.tee == "sgx"
    assert policy.debug is False
    assert policy.accepted_tcb_statuses == DEFAULT_TCB_STATUSES
    assert policy.accepted_advisories is None


def test_to_dict_round_trips_through_from_dict() -> None:
    """to_dict gives MarbleRun keys that from_dict reads back into an equal policy."""
    policy = Policy.from_dict(
        {
            "TEE": "simulated",
            "UniqueID": UNIQUE_HEX,
            "SignerID": SIGNER_HEX,
            "ProductID": 1,
            "SecurityVersion": 2,
            "AcceptedAdvisories": [],
        }
    )
    doc = policy.to_dict()
    assert doc["UniqueID"] == UNIQUE_HEX
    assert Policy.from_dict(doc) == policy


@pytest.mark.parametrize(
    ("doc", "needle"),
    [
        ({"UniqueID": UNIQUE_HEX, "MRENCLAVE": UNIQUE_HEX}, "unknown policy key"),
        ({"UniqueID": "zz" * 32}, "not hex"),
        ({"UniqueID": "ab" * 31}, "32 or 48 bytes"),
        ({"UniqueID": 12}, "hex string"),
        ({"TEE": "nitro", "UniqueID": UNIQUE_HEX}, "TEE must be one of"),
        ({"UniqueID": UNIQUE_HEX, "Debug": "false"}, "Debug"),
        ({"SignerID": SIGNER_HEX, "ProductID": -1, "SecurityVersion": 1}, "non-negative"),
        ({"SignerID": SIGNER_HEX, "ProductID": True, "SecurityVersion": 1}, "non-negative"),
        ({"UniqueID": UNIQUE_HEX, "AcceptedTCBStatuses": "UpToDate"}, "AcceptedTCBStatuses"),
        ({"UniqueID": UNIQUE_HEX, "AcceptedAdvisories": [1]}, "AcceptedAdvisories"),
    ],
    ids=[
        "unknown-key",
        "bad-hex",
        "short-id",
        "id-not-string",
        "unknown-tee",
        "debug-not-bool",
        "negative-product",
        "bool-as-integer",
        "statuses-not-list",
        "advisories-not-strings",
    ],
)
def test_from_dict_rejects_invalid_documents(doc: dict[str, object], needle: str) -> None:
    """An invalid policy document raises ConfigurationError naming the offending key."""
    with pytest.raises(ConfigurationError, match=needle):
        Policy.from_dict(doc)


@pytest.mark.parametrize(
    "doc",
    [
        {},
        {"TEE": "simulated"},
        {"SignerID": SIGNER_HEX},
        {"SignerID": SIGNER_HEX, "ProductID": 1},
        {"ProductID": 1, "SecurityVersion": 1},
    ],
    ids=["empty", "tee-only", "signer-only", "no-security-version", "no-signer"],
)
def test_policy_that_pins_no_identity_is_refused(doc: dict[str, object]) -> None:
    """A policy without UniqueID or a complete SignerID triple fails closed."""
    with pytest.raises(ConfigurationError, match="pins no identity"):
        Policy.from_dict(doc)


def test_constructor_rejects_unknown_tee() -> None:
    """The dataclass itself refuses a TEE kind it does not know."""
    with pytest.raises(ConfigurationError, match="TEE must be one of"):
        Policy(tee="nitro", unique_id=bytes(32))  # type: ignore[arg-type]


def test_from_file_reads_a_json_policy(tmp_path: Path) -> None:
    """from_file parses a JSON object with the same rules as from_dict."""
    path = tmp_path / "policy.json"
    path.write_text(json.dumps({"TEE": "simulated", "UniqueID": UNIQUE_HEX}), encoding="utf-8")
    assert Policy.from_file(path) == Policy(tee="simulated", unique_id=bytes.fromhex(UNIQUE_HEX))


@pytest.mark.parametrize(
    ("content", "needle"),
    [(None, "cannot read"), ("{not json", "not valid JSON"), ("[1, 2]", "JSON object")],
    ids=["missing", "not-json", "not-object"],
)
def test_from_file_rejects_unreadable_files(
    tmp_path: Path, content: str | None, needle: str
) -> None:
    """A missing file, invalid JSON or a non-object document raises ConfigurationError."""
    path = tmp_path / "policy.json"
    if content is not None:
        path.write_text(content, encoding="utf-8")
    with pytest.raises(ConfigurationError, match=needle):
        Policy.from_file(path)


# -- check_claims ------------------------------------------------------------------------------


def test_check_claims_accepts_matching_unique_id(make_claims: Callable[..., Claims]) -> None:
    """Claims that match every pinned field pass without error."""
    check_claims(make_claims(), Policy(tee="simulated", unique_id=bytes.fromhex(UNIQUE_HEX)))


def test_check_claims_accepts_signer_triple_at_or_above_minimum(
    make_claims: Callable[..., Claims],
) -> None:
    """A SignerID policy accepts the same signer and product at a higher security version."""
    policy = Policy(
        tee="simulated",
        signer_id=bytes.fromhex(SIGNER_HEX),
        product_id=7,
        min_security_version=2,
    )
    check_claims(make_claims(security_version=2), policy)
    check_claims(make_claims(security_version=9), policy)


@pytest.mark.parametrize(
    ("claims_overrides", "policy_fields", "claim"),
    [
        ({"tee": "simulated"}, {"tee": "sgx"}, "tee"),
        ({"tee": "tdx"}, {"tee": "sgx"}, "tee"),
        ({"debug": True}, {}, "debug"),
        ({}, {"debug": True}, "debug"),
        ({"unique_id": bytes(32)}, {}, "unique_id"),
        ({}, {"signer_id": bytes(32), "product_id": 7, "min_security_version": 1}, "signer_id"),
        (
            {},
            {"signer_id": bytes.fromhex(SIGNER_HEX), "product_id": 8, "min_security_version": 1},
            "product_id",
        ),
        (
            {},
            {"signer_id": bytes.fromhex(SIGNER_HEX), "product_id": 7, "min_security_version": 4},
            "security_version",
        ),
        ({"tcb_status": "OutOfDate"}, {}, "tcb_status"),
        (
            {"advisories": ("INTEL-SA-1", "INTEL-SA-2")},
            {"accepted_advisories": ("INTEL-SA-1",)},
            "advisories",
        ),
    ],
    ids=[
        "simulated-vs-sgx",
        "tdx-vs-sgx",
        "debug-enclave",
        "production-vs-debug-policy",
        "other-measurement",
        "other-signer",
        "other-product",
        "old-security-version",
        "tcb-out-of-date",
        "unaccepted-advisory",
    ],
)
def test_check_claims_names_the_first_rejected_claim(
    make_claims: Callable[..., Claims],
    claims_overrides: dict[str, object],
    policy_fields: dict[str, object],
    claim: str,
) -> None:
    """A claim the policy does not accept raises PolicyError whose ``claim`` names it."""
    fields: dict[str, object] = {"tee": "simulated", "unique_id": bytes.fromhex(UNIQUE_HEX)}
    if "signer_id" in policy_fields:
        fields.pop("unique_id")
    fields.update(policy_fields)
    policy = Policy(**fields)  # type: ignore[arg-type]
    with pytest.raises(PolicyError) as info:
        check_claims(make_claims(**claims_overrides), policy)
    assert info.value.claim == claim


def test_simulated_claims_against_hardware_policy_say_so(
    make_claims: Callable[..., Claims],
) -> None:
    """Refusing simulated claims tells the operator to opt in explicitly; nothing falls back."""
    with pytest.raises(PolicyError, match="simulated-TEE evidence refused"):
        check_claims(make_claims(), Policy(tee="sgx", unique_id=bytes.fromhex(UNIQUE_HEX)))


def test_empty_advisory_allow_list_rejects_any_advisory(
    make_claims: Callable[..., Claims],
) -> None:
    """An empty AcceptedAdvisories list fails closed on the first advisory."""
    policy = Policy(tee="simulated", unique_id=bytes.fromhex(UNIQUE_HEX), accepted_advisories=())
    with pytest.raises(PolicyError) as info:
        check_claims(make_claims(advisories=("INTEL-SA-1",)), policy)
    assert info.value.claim == "advisories"
