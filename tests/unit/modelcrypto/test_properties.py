"""Property tests: any plaintext round-trips, and any single flipped bit is detected."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from veil.errors import IntegrityError
from veil.modelcrypto import generate_key
from veil.modelcrypto._decrypt import open_buffer
from veil.modelcrypto._encrypt import seal_buffer

KEY = generate_key()
AD = b"veil-model:v1:property"
SEGMENT_SIZES = st.sampled_from([57, 64, 100, 256])  # 57 is the smallest legal size


@settings(max_examples=150, deadline=None)
@given(plaintext=st.binary(max_size=1500), segment_size=SEGMENT_SIZES)
def test_any_plaintext_round_trips(plaintext: bytes, segment_size: int) -> None:
    """Every plaintext decrypts to itself at every segment size."""
    ciphertext = seal_buffer(plaintext, key=KEY, associated_data=AD, segment_size=segment_size)
    opened = open_buffer(ciphertext, key=KEY, associated_data=AD, segment_size=segment_size)
    assert opened == plaintext


@settings(max_examples=150, deadline=None)
@given(plaintext=st.binary(max_size=800), segment_size=SEGMENT_SIZES, data=st.data())
def test_any_single_bit_flip_is_detected(
    plaintext: bytes, segment_size: int, data: st.DataObject
) -> None:
    """Flipping any one bit of a ciphertext makes decryption raise IntegrityError."""
    ciphertext = bytearray(
        seal_buffer(plaintext, key=KEY, associated_data=AD, segment_size=segment_size)
    )
    bit = data.draw(st.integers(0, len(ciphertext) * 8 - 1), label="bit")
    ciphertext[bit // 8] ^= 1 << (bit % 8)
    with pytest.raises(IntegrityError):
        open_buffer(ciphertext, key=KEY, associated_data=AD, segment_size=segment_size)
