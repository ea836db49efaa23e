"""Fuzzing: mutated quotes and collateral only ever raise VerificationError and never verify."""

from __future__ import annotations

import base64

from hypothesis import given, settings
from hypothesis import strategies as st

from veil.attestation import Claims
from veil.attestation.backends.dcap import DcapCollateral, parse_quote, verify_dcap_quote
from veil.errors import EvidenceError, VerificationError

from ._tamper import BEGIN, END, flip, last_pem_span, with_root_der_bit_flipped
from ._vectors import DcapVector, vector

_FUZZ = settings(max_examples=200, deadline=None)
_BASES = st.sampled_from(["dcapqvl-sgx-v3", "dcapqvl-tdx-v4", "gotdxguest-tdx-v5"]).map(vector)


def _verify(base: DcapVector, quote: bytes, collateral: DcapCollateral | None = None) -> Claims:
    return verify_dcap_quote(
        quote, collateral or base.collateral, root_ca_der=base.root_der, now=base.now
    )


def _refused(base: DcapVector, quote: bytes, collateral: DcapCollateral | None = None) -> str:
    try:
        _verify(base, quote, collateral)
    except VerificationError as error:
        return error.step if isinstance(error, EvidenceError) else type(error).__name__
    raise AssertionError("a mutated input verified")


def _quote_bytes(base: DcapVector) -> bytes:
    return base.quote[: parse_quote(base.quote).size]


@_FUZZ
@given(base=_BASES, data=st.data())
def test_truncated_quotes_are_refused(base: DcapVector, data: st.DataObject) -> None:
    """Any prefix shorter than the quote is refused."""
    quote = _quote_bytes(base)
    _refused(base, quote[: data.draw(st.integers(0, len(quote) - 1))])


@_FUZZ
@given(base=_BASES, data=st.data(), extra=st.binary(min_size=1, max_size=64))
def test_bytes_inserted_inside_the_quote_are_refused(
    base: DcapVector, data: st.DataObject, extra: bytes
) -> None:
    """Inserting bytes anywhere inside the quote shifts a signed or length-checked field."""
    quote = _quote_bytes(base)
    at = data.draw(st.integers(0, len(quote) - 1))
    extended = quote[:at] + extra + quote[at:]
    if extended[: len(quote)] == quote:  # the insertion repeated the tail: same quote + trailer
        return
    _refused(base, extended)


@_FUZZ
@given(base=_BASES, data=st.data())
def test_bit_flipped_quotes_are_refused(base: DcapVector, data: st.DataObject) -> None:
    """Every bit of the quote is covered by a signature, a hash or a strict parse."""
    quote = _quote_bytes(base)
    _refused(base, flip(quote, data.draw(st.integers(0, 8 * len(quote) - 1))))


@_FUZZ
@given(base=_BASES, data=st.data())
def test_flipped_root_copy_in_quote_is_refused_at_chain(
    base: DcapVector, data: st.DataObject
) -> None:
    """Any bit flipped in the root certificate shipped in the quote is refused at 'chain'."""
    quote = _quote_bytes(base)
    start, end = last_pem_span(quote)
    root_bits = 8 * len(base.root_der)
    if data.draw(st.booleans()):  # flip the DER and re-encode it as canonical PEM
        tampered = with_root_der_bit_flipped(quote, data.draw(st.integers(0, root_bits - 1)))
    else:  # flip a bit of the PEM text itself
        tampered = flip(quote, data.draw(st.integers(8 * start, 8 * end - 1)))
    assert _refused(base, tampered) == "chain"


@_FUZZ
@given(quote=st.binary(max_size=6000))
def test_random_bytes_are_refused(quote: bytes) -> None:
    """Random bytes never verify and never raise anything but a VerificationError."""
    _refused(vector("dcapqvl-sgx-v3"), quote)


@_FUZZ
@given(base=_BASES, header=st.binary(min_size=48, max_size=48), tail=st.binary(max_size=5000))
def test_random_bodies_behind_a_valid_header_are_refused(
    base: DcapVector, header: bytes, tail: bytes
) -> None:
    """A genuine header followed by random bytes is refused (mostly at 'parse')."""
    _refused(base, _quote_bytes(base)[:48] + tail)
    _refused(base, header + _quote_bytes(base)[48:])


@_FUZZ
@given(base=_BASES, data=st.data())
def test_bit_flipped_collateral_is_refused(base: DcapVector, data: st.DataObject) -> None:
    """A bit flipped anywhere in the collateral JSON is refused unless it left every value equal
    (e.g. the case of a hex digit)."""
    text = base.collateral_text
    tampered = flip(text, data.draw(st.integers(0, 8 * len(text) - 1)))
    try:
        collateral = DcapCollateral.from_json(tampered)
    except EvidenceError as error:
        step = error.step
    else:
        if collateral == base.collateral:
            return
        step = _refused(base, _quote_bytes(base), collateral)
    assert step != "accepted"


@_FUZZ
@given(base=_BASES, data=st.data())
def test_bit_flipped_collateral_values_are_refused(base: DcapVector, data: st.DataObject) -> None:
    """A bit flipped inside any decoded collateral value (chains, CRLs, JSON, signatures) fails."""
    original = base.collateral
    name = data.draw(st.sampled_from(sorted(DcapCollateral.__dataclass_fields__)))
    value = getattr(original, name)
    raw = value.encode() if isinstance(value, str) else value
    flipped = flip(raw, data.draw(st.integers(0, 8 * len(raw) - 1)))
    if isinstance(value, str):
        try:
            changed: str | bytes = flipped.decode()
        except UnicodeDecodeError:
            return
    else:
        changed = flipped
    collateral = DcapCollateral(**{**original.__dict__, name: changed})
    _refused(base, _quote_bytes(base), collateral)


@_FUZZ
@given(text=st.one_of(st.binary(max_size=2000), st.text(max_size=2000)))
def test_random_collateral_text_is_a_parse_error(text: bytes | str) -> None:
    """Random collateral text is refused at 'parse' and never raises anything else."""
    step = "accepted"
    try:
        DcapCollateral.from_json(text)
    except EvidenceError as error:
        step = error.step
    assert step == "parse"


def test_pem_markers_are_where_the_tests_expect() -> None:
    """Sanity check for the helpers: the quote's last PEM block is the pinned root."""
    base = vector("dcapqvl-sgx-v3")
    start, end = last_pem_span(base.quote)
    body = base.quote[start + len(BEGIN) : end - len(END)].replace(b"\n", b"")
    assert base64.b64decode(body) == base.root_der
