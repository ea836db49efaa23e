"""The simulated platform measures, issues and seals deterministically; report data binds exactly."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from veil.attestation import (
    REPORT_DATA_SIZE,
    SimulatedIdentity,
    SimulatedPlatform,
    check_report_data,
    coordinator_report_data,
    marble_report_data,
    measure,
)
from veil.attestation.backends.simulated import verify_simulated
from veil.errors import ConfigurationError, EvidenceError

from .conftest import UNIQUE_ID

# -- measure -----------------------------------------------------------------------------------


def test_measure_is_deterministic_for_the_same_inputs(tmp_path: Path) -> None:
    """The same entry point and extra files always give the same 32-byte measurement."""
    extra = tmp_path / "model.onnx"
    extra.write_bytes(b"weights")
    first = measure("serve", extra_files=[extra])
    assert len(first) == 32
    assert measure("serve", extra_files=[extra]) == first


def test_measure_changes_with_the_entry_point() -> None:
    """Another entry point is another workload, so it measures differently."""
    assert measure("serve") != measure("coordinator")


def test_measure_changes_when_an_extra_file_changes(tmp_path: Path) -> None:
    """Modifying a measured file changes the measurement, as a modified build would."""
    extra = tmp_path / "config"
    extra.write_bytes(b"a")
    before = measure("serve", extra_files=[extra])
    extra.write_bytes(b"b")
    assert measure("serve", extra_files=[extra]) != before
    assert measure("serve") not in (before, measure("serve", extra_files=[extra]))


def test_measure_refuses_a_missing_extra_file(tmp_path: Path) -> None:
    """A measured file that cannot be read is a configuration error, not a silent skip."""
    with pytest.raises(ConfigurationError, match="cannot read measured file"):
        measure("serve", extra_files=[tmp_path / "missing"])


# -- issue ---------------------------------------------------------------------------------------


def test_issue_zero_pads_short_report_data(platform: SimulatedPlatform) -> None:
    """Report data shorter than 64 bytes is bound zero-padded to 64 bytes."""
    evidence = platform.issue(SimulatedIdentity(unique_id=UNIQUE_ID), b"nonce")
    claims = verify_simulated(
        evidence.raw,
        trust_anchor_der=platform.root_der,
        now=platform.root_cert.not_valid_before_utc,
    )
    assert claims.report_data == b"nonce".ljust(REPORT_DATA_SIZE, b"\x00")


def test_issue_refuses_report_data_longer_than_64_bytes(platform: SimulatedPlatform) -> None:
    """More than 64 bytes of report data cannot be bound and is refused."""
    with pytest.raises(ConfigurationError, match="at most 64 bytes"):
        platform.issue(SimulatedIdentity(unique_id=UNIQUE_ID), bytes(65))


def test_reopened_platform_keeps_its_root(platform: SimulatedPlatform) -> None:
    """Opening the same directory again gives the same root certificate and seal keys."""
    again = SimulatedPlatform(platform.directory)
    identity = SimulatedIdentity(unique_id=UNIQUE_ID)
    assert again.root_der == platform.root_der
    assert again.seal_key(identity) == platform.seal_key(identity)
    assert again.fingerprint() == platform.fingerprint()


def test_platform_private_files_are_owner_only(platform: SimulatedPlatform) -> None:
    """The root key, attestation key and seal secret are written with mode 0600."""
    for name in ("root.key", "attestation-key.key", "seal.secret"):
        assert (platform.directory / name).stat().st_mode & 0o777 == 0o600


# -- seal_key ------------------------------------------------------------------------------------


def test_product_seal_key_survives_a_new_measurement(platform: SimulatedPlatform) -> None:
    """ProductKey binds SignerID and ProductID, so an upgraded build derives the same key."""
    old = SimulatedIdentity(unique_id=UNIQUE_ID)
    new = SimulatedIdentity(unique_id=bytes(32))
    assert len(platform.seal_key(old)) == 32
    assert platform.seal_key(old) == platform.seal_key(new)


def test_product_seal_key_differs_per_product(platform: SimulatedPlatform) -> None:
    """Another ProductID (or signer) derives another ProductKey."""
    base = SimulatedIdentity(unique_id=UNIQUE_ID)
    assert platform.seal_key(base) != platform.seal_key(
        SimulatedIdentity(unique_id=UNIQUE_ID, product_id=2)
    )
    assert platform.seal_key(base) != platform.seal_key(
        SimulatedIdentity(unique_id=UNIQUE_ID, signer_id=bytes(32))
    )


def test_unique_seal_key_binds_the_exact_measurement(platform: SimulatedPlatform) -> None:
    """UniqueKey changes with the measurement and differs from the ProductKey."""
    old = SimulatedIdentity(unique_id=UNIQUE_ID)
    new = SimulatedIdentity(unique_id=bytes(32))
    unique = platform.seal_key(old, mode="UniqueKey")
    assert unique != platform.seal_key(new, mode="UniqueKey")
    assert unique != platform.seal_key(old)


def test_seal_key_differs_between_platforms(
    make_platform: Callable[[], SimulatedPlatform],
) -> None:
    """The same identity on another platform cannot derive the seal key."""
    identity = SimulatedIdentity(unique_id=UNIQUE_ID)
    assert make_platform().seal_key(identity) != make_platform().seal_key(identity)


def test_unknown_seal_mode_is_refused(platform: SimulatedPlatform) -> None:
    """Only ProductKey and UniqueKey exist; anything else is a configuration error."""
    with pytest.raises(ConfigurationError, match="unknown seal mode"):
        platform.seal_key(SimulatedIdentity(unique_id=UNIQUE_ID), mode="Disabled")


# -- report-data binding -------------------------------------------------------------------------


def test_coordinator_report_data_binds_certificate_and_nonce() -> None:
    """Another root certificate or another nonce gives other report data, padded to 64 bytes."""
    base = coordinator_report_data(b"root-der", b"nonce")
    assert len(base) == REPORT_DATA_SIZE
    assert base[32:] == bytes(32)
    assert coordinator_report_data(b"root-der", b"nonce") == base
    assert coordinator_report_data(b"other-der", b"nonce") != base
    assert coordinator_report_data(b"root-der", b"other") != base
    assert coordinator_report_data(b"root-der") != base


def test_marble_and_coordinator_report_data_are_domain_separated() -> None:
    """The same bytes bound as a marble key and as a coordinator root give different report data."""
    assert marble_report_data(b"same bytes") != coordinator_report_data(b"same bytes")
    assert marble_report_data(b"key one") != marble_report_data(b"key two")
    assert len(marble_report_data(b"key")) == REPORT_DATA_SIZE


def test_check_report_data_accepts_only_the_exact_value() -> None:
    """Equal report data passes; any difference raises at the report-data step."""
    expected = marble_report_data(b"key")
    check_report_data(expected, expected)
    with pytest.raises(EvidenceError) as info:
        check_report_data(marble_report_data(b"other key"), expected)
    assert info.value.step == "report-data"


def test_check_report_data_refuses_an_expected_value_of_the_wrong_size() -> None:
    """A verifier that computes a short expected value fails closed even on an equal match."""
    with pytest.raises(EvidenceError):
        check_report_data(b"short", b"short")
