"""Every modification of a model ciphertext is detected and reported as IntegrityError."""

from __future__ import annotations

import io
import os
from collections.abc import Callable

import pytest

from veil.errors import IntegrityError
from veil.modelcrypto import (
    SEGMENT_SIZE,
    decrypt_bytes,
    decrypt_stream,
    encrypt_bytes,
    generate_key,
    model_associated_data,
)

from .conftest import HEADER, SMALL_FIRST, SMALL_NEXT, SMALL_SEGMENT, TAG, small_segments

Seal = Callable[[bytes], bytes]
Open = Callable[[bytes], bytearray]

AUTH_FAILED = "failed authentication in segment"
FOUR_SEGMENTS = SMALL_FIRST + 2 * SMALL_NEXT + 30  # three full small segments and a short one


def _flip(data: bytes, bit: int) -> bytes:
    """``data`` with one bit inverted."""
    changed = bytearray(data)
    changed[bit // 8] ^= 1 << (bit % 8)
    return bytes(changed)


@pytest.fixture
def four_segments(seal_small: Seal) -> tuple[bytes, bytes]:
    """A plaintext of four small segments (the last one short) and its ciphertext."""
    plaintext = os.urandom(FOUR_SEGMENTS)
    return plaintext, seal_small(plaintext)


def test_the_fixture_really_has_four_segments(four_segments: tuple[bytes, bytes]) -> None:
    """The tamper fixture spans three full small segments and a short fourth one."""
    _, ciphertext = four_segments
    lengths = [len(s) for s in small_segments(ciphertext)]
    assert lengths == [SMALL_SEGMENT - HEADER, SMALL_SEGMENT, SMALL_SEGMENT, 30 + TAG]


@pytest.mark.parametrize("offset", [0, 1, 20, HEADER - 1], ids=["length", "salt", "salt", "nonce"])
def test_flipped_header_bit_is_detected(
    four_segments: tuple[bytes, bytes], open_small: Open, offset: int
) -> None:
    """A flipped bit in the header length, salt or nonce prefix fails decryption."""
    _, ciphertext = four_segments
    with pytest.raises(IntegrityError):
        open_small(_flip(ciphertext, offset * 8 + 3))


@pytest.mark.parametrize("segment", [0, 1, 2, 3])
@pytest.mark.parametrize("where", ["body", "tag"])
def test_flipped_bit_in_each_segment_names_the_segment(
    four_segments: tuple[bytes, bytes], open_small: Open, segment: int, where: str
) -> None:
    """A flipped bit in any segment's body or tag fails authentication of that segment."""
    _, ciphertext = four_segments
    start = max(segment * SMALL_SEGMENT, HEADER)
    end = min((segment + 1) * SMALL_SEGMENT, len(ciphertext))
    offset = start + 2 if where == "body" else end - 1
    with pytest.raises(IntegrityError, match=f"{AUTH_FAILED} {segment}:"):
        open_small(_flip(ciphertext, offset * 8))


def test_truncation_at_a_segment_boundary_reports_missing_last_segment(
    four_segments: tuple[bytes, bytes], open_small: Open
) -> None:
    """Cutting the file after a full segment is reported as a missing last segment."""
    _, ciphertext = four_segments
    for cut in (SMALL_SEGMENT, 2 * SMALL_SEGMENT, 3 * SMALL_SEGMENT):
        with pytest.raises(IntegrityError, match="truncated: the last segment is missing"):
            open_small(ciphertext[:cut])


@pytest.mark.parametrize("cut", [1, HEADER, HEADER + TAG - 1, SMALL_SEGMENT + 5, -1])
def test_truncation_mid_segment_is_detected(
    four_segments: tuple[bytes, bytes], open_small: Open, cut: int
) -> None:
    """Cutting the file inside the header, a segment or a tag fails decryption."""
    _, ciphertext = four_segments
    with pytest.raises(IntegrityError):
        open_small(ciphertext[:cut])


def test_appended_segment_is_detected(seal_small: Seal, open_small: Open) -> None:
    """A segment appended after a full last segment is reported as an extension."""
    ciphertext = seal_small(os.urandom(SMALL_FIRST + SMALL_NEXT))
    extra = small_segments(seal_small(os.urandom(SMALL_FIRST + 2 * SMALL_NEXT)))[1]
    with pytest.raises(IntegrityError, match="continues after its last segment"):
        open_small(ciphertext + extra)


@pytest.mark.parametrize("extra", [b"\x00", bytes(TAG), bytes(SMALL_SEGMENT)])
def test_appended_bytes_are_detected(
    four_segments: tuple[bytes, bytes], open_small: Open, extra: bytes
) -> None:
    """Any bytes appended to a ciphertext make it fail decryption."""
    _, ciphertext = four_segments
    with pytest.raises(IntegrityError):
        open_small(ciphertext + extra)


def test_swapped_segments_are_detected(
    four_segments: tuple[bytes, bytes], open_small: Open
) -> None:
    """Exchanging two full segments fails authentication at the first moved one."""
    _, ciphertext = four_segments
    segments = small_segments(ciphertext)
    swapped = ciphertext[:HEADER] + b"".join([segments[0], segments[2], segments[1], segments[3]])
    with pytest.raises(IntegrityError, match=f"{AUTH_FAILED} 1:"):
        open_small(swapped)


def test_segment_from_another_file_with_the_same_key_is_detected(
    four_segments: tuple[bytes, bytes], seal_small: Seal, open_small: Open
) -> None:
    """A segment spliced in from another ciphertext under the same key fails authentication."""
    plaintext, ciphertext = four_segments
    other = small_segments(seal_small(plaintext))
    segments = small_segments(ciphertext)
    spliced = ciphertext[:HEADER] + b"".join([segments[0], segments[1], other[2], segments[3]])
    with pytest.raises(IntegrityError, match=f"{AUTH_FAILED} 2:"):
        open_small(spliced)


def test_header_from_another_file_is_detected(
    four_segments: tuple[bytes, bytes], seal_small: Seal, open_small: Open
) -> None:
    """Putting another file's header in front of the segments fails authentication."""
    plaintext, ciphertext = four_segments
    other = seal_small(plaintext)
    with pytest.raises(IntegrityError, match=f"{AUTH_FAILED} 0:"):
        open_small(other[:HEADER] + ciphertext[HEADER:])


def test_wrong_key_fails_with_a_message_that_hides_the_key(ad: bytes) -> None:
    """Decrypting with another key fails in segment 0, and the message holds no key bytes."""
    key, wrong = generate_key(), generate_key()
    ciphertext = encrypt_bytes(b"secret weights", key=key, associated_data=ad)
    with pytest.raises(IntegrityError, match=f"{AUTH_FAILED} 0: wrong key") as caught:
        decrypt_bytes(ciphertext, key=wrong, associated_data=ad)
    message = str(caught.value)
    assert key.hex() not in message
    assert wrong.hex() not in message
    assert "secret weights" not in message


def test_wrong_model_name_fails(key: bytes) -> None:
    """Decrypting under another model name's associated data fails authentication."""
    ciphertext = encrypt_bytes(b"w", key=key, associated_data=model_associated_data("a"))
    with pytest.raises(IntegrityError, match="wrong model name"):
        decrypt_bytes(ciphertext, key=key, associated_data=model_associated_data("b"))


def test_real_segments_detect_truncation_and_flips(key: bytes, ad: bytes) -> None:
    """With real 1 MiB segments, a cut at the boundary and a flipped bit are both detected."""
    plaintext = os.urandom(2 * SEGMENT_SIZE)
    ciphertext = encrypt_bytes(plaintext, key=key, associated_data=ad)
    with pytest.raises(IntegrityError, match="the last segment is missing"):
        decrypt_bytes(ciphertext[:SEGMENT_SIZE], key=key, associated_data=ad)
    with pytest.raises(IntegrityError, match=f"{AUTH_FAILED} 1:"):
        decrypt_bytes(_flip(ciphertext, (SEGMENT_SIZE + 7) * 8), key=key, associated_data=ad)


def test_parallel_decryption_reports_the_first_bad_segment(key: bytes, ad: bytes) -> None:
    """With many segments tampered, the error names the lowest tampered segment."""
    ciphertext = encrypt_bytes(os.urandom(12 * SEGMENT_SIZE), key=key, associated_data=ad)
    for segment in (9, 4, 11):
        ciphertext = _flip(ciphertext, (segment * SEGMENT_SIZE + 100) * 8)
    with pytest.raises(IntegrityError, match=f"{AUTH_FAILED} 4:"):
        decrypt_bytes(ciphertext, key=key, associated_data=ad)
    with pytest.raises(IntegrityError, match=f"{AUTH_FAILED} 4:"):
        decrypt_stream(io.BytesIO(ciphertext), key=key, associated_data=ad)


def test_stream_decryption_detects_truncation(key: bytes, ad: bytes) -> None:
    """decrypt_stream reports a file cut at a segment boundary as truncated."""
    ciphertext = encrypt_bytes(os.urandom(3 * SEGMENT_SIZE), key=key, associated_data=ad)
    with pytest.raises(IntegrityError, match="the last segment is missing"):
        decrypt_stream(io.BytesIO(ciphertext[: 2 * SEGMENT_SIZE]), key=key, associated_data=ad)
