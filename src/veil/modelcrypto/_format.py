"""Wire format of Tink's ``AES256_GCM_HKDF_1MB`` streaming AEAD (AesGcmHkdfStreaming).

A ciphertext is a header followed by segments::

    header   = header_length (1 byte, = 40) || salt (32 bytes) || nonce_prefix (7 bytes)
    segment  = AES-256-GCM(derived_key, nonce, plaintext_chunk, aad=b"") = chunk || tag (16 bytes)
    nonce    = nonce_prefix || segment_number (4 bytes, big-endian) || last_segment (1 byte, 0 or 1)
    derived_key = HKDF-SHA256(ikm=key, salt=salt, info=associated_data, length=32)

Every ciphertext segment is ``segment_size`` bytes (1 MiB) except the last one; the header lives
inside the first segment, so the first segment holds ``header_length`` fewer plaintext bytes.
The layout is fully determined by the total ciphertext length, which is how a reader finds the
last segment (Tink's seekable decrypting channel does the same).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TypeAlias

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from veil.errors import ConfigurationError, IntegrityError, ProtocolError

KEY_SIZE = 32
SEGMENT_SIZE = 1 << 20
TAG_SIZE = 16
NONCE_PREFIX_SIZE = 7
HEADER_LENGTH = 1 + KEY_SIZE + NONCE_PREFIX_SIZE
MAX_SEGMENTS = 1 << 32  # the segment number is a 4-byte counter in the nonce

Buffer: TypeAlias = bytes | bytearray | memoryview


@dataclass(frozen=True)
class Header:
    """The parsed ciphertext header: a per-file random salt and nonce prefix."""

    salt: bytes
    nonce_prefix: bytes
    header_length: int = HEADER_LENGTH

    def __post_init__(self) -> None:
        if self.header_length != HEADER_LENGTH:
            raise ProtocolError(
                f"model ciphertext header length must be {HEADER_LENGTH}; "
                "the file is not a veil model ciphertext (Tink AES256_GCM_HKDF_1MB)."
            )
        if len(self.salt) != KEY_SIZE or len(self.nonce_prefix) != NONCE_PREFIX_SIZE:
            raise ProtocolError(
                f"model ciphertext header needs a {KEY_SIZE}-byte salt and a "
                f"{NONCE_PREFIX_SIZE}-byte nonce prefix; the file is not a veil model ciphertext."
            )

    @classmethod
    def generate(cls) -> Header:
        """A fresh header with a random salt and nonce prefix, as Tink makes one per file."""
        return cls(salt=os.urandom(KEY_SIZE), nonce_prefix=os.urandom(NONCE_PREFIX_SIZE))

    def to_bytes(self) -> bytes:
        """The header as it is written at the start of the ciphertext."""
        return bytes([self.header_length]) + self.salt + self.nonce_prefix


def read_header(data: Buffer) -> Header:
    """Parse the header at the start of ``data``; raise ProtocolError if it is malformed."""
    view = memoryview(data).cast("B")
    if len(view) < HEADER_LENGTH:
        raise ProtocolError(
            f"model ciphertext header is {HEADER_LENGTH} bytes but only {len(view)} were given; "
            "the file is truncated or not a model ciphertext."
        )
    return Header(
        header_length=view[0],
        salt=bytes(view[1 : 1 + KEY_SIZE]),
        nonce_prefix=bytes(view[1 + KEY_SIZE : HEADER_LENGTH]),
    )


def check_key(key: bytes) -> None:
    """Raise ConfigurationError unless ``key`` is a raw 32-byte key (never echoes it)."""
    if not isinstance(key, bytes) or len(key) != KEY_SIZE:
        raise ConfigurationError(
            f"the model key must be exactly {KEY_SIZE} raw bytes; "
            "read key files with veil.modelcrypto.load_key."
        )


@dataclass(frozen=True)
class SegmentLayout:
    """Where segment ``i`` lives in the ciphertext and in the plaintext, for one segment size."""

    segment_size: int = SEGMENT_SIZE

    def __post_init__(self) -> None:
        if self.segment_size <= HEADER_LENGTH + TAG_SIZE:
            raise ValueError(f"segment size must exceed {HEADER_LENGTH + TAG_SIZE} bytes")

    @property
    def first_plaintext_size(self) -> int:
        """Plaintext bytes in a full first segment (it also carries the header)."""
        return self.segment_size - HEADER_LENGTH - TAG_SIZE

    @property
    def plaintext_segment_size(self) -> int:
        """Plaintext bytes in every other full segment."""
        return self.segment_size - TAG_SIZE

    def segment_count(self, ciphertext_size: int) -> int:
        """Number of segments in a ciphertext of this length; IntegrityError if none fits."""
        if ciphertext_size < HEADER_LENGTH + TAG_SIZE:
            raise IntegrityError(
                "model ciphertext is truncated: it is shorter than a header and one segment."
            )
        count = -(-ciphertext_size // self.segment_size)
        if ciphertext_size - (count - 1) * self.segment_size < TAG_SIZE:
            raise IntegrityError(
                "model ciphertext is truncated: its last segment is shorter than a tag."
            )
        if count > MAX_SEGMENTS:
            raise IntegrityError("model ciphertext has more segments than the format allows.")
        return count

    def plaintext_size(self, ciphertext_size: int) -> int:
        """Plaintext length of a ciphertext of this length; IntegrityError if impossible."""
        return ciphertext_size - HEADER_LENGTH - self.segment_count(ciphertext_size) * TAG_SIZE

    def ciphertext_size(self, plaintext_size: int) -> int:
        """Ciphertext length for a plaintext of this length (the inverse of plaintext_size)."""
        rest = max(0, plaintext_size - self.first_plaintext_size)
        count = 1 + -(-rest // self.plaintext_segment_size)
        return HEADER_LENGTH + plaintext_size + count * TAG_SIZE

    def ciphertext_span(self, index: int, ciphertext_size: int) -> tuple[int, int]:
        """Start and end offsets of segment ``index`` in the whole ciphertext."""
        start = max(index * self.segment_size, HEADER_LENGTH)
        return start, min((index + 1) * self.segment_size, ciphertext_size)

    def plaintext_offset(self, index: int) -> int:
        """Offset of segment ``index``'s plaintext in the whole plaintext."""
        return max(index * self.segment_size, HEADER_LENGTH) - HEADER_LENGTH - index * TAG_SIZE


class SegmentCipher:
    """AES-256-GCM under the per-file HKDF key, with Tink's segment nonces."""

    def __init__(self, key: bytes, header: Header, associated_data: bytes) -> None:
        derived = HKDF(
            algorithm=SHA256(), length=KEY_SIZE, salt=header.salt, info=associated_data
        ).derive(key)
        self._aead = AESGCM(derived)
        self._nonce_prefix = header.nonce_prefix

    def _nonce(self, index: int, *, last: bool) -> bytes:
        return self._nonce_prefix + index.to_bytes(4, "big") + (b"\x01" if last else b"\x00")

    def encrypt(self, index: int, plaintext: Buffer, *, last: bool) -> bytes:
        """Seal one segment's plaintext; the result is the chunk followed by its tag."""
        return self._aead.encrypt(self._nonce(index, last=last), plaintext, None)

    def decrypt_into(self, index: int, segment: Buffer, out: memoryview, *, last: bool) -> bool:
        """Open one segment into ``out``; False (and ``out`` zeroed) if it fails to verify.

        The AEAD call releases the GIL, so several segments can be opened in threads.
        """
        try:
            self._aead.decrypt_into(self._nonce(index, last=last), segment, None, out)
        except InvalidTag:
            out[:] = bytes(len(out))
            return False
        return True
