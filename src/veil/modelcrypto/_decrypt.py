"""Decrypt a model ciphertext into one preallocated in-memory buffer; plaintext never hits disk.

Segments are independent AES-GCM messages whose nonces bind their position and the last-segment
flag, so they can be opened in any order: large ciphertexts are opened in a small thread pool
(``cryptography`` releases the GIL during AES-GCM). On any failure the output buffer is zeroed
before IntegrityError is raised, so no unauthenticated plaintext escapes.
"""

from __future__ import annotations

import os
from concurrent.futures import Executor, ThreadPoolExecutor
from contextlib import nullcontext
from typing import BinaryIO

from veil.errors import IntegrityError, ProtocolError
from veil.modelcrypto._format import (
    HEADER_LENGTH,
    SEGMENT_SIZE,
    TAG_SIZE,
    Buffer,
    Header,
    SegmentCipher,
    SegmentLayout,
    check_key,
    read_header,
)

__all__ = ["decrypt_bytes", "decrypt_stream", "open_buffer", "open_stream", "plaintext_size"]

_PARALLEL_MIN_SEGMENTS = 8  # below this, thread start-up costs more than it saves
_MAX_WORKERS = 4
_STREAM_BATCH_SEGMENTS = 16  # decrypt_stream reads this many segments at a time


def plaintext_size(ciphertext_size: int) -> int:
    """Plaintext length of a ciphertext of ``ciphertext_size`` bytes.

    Raises IntegrityError when no ciphertext can have that length (it was truncated).
    """
    return SegmentLayout(SEGMENT_SIZE).plaintext_size(ciphertext_size)


def decrypt_bytes(ciphertext: Buffer, *, key: bytes, associated_data: bytes) -> bytearray:
    """Authenticate and decrypt a whole ciphertext held in memory.

    Raises IntegrityError for a wrong key, wrong associated data (model name), any modified byte,
    truncation, extension, or reordered or foreign segments.
    """
    return open_buffer(
        ciphertext, key=key, associated_data=associated_data, segment_size=SEGMENT_SIZE
    )


def decrypt_stream(src: BinaryIO, *, key: bytes, associated_data: bytes) -> bytearray:
    """Read a ciphertext from ``src`` (to end of file) and return its plaintext in memory.

    A seekable ``src`` is read in batches of segments into a plaintext buffer sized up front;
    otherwise the ciphertext is read whole first. Errors are those of :func:`decrypt_bytes`.
    """
    return open_stream(src, key=key, associated_data=associated_data, segment_size=SEGMENT_SIZE)


def open_buffer(
    ciphertext: Buffer, *, key: bytes, associated_data: bytes, segment_size: int
) -> bytearray:
    """:func:`decrypt_bytes` with an explicit segment size (tests use small segments)."""
    check_key(key)
    layout = SegmentLayout(segment_size)
    data = memoryview(ciphertext).cast("B")
    size = len(data)
    count = layout.segment_count(size)
    cipher = SegmentCipher(key, _header(data), associated_data)
    out = bytearray(layout.plaintext_size(size))
    with _pool(count) as pool:
        _open_batch(
            cipher,
            data,
            layout=layout,
            chunk_offset=0,
            indices=range(count),
            size=size,
            out=memoryview(out),
            pool=pool,
        )
    return out


def open_stream(
    src: BinaryIO, *, key: bytes, associated_data: bytes, segment_size: int
) -> bytearray:
    """:func:`decrypt_stream` with an explicit segment size (tests use small segments)."""
    if not src.seekable():
        return open_buffer(
            src.read(), key=key, associated_data=associated_data, segment_size=segment_size
        )
    check_key(key)
    layout = SegmentLayout(segment_size)
    start = src.tell()
    size = src.seek(0, os.SEEK_END) - start
    src.seek(start)
    count = layout.segment_count(size)
    cipher = SegmentCipher(key, _header(_read_exact(src, HEADER_LENGTH)), associated_data)
    out = bytearray(layout.plaintext_size(size))
    buffer = bytearray(min(count, _STREAM_BATCH_SEGMENTS) * segment_size)
    with _pool(count) as pool:
        position = HEADER_LENGTH
        for first in range(0, count, _STREAM_BATCH_SEGMENTS):
            batch = range(first, min(first + _STREAM_BATCH_SEGMENTS, count))
            end = layout.ciphertext_span(batch[-1], size)[1]
            chunk = memoryview(buffer)[: end - position]
            if _read_into(src, chunk) != len(chunk):
                out[:] = bytes(len(out))
                raise IntegrityError("model ciphertext is truncated: the file shrank while read.")
            _open_batch(
                cipher,
                chunk,
                layout=layout,
                chunk_offset=position,
                indices=batch,
                size=size,
                out=memoryview(out),
                pool=pool,
            )
            position = end
    return out


def _open_batch(
    cipher: SegmentCipher,
    chunk: memoryview,
    *,
    layout: SegmentLayout,
    chunk_offset: int,
    indices: range,
    size: int,
    out: memoryview,
    pool: Executor | None,
) -> None:
    """Open segments ``indices``, found in ``chunk`` (which starts at ``chunk_offset``).

    Failures are reported for the lowest failing segment; ``out`` is zeroed before raising.
    """
    count = layout.segment_count(size)  # arithmetic on the length, already validated

    def open_one(index: int) -> None:
        start, end = layout.ciphertext_span(index, size)
        segment = chunk[start - chunk_offset : end - chunk_offset]
        offset = layout.plaintext_offset(index)
        target = out[offset : offset + len(segment) - TAG_SIZE]
        last = index == count - 1
        if not cipher.decrypt_into(index, segment, target, last=last):
            raise _authentication_failure(cipher, index, segment, last=last)

    try:
        if pool is None:
            for index in indices:
                open_one(index)
        else:
            for _ in pool.map(open_one, indices):  # in order: the lowest failure raises first
                pass
    except IntegrityError:
        _wait_and_zero(pool, out)
        raise


def _authentication_failure(
    cipher: SegmentCipher, index: int, segment: memoryview, *, last: bool
) -> IntegrityError:
    """Name the likely cause: a segment that verifies with the other last-flag was moved."""
    scratch = bytearray(len(segment) - TAG_SIZE)
    moved = cipher.decrypt_into(index, segment, memoryview(scratch), last=not last)
    scratch[:] = bytes(len(scratch))
    if moved and last:
        return IntegrityError("model ciphertext is truncated: the last segment is missing.")
    if moved:
        return IntegrityError(
            "model ciphertext continues after its last segment: the file was extended."
        )
    return IntegrityError(
        f"model ciphertext failed authentication in segment {index}: wrong key, wrong model "
        "name (associated data), or the file was modified."
    )


def _wait_and_zero(pool: Executor | None, out: memoryview) -> None:
    """Let in-flight segments finish, then wipe whatever they wrote."""
    if pool is not None:
        pool.shutdown(wait=True, cancel_futures=True)
    out[:] = bytes(len(out))


def _pool(count: int) -> ThreadPoolExecutor | nullcontext[None]:
    if count < _PARALLEL_MIN_SEGMENTS:
        return nullcontext()
    return ThreadPoolExecutor(
        max_workers=min(_MAX_WORKERS, os.cpu_count() or 1), thread_name_prefix="veil-modelcrypto"
    )


def _header(data: Buffer) -> Header:
    """The header, where a malformed one counts as tampering (it is authenticated indirectly)."""
    try:
        return read_header(data)
    except ProtocolError:
        failure = IntegrityError(
            "model ciphertext header is malformed: the file was modified or is not a model."
        )
    raise failure


def _read_exact(src: BinaryIO, size: int) -> bytes:
    data = src.read(size)
    if len(data) != size:
        raise IntegrityError("model ciphertext is truncated: the header is incomplete.")
    return data


def _read_into(src: BinaryIO, view: memoryview) -> int:
    """Fill ``view`` from ``src``, retrying short reads; return the bytes read (less at EOF)."""
    filled = 0
    while filled < len(view) and (data := src.read(len(view) - filled)):
        view[filled : filled + len(data)] = data
        filled += len(data)
    return filled
