"""Malformed SEV-SNP reports only ever raise VerificationError subclasses and are never accepted."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from veil.attestation.backends.sev_snp import REPORT_SIZE, verify_snp_report
from veil.errors import VerificationError

from .conftest import Vector, vector_inputs

FUZZ = settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@pytest.fixture(scope="module")
def genuine(
    vectors: Path, snp_vectors: dict[str, Vector]
) -> tuple[bytes, list[bytes], list[bytes], dt.datetime]:
    """The accepted trustee report with its VCEK, pinned bundle and time."""
    return vector_inputs(vectors, snp_vectors["trustee-snp-milan-vcek"])


def refuses(genuine: tuple[bytes, list[bytes], list[bytes], dt.datetime], report: bytes) -> None:
    """Assert that ``report`` is refused with a VerificationError (anything else propagates)."""
    _, certs, anchors, now = genuine
    with pytest.raises(VerificationError):
        verify_snp_report(report, certs=certs, trust_anchors=anchors, now=now)


@FUZZ
@given(cut=st.integers(min_value=0, max_value=REPORT_SIZE - 1))
def test_truncated_reports_are_refused(
    genuine: tuple[bytes, list[bytes], list[bytes], dt.datetime], cut: int
) -> None:
    """Any strict prefix of a genuine report is refused."""
    refuses(genuine, genuine[0][:cut])


@FUZZ
@given(extra=st.binary(min_size=1, max_size=256))
def test_extended_reports_are_refused(
    genuine: tuple[bytes, list[bytes], list[bytes], dt.datetime], extra: bytes
) -> None:
    """A genuine report with bytes appended is refused."""
    refuses(genuine, genuine[0] + extra)


@FUZZ
@given(
    flips=st.lists(
        st.tuples(st.integers(0, REPORT_SIZE - 1), st.integers(0, 7)), min_size=1, max_size=4
    )
)
def test_bit_flipped_reports_are_refused(
    genuine: tuple[bytes, list[bytes], list[bytes], dt.datetime], flips: list[tuple[int, int]]
) -> None:
    """Flipping any set of bits of a genuine report (that changes it) makes it refused."""
    raw = bytearray(genuine[0])
    for offset, bit in flips:
        raw[offset] ^= 1 << bit
    if bytes(raw) == genuine[0]:
        return  # the flips cancelled out
    refuses(genuine, bytes(raw))


@FUZZ
@given(
    data=st.one_of(st.binary(min_size=REPORT_SIZE, max_size=REPORT_SIZE), st.binary(max_size=2048))
)
def test_random_reports_are_refused(
    genuine: tuple[bytes, list[bytes], list[bytes], dt.datetime], data: bytes
) -> None:
    """Random bytes, of the report size or any other, are refused."""
    refuses(genuine, data)
