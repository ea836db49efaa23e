"""Shared fixtures for veil.modelcrypto: keys, associated data, and small-segment helpers."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from veil.modelcrypto import generate_key, model_associated_data
from veil.modelcrypto._decrypt import open_buffer
from veil.modelcrypto._encrypt import seal_buffer

# Small segments make multi-segment cases fast; 1 MiB cases are tested separately.
SMALL_SEGMENT = 128
HEADER = 40
TAG = 16
SMALL_FIRST = SMALL_SEGMENT - HEADER - TAG  # plaintext bytes in the first small segment
SMALL_NEXT = SMALL_SEGMENT - TAG  # plaintext bytes in every later small segment


@pytest.fixture
def key() -> bytes:
    """A fresh model key."""
    return generate_key()


@pytest.fixture
def ad() -> bytes:
    """Associated data for a model called "resnet50"."""
    return model_associated_data("resnet50")


@pytest.fixture
def seal_small(key: bytes, ad: bytes) -> Callable[[bytes], bytes]:
    """Encrypt with the fixture key and associated data, in small segments."""

    def seal(plaintext: bytes) -> bytes:
        return seal_buffer(plaintext, key=key, associated_data=ad, segment_size=SMALL_SEGMENT)

    return seal


@pytest.fixture
def open_small(key: bytes, ad: bytes) -> Callable[[bytes], bytearray]:
    """Decrypt with the fixture key and associated data, in small segments."""

    def open_(ciphertext: bytes) -> bytearray:
        return open_buffer(ciphertext, key=key, associated_data=ad, segment_size=SMALL_SEGMENT)

    return open_


def small_segments(ciphertext: bytes) -> list[bytes]:
    """Split a small-segment ciphertext into its segments (the first one without the header)."""
    body = [ciphertext[HEADER:SMALL_SEGMENT]]
    body += [
        ciphertext[i : i + SMALL_SEGMENT]
        for i in range(SMALL_SEGMENT, len(ciphertext), SMALL_SEGMENT)
    ]
    return body
