"""Round trips of veil.modelcrypto at real 1 MiB segments and at small test segments."""

from __future__ import annotations

import io
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from veil.errors import ConfigurationError, IntegrityError
from veil.modelcrypto import (
    SEGMENT_SIZE,
    decrypt_bytes,
    decrypt_stream,
    encrypt_bytes,
    encrypt_stream,
    plaintext_size,
)
from veil.modelcrypto._decrypt import open_stream
from veil.modelcrypto._encrypt import seal_stream

from .conftest import HEADER, SMALL_FIRST, SMALL_NEXT, SMALL_SEGMENT, TAG

FIRST = SEGMENT_SIZE - HEADER - TAG  # plaintext bytes in a full first 1 MiB segment
NEXT = SEGMENT_SIZE - TAG


class _Trickle(io.RawIOBase):
    """A non-seekable stream that returns at most 1000 bytes per read."""

    def __init__(self, data: bytes) -> None:
        self._data = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        chunk = self._data.read(min(len(buffer), 1000))
        buffer[: len(chunk)] = chunk
        return len(chunk)


@pytest.mark.parametrize(
    "size",
    [0, 1, FIRST - 1, FIRST, FIRST + 1, FIRST + NEXT, FIRST + 2 * NEXT + 7],
    ids=["empty", "one", "first-1", "first", "first+1", "two-full", "three-and-a-bit"],
)
def test_bytes_round_trip_at_segment_boundaries(key: bytes, ad: bytes, size: int) -> None:
    """Plaintexts around 1 MiB segment boundaries decrypt to themselves."""
    plaintext = os.urandom(size)
    ciphertext = encrypt_bytes(plaintext, key=key, associated_data=ad)
    assert plaintext_size(len(ciphertext)) == size
    assert decrypt_bytes(ciphertext, key=key, associated_data=ad) == plaintext


def test_empty_plaintext_is_one_last_segment(key: bytes, ad: bytes) -> None:
    """An empty plaintext encrypts to a header and a single tag."""
    ciphertext = encrypt_bytes(b"", key=key, associated_data=ad)
    assert len(ciphertext) == HEADER + TAG
    assert decrypt_bytes(ciphertext, key=key, associated_data=ad) == bytearray()


def test_exactly_full_segments_end_without_an_empty_segment(key: bytes, ad: bytes) -> None:
    """A plaintext that fills its segments exactly ends with a full last segment, as Tink does."""
    ciphertext = encrypt_bytes(bytes(FIRST + NEXT), key=key, associated_data=ad)
    assert len(ciphertext) == 2 * SEGMENT_SIZE


def test_stream_and_bytes_agree(key: bytes, ad: bytes) -> None:
    """encrypt_stream and encrypt_bytes make same-length ciphertexts that both decrypt alike."""
    plaintext = os.urandom(FIRST + NEXT + 12345)
    sink = io.BytesIO()
    written = encrypt_stream(io.BytesIO(plaintext), sink, key=key, associated_data=ad)
    streamed = sink.getvalue()
    whole = encrypt_bytes(plaintext, key=key, associated_data=ad)
    assert written == len(streamed) == len(whole)
    for ciphertext in (streamed, whole):
        assert decrypt_bytes(ciphertext, key=key, associated_data=ad) == plaintext
        assert decrypt_stream(io.BytesIO(ciphertext), key=key, associated_data=ad) == plaintext


def test_stream_reads_survive_short_reads_and_no_seek(key: bytes, ad: bytes) -> None:
    """Encryption and decryption work from non-seekable streams that return short reads."""
    plaintext = os.urandom(3 * SMALL_NEXT + 5)
    sink = io.BytesIO()
    seal_stream(_Trickle(plaintext), sink, key=key, associated_data=ad, segment_size=SMALL_SEGMENT)
    ciphertext = sink.getvalue()
    opened = open_stream(
        _Trickle(ciphertext), key=key, associated_data=ad, segment_size=SMALL_SEGMENT
    )
    assert opened == plaintext


def test_decrypt_stream_starts_at_the_current_position(key: bytes, ad: bytes) -> None:
    """decrypt_stream reads from the stream's current position to its end."""
    plaintext = os.urandom(40 * SMALL_NEXT)
    ciphertext = encrypt_bytes(plaintext, key=key, associated_data=ad)
    source = io.BytesIO(b"prefix" + ciphertext)
    source.seek(len(b"prefix"))
    assert decrypt_stream(source, key=key, associated_data=ad) == plaintext


def test_many_small_segments_decrypt_in_parallel(
    seal_small: Callable[[bytes], bytes], open_small: Callable[[bytes], bytearray]
) -> None:
    """A ciphertext with hundreds of segments (the thread-pool path) round-trips."""
    plaintext = os.urandom(SMALL_FIRST + 300 * SMALL_NEXT + 3)
    assert open_small(seal_small(plaintext)) == plaintext


def test_large_model_round_trips_through_files(key: bytes, ad: bytes, tmp_path: Path) -> None:
    """A 20 MiB model encrypted to a file decrypts from it, in batches and in parallel."""
    plaintext = os.urandom(20 * SEGMENT_SIZE + 99)
    path = tmp_path / "model.veil"
    with path.open("wb") as dst:
        encrypt_stream(io.BytesIO(plaintext), dst, key=key, associated_data=ad)
    with path.open("rb") as src:
        assert decrypt_stream(src, key=key, associated_data=ad) == plaintext


def test_decrypt_accepts_any_bytes_like(key: bytes, ad: bytes) -> None:
    """decrypt_bytes takes bytes, bytearray and memoryview and returns a bytearray."""
    ciphertext = encrypt_bytes(b"weights", key=key, associated_data=ad)
    for data in (ciphertext, bytearray(ciphertext), memoryview(ciphertext)):
        result = decrypt_bytes(data, key=key, associated_data=ad)
        assert isinstance(result, bytearray)
        assert result == b"weights"


def test_each_encryption_uses_a_fresh_header(key: bytes, ad: bytes) -> None:
    """Encrypting the same plaintext twice gives different salts and ciphertexts."""
    first = encrypt_bytes(b"same", key=key, associated_data=ad)
    second = encrypt_bytes(b"same", key=key, associated_data=ad)
    assert first[:HEADER] != second[:HEADER]
    assert first != second


@pytest.mark.parametrize("size", [0, 10, HEADER + TAG - 1, SEGMENT_SIZE + TAG - 1])
def test_plaintext_size_rejects_impossible_lengths(size: int) -> None:
    """plaintext_size raises IntegrityError for lengths no ciphertext can have."""
    with pytest.raises(IntegrityError, match="truncated"):
        plaintext_size(size)


def test_plaintext_size_counts_every_tag() -> None:
    """plaintext_size subtracts the header and one tag per segment."""
    assert plaintext_size(HEADER + TAG) == 0
    assert plaintext_size(SEGMENT_SIZE) == FIRST
    assert plaintext_size(SEGMENT_SIZE + TAG) == FIRST
    assert plaintext_size(2 * SEGMENT_SIZE + TAG + 1) == FIRST + NEXT + 1


@pytest.mark.parametrize("bad_key", [b"", bytes(16), bytes(33)])
def test_keys_of_the_wrong_size_are_refused(bad_key: bytes, ad: bytes) -> None:
    """Encrypting or decrypting with a key that is not 32 bytes raises ConfigurationError."""
    with pytest.raises(ConfigurationError, match="32 raw bytes"):
        encrypt_bytes(b"x", key=bad_key, associated_data=ad)
    with pytest.raises(ConfigurationError, match="32 raw bytes"):
        decrypt_bytes(bytes(HEADER + TAG), key=bad_key, associated_data=ad)
