"""Each SEV-SNP verification step refuses what it must, using reports signed by a synthetic chain."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from veil.attestation.backends.sev_snp import verify_snp_report
from veil.errors import EvidenceError

from .conftest import FakeAmd, Vector, vector_inputs

NOW = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
CHIP_ID = bytes(range(64))
MILAN_TCB = bytes([3, 0, 0, 0, 0, 0, 8, 115])  # bl 3, tee 0, snp 8, ucode 115
MILAN_SPL = {"bl": 3, "tee": 0, "snp": 8, "ucode": 115}


def body(
    *,
    version: int = 2,
    key_info: int = 0,
    chip_id: bytes = CHIP_ID,
    reported_tcb: bytes = MILAN_TCB,
    cpuid_family: int = 0,
    author_key_digest: bytes = bytes(48),
) -> bytes:
    """The signed 0x2A0 bytes of a report with the given fields (others fixed)."""
    raw = bytearray(0x2A0)
    raw[0x000:0x004] = version.to_bytes(4, "little")
    raw[0x008:0x010] = (0x30000).to_bytes(8, "little")
    raw[0x034:0x038] = (1).to_bytes(4, "little")
    raw[0x048:0x04C] = key_info.to_bytes(4, "little")
    raw[0x050:0x090] = b"nonce".ljust(64, b"\x00")
    raw[0x090:0x0C0] = b"\x11" * 48
    raw[0x110:0x140] = author_key_digest
    raw[0x180:0x188] = reported_tcb
    raw[0x188] = cpuid_family
    raw[0x1A0:0x1E0] = chip_id
    return bytes(raw)


def verify(amd: FakeAmd, report: bytes, *, now: dt.datetime = NOW) -> None:
    """Verify ``report`` against the synthetic chain (ARK+ASK pinned, leaf given)."""
    verify_snp_report(
        report, certs=[amd.leaf_der], trust_anchors=[amd.ark_der, amd.ask_der], now=now
    )


def step_of(amd: FakeAmd, report: bytes) -> str:
    """The step at which verification of ``report`` fails."""
    with pytest.raises(EvidenceError) as caught:
        verify(amd, report)
    return caught.value.step


def test_a_synthetic_chain_and_report_verify(make_amd: Callable[..., FakeAmd]) -> None:
    """A report signed by a VCEK whose hwID and SPLs match is accepted with its claims."""
    amd = make_amd(hwid=CHIP_ID, spl=MILAN_SPL)
    claims = verify_snp_report(
        amd.sign(body()), certs=[amd.leaf_der], trust_anchors=[amd.ark_der, amd.ask_der], now=NOW
    )
    assert claims.unique_id == b"\x11" * 48
    assert claims.fields["reported_tcb_decoded"] == {"bl": 3, "tee": 0, "snp": 8, "ucode": 115}
    assert claims.debug is False


def test_an_older_vcek_with_a_raw_hwid_is_read(make_amd: Callable[..., FakeAmd]) -> None:
    """Older KDS VCEKs hold the 64 hwID bytes without an OCTET STRING wrapper."""
    amd = make_amd(hwid=CHIP_ID, spl=MILAN_SPL, hwid_raw=True)
    verify(amd, amd.sign(body()))


def test_a_chip_id_other_than_the_vcek_hwid_is_a_tcb_failure(
    make_amd: Callable[..., FakeAmd],
) -> None:
    """A VCEK for another chip does not endorse this report."""
    amd = make_amd(hwid=bytes(64), spl=MILAN_SPL)
    assert step_of(amd, amd.sign(body())) == "tcb"


@pytest.mark.parametrize("component", ["bl", "tee", "snp", "ucode"])
def test_each_spl_mismatch_is_a_tcb_failure(
    make_amd: Callable[..., FakeAmd], component: str
) -> None:
    """A VCEK issued for another TCB version does not endorse REPORTED_TCB."""
    amd = make_amd(hwid=CHIP_ID, spl={**MILAN_SPL, component: MILAN_SPL[component] + 1})
    assert step_of(amd, amd.sign(body())) == "tcb"


def test_a_missing_spl_extension_is_a_tcb_failure(make_amd: Callable[..., FakeAmd]) -> None:
    """A VCEK without the microcode SPL cannot vouch for the reported microcode."""
    amd = make_amd(hwid=CHIP_ID, spl={k: v for k, v in MILAN_SPL.items() if k != "ucode"})
    assert step_of(amd, amd.sign(body())) == "tcb"


def test_a_masked_chip_id_skips_the_hwid_match(make_amd: Callable[..., FakeAmd]) -> None:
    """With MASK_CHIP_ID the report carries zeros, so only the SPLs are compared."""
    amd = make_amd(hwid=CHIP_ID, spl=MILAN_SPL)
    claims = verify_snp_report(
        amd.sign(body(key_info=0b10, chip_id=bytes(64))),
        certs=[amd.leaf_der],
        trust_anchors=[amd.ark_der, amd.ask_der],
        now=NOW,
    )
    assert claims.fields["mask_chip_id"] is True


def test_a_vlek_signed_report_verifies_through_the_asvk(make_amd: Callable[..., FakeAmd]) -> None:
    """SIGNING_KEY=1 means a VLEK (no hwID) issued by the ASVK signed the report."""
    amd = make_amd(hwid=CHIP_ID, spl=MILAN_SPL, vlek=True)
    claims = verify_snp_report(
        amd.sign(body(key_info=1 << 2)),
        certs=[amd.leaf_der],
        trust_anchors=[amd.ark_der, amd.ask_der],
        now=NOW,
    )
    assert claims.fields["signing_key"] == 1


def test_a_vcek_cannot_stand_in_for_a_vlek(make_amd: Callable[..., FakeAmd]) -> None:
    """A report that says VLEK but comes with a VCEK is refused at the chain step."""
    amd = make_amd(hwid=CHIP_ID, spl=MILAN_SPL)
    assert step_of(amd, amd.sign(body(key_info=1 << 2))) == "chain"


def test_turin_reports_use_the_turin_tcb_layout(make_amd: Callable[..., FakeAmd]) -> None:
    """Report v3 with CPUID family 0x1A reads REPORTED_TCB as fmc, bl, tee, snp, …, ucode."""
    turin_tcb = bytes([1, 2, 3, 4, 0, 0, 0, 5])
    spl = {"fmc": 1, "bl": 2, "tee": 3, "snp": 4, "ucode": 5}
    amd = make_amd(hwid=CHIP_ID, spl=spl)
    report = amd.sign(body(version=3, reported_tcb=turin_tcb, cpuid_family=0x1A))
    verify(amd, report)
    wrong = make_amd(hwid=CHIP_ID, spl={**spl, "fmc": 9})
    assert (
        step_of(wrong, wrong.sign(body(version=3, reported_tcb=turin_tcb, cpuid_family=0x1A)))
        == "tcb"
    )


def test_the_author_key_digest_is_the_signer_when_enabled(
    make_amd: Callable[..., FakeAmd],
) -> None:
    """AUTHOR_KEY_EN makes AUTHOR_KEY_DIGEST the signer identity."""
    amd = make_amd(hwid=CHIP_ID, spl=MILAN_SPL)
    digest = b"\xaa" * 48
    claims = verify_snp_report(
        amd.sign(body(key_info=1, author_key_digest=digest)),
        certs=[amd.leaf_der],
        trust_anchors=[amd.ark_der, amd.ask_der],
        now=NOW,
    )
    assert claims.signer_id == digest


def test_an_expired_synthetic_vcek_is_a_chain_failure(make_amd: Callable[..., FakeAmd]) -> None:
    """A leaf that expired before ``now`` breaks the chain."""
    amd = make_amd(
        hwid=CHIP_ID, spl=MILAN_SPL, leaf_not_after=dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    )
    assert step_of(amd, amd.sign(body())) == "chain"


def test_a_foreign_ask_is_ignored(
    make_amd: Callable[..., FakeAmd], vectors: Path, snp_vectors: dict[str, Vector]
) -> None:
    """An ASK named SEV-Milan but not signed by the pinned ARK does not make a chain."""
    report, certs, anchors, now = vector_inputs(vectors, snp_vectors["trustee-snp-milan-vcek"])
    fake = make_amd(hwid=CHIP_ID, spl=MILAN_SPL)
    with pytest.raises(EvidenceError) as caught:
        verify_snp_report(report, certs=[*certs, fake.ask_der], trust_anchors=[anchors[1]], now=now)
    assert caught.value.step == "chain"


def test_two_endorsement_keys_are_a_chain_failure(make_amd: Callable[..., FakeAmd]) -> None:
    """Exactly one VCEK/VLEK may come with the evidence."""
    amd = make_amd(hwid=CHIP_ID, spl=MILAN_SPL)
    other = make_amd(hwid=CHIP_ID, spl=MILAN_SPL)
    with pytest.raises(EvidenceError) as caught:
        verify_snp_report(
            amd.sign(body()),
            certs=[amd.leaf_der, other.leaf_der],
            trust_anchors=[amd.ark_der, amd.ask_der],
            now=NOW,
        )
    assert caught.value.step == "chain"


@pytest.mark.parametrize(
    ("description", "kwargs"),
    [
        ("version 1", {"version": 1}),
        ("version 6", {"version": 6}),
        ("no signing key", {"key_info": 7 << 2}),
    ],
)
def test_unsupported_headers_are_parse_failures(
    make_amd: Callable[..., FakeAmd], description: str, kwargs: dict[str, Any]
) -> None:
    """Versions outside 2..5 and reports with no VCEK/VLEK signature are refused at parse."""
    amd = make_amd(hwid=CHIP_ID, spl=MILAN_SPL)
    assert step_of(amd, amd.sign(body(**kwargs))) == "parse", description


def test_another_signature_algorithm_is_a_parse_failure(make_amd: Callable[..., FakeAmd]) -> None:
    """Only SIGNATURE_ALGO 1 (ECDSA P-384 with SHA-384) is defined."""
    amd = make_amd(hwid=CHIP_ID, spl=MILAN_SPL)
    raw = bytearray(body())
    raw[0x034] = 2
    assert step_of(amd, amd.sign(bytes(raw))) == "parse"


def test_nonzero_signature_padding_is_a_parse_failure(make_amd: Callable[..., FakeAmd]) -> None:
    """The unsigned bytes after R and S must be zero, so a report has one encoding."""
    amd = make_amd(hwid=CHIP_ID, spl=MILAN_SPL)
    report = bytearray(amd.sign(body()))
    report[0x4A0 - 1] = 1
    assert step_of(amd, bytes(report)) == "parse"
