"""Encrypt a model into the streaming AEAD format, segment by segment, in constant memory."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import BinaryIO

from veil.errors import ConfigurationError
from veil.modelcrypto._format import (
    MAX_SEGMENTS,
    SEGMENT_SIZE,
    Buffer,
    Header,
    SegmentCipher,
    SegmentLayout,
    check_key,
)

__all__ = ["encrypt_bytes", "encrypt_stream", "seal_buffer", "seal_stream"]


def encrypt_stream(src: BinaryIO, dst: BinaryIO, *, key: bytes, associated_data: bytes) -> int:
    """Encrypt everything readable from ``src`` into ``dst``; return the ciphertext bytes written.

    Memory stays at about two segments (2 MiB) whatever the model size. ``associated_data`` is
    bound to the ciphertext (use :func:`model_associated_data`); decryption needs the same value.
    """
    return seal_stream(
        src, dst, key=key, associated_data=associated_data, segment_size=SEGMENT_SIZE
    )


def encrypt_bytes(plaintext: Buffer, *, key: bytes, associated_data: bytes) -> bytes:
    """Encrypt ``plaintext`` held in memory; return the whole ciphertext."""
    return seal_buffer(
        plaintext, key=key, associated_data=associated_data, segment_size=SEGMENT_SIZE
    )


def seal_stream(
    src: BinaryIO, dst: BinaryIO, *, key: bytes, associated_data: bytes, segment_size: int
) -> int:
    """:func:`encrypt_stream` with an explicit segment size (tests use small segments)."""
    layout = SegmentLayout(segment_size)
    written = 0

    def write(data: bytes) -> None:
        nonlocal written
        dst.write(data)
        written += len(data)

    _seal(_stream_chunks(src, layout), write, key=key, associated_data=associated_data)
    return written


def seal_buffer(
    plaintext: Buffer, *, key: bytes, associated_data: bytes, segment_size: int
) -> bytes:
    """:func:`encrypt_bytes` with an explicit segment size (tests use small segments)."""
    layout = SegmentLayout(segment_size)
    parts: list[bytes] = []
    view = memoryview(plaintext).cast("B")
    _seal(_buffer_chunks(view, layout), parts.append, key=key, associated_data=associated_data)
    return b"".join(parts)


def _seal(
    chunks: Iterator[Buffer],
    write: Callable[[bytes], object],
    *,
    key: bytes,
    associated_data: bytes,
) -> None:
    """Write the header, then each chunk as a segment; the chunk with no successor is last.

    One chunk of look-ahead decides the last-segment flag, as in Tink's encrypting stream, so a
    plaintext that exactly fills its segments ends with a full last segment (no empty one).
    """
    check_key(key)
    header = Header.generate()
    cipher = SegmentCipher(key, header, associated_data)
    write(header.to_bytes())
    current = next(chunks)
    index = 0
    for following in chunks:
        write(cipher.encrypt(index, current, last=False))
        index += 1
        if index >= MAX_SEGMENTS:
            raise ConfigurationError("the model is too large for the streaming AEAD format.")
        current = following
    write(cipher.encrypt(index, current, last=True))


def _stream_chunks(src: BinaryIO, layout: SegmentLayout) -> Iterator[bytes]:
    """The first chunk always (maybe empty), then full chunks until the stream ends."""
    yield _read_up_to(src, layout.first_plaintext_size)
    while chunk := _read_up_to(src, layout.plaintext_segment_size):
        yield chunk


def _buffer_chunks(view: memoryview, layout: SegmentLayout) -> Iterator[memoryview]:
    """The same chunks as :func:`_stream_chunks`, as views into one buffer (no copies)."""
    yield view[: layout.first_plaintext_size]
    step = layout.plaintext_segment_size
    for start in range(layout.first_plaintext_size, len(view), step):
        yield view[start : start + step]


def _read_up_to(src: BinaryIO, size: int) -> bytes:
    """Read exactly ``size`` bytes, or fewer only at end of stream (short reads are retried)."""
    data = src.read(size)
    if len(data) == size or not data:
        return data
    parts = [data]
    missing = size - len(data)
    while missing and (more := src.read(missing)):
        parts.append(more)
        missing -= len(more)
    return b"".join(parts)
