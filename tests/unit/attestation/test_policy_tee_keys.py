"""Policy keys for the simulated TEE, TDX and SNP."""

from __future__ import annotations

import pytest

from veil.attestation import Claims, Policy, check_claims
from veil.errors import ConfigurationError, PolicyError

MRTD = bytes(range(48))


def _tdx(**fields: object) -> Claims:
    base: dict[str, object] = {
        "rtmr0": "00" * 48,
        "rtmr1": "11" * 48,
        "mr_config_id": "00" * 48,
        "mr_owner": "00" * 48,
    }
    base.update(fields)
    return Claims(
        tee="tdx",
        unique_id=MRTD,
        signer_id=b"",
        product_id=0,
        security_version=0,
        debug=False,
        report_data=bytes(64),
        fields=base,
    )


def test_simulation_true_means_the_simulated_tee() -> None:
    """``"Simulation": true`` selects the simulated TEE explicitly."""
    policy = Policy.from_dict({"Simulation": True, "UniqueID": "ab" * 32})
    assert policy.tee == "simulated"


def test_simulation_true_with_another_tee_is_contradictory() -> None:
    """A policy cannot both say Simulation and name a hardware TEE."""
    with pytest.raises(ConfigurationError, match="Simulation"):
        Policy.from_dict({"Simulation": True, "TEE": "sgx", "UniqueID": "ab" * 32})


def test_a_policy_without_simulation_is_for_sgx_hardware() -> None:
    """The default TEE of a policy is SGX hardware: simulation is never implied."""
    assert Policy.from_dict({"UniqueID": "ab" * 32}).tee == "sgx"


def test_tdx_policy_checks_mrtd_and_rtmrs() -> None:
    """MrTd pins the TD measurement; each RtmrN must match when given."""
    policy = Policy.from_dict({"TEE": "tdx", "MrTd": MRTD.hex(), "Rtmr1": "11" * 48})
    check_claims(_tdx(), policy)
    with pytest.raises(PolicyError) as info:
        check_claims(_tdx(rtmr1="22" * 48), policy)
    assert info.value.claim == "rtmr1"


def test_tdx_policy_checks_config_and_owner() -> None:
    """MrConfigId and MrOwner are compared exactly."""
    policy = Policy.from_dict({"TEE": "tdx", "MrTd": MRTD.hex(), "MrOwner": "01" * 48})
    with pytest.raises(PolicyError) as info:
        check_claims(_tdx(), policy)
    assert info.value.claim == "mr_owner"


def _snp(reported_tcb: bytes, chip: bytes) -> Claims:
    return Claims(
        tee="sev-snp",
        unique_id=MRTD,
        signer_id=b"",
        product_id=0,
        security_version=0,
        debug=False,
        report_data=bytes(64),
        fields={"reported_tcb": reported_tcb.hex(), "chip_id": chip.hex()},
    )


def test_snp_minimum_tcb_is_compared_component_wise() -> None:
    """Every SPL of the reported TCB must be at least the policy's MinimumTcb component."""
    tcb = bytes([3, 0, 0, 0, 0, 0, 8, 115])
    policy = Policy.from_dict(
        {"TEE": "sev-snp", "Measurement": MRTD.hex(), "MinimumTcb": int.from_bytes(tcb, "little")}
    )
    check_claims(_snp(tcb, bytes(64)), policy)
    lower = bytes([3, 0, 0, 0, 0, 0, 7, 115])
    with pytest.raises(PolicyError) as info:
        check_claims(_snp(lower, bytes(64)), policy)
    assert info.value.claim == "reported_tcb"


def test_snp_chip_ids_allow_list_and_empty_list_rejects() -> None:
    """ChipIds is an allow-list: a listed chip passes, an empty list rejects every chip."""
    chip = bytes(range(64))
    allowed = Policy.from_dict(
        {"TEE": "sev-snp", "Measurement": MRTD.hex(), "ChipIds": [chip.hex()]}
    )
    check_claims(_snp(bytes(8), chip), allowed)
    empty = Policy.from_dict({"TEE": "sev-snp", "Measurement": MRTD.hex(), "ChipIds": []})
    with pytest.raises(PolicyError):
        check_claims(_snp(bytes(8), chip), empty)


def test_empty_status_allow_list_rejects_every_status() -> None:
    """``AcceptedTCBStatuses: []`` accepts nothing (fail closed)."""
    policy = Policy.from_dict({"TEE": "tdx", "MrTd": MRTD.hex(), "AcceptedTCBStatuses": []})
    with pytest.raises(PolicyError) as info:
        check_claims(_tdx(), policy)
    assert info.value.claim == "tcb_status"


def test_platform_default_pins_no_identity_but_refuses_debug() -> None:
    """The default policy of ``veil attest verify`` needs no identity and refuses debug."""
    policy = Policy.platform_default("tdx")
    check_claims(_tdx(), policy)
    debug = Claims(
        tee="tdx",
        unique_id=MRTD,
        signer_id=b"",
        product_id=0,
        security_version=0,
        debug=True,
        report_data=bytes(64),
    )
    with pytest.raises(PolicyError) as info:
        check_claims(debug, policy)
    assert info.value.claim == "debug"
