"""Byte-level tampering helpers for DCAP quotes and collateral."""

from __future__ import annotations

import base64

BEGIN = b"-----BEGIN CERTIFICATE-----\n"
END = b"-----END CERTIFICATE-----\n"


def flip(data: bytes, bit: int) -> bytes:
    """``data`` with bit ``bit`` (0 = least significant bit of byte 0) inverted."""
    out = bytearray(data)
    out[bit // 8] ^= 1 << (bit % 8)
    return bytes(out)


def last_pem_span(data: bytes) -> tuple[int, int]:
    """[start, end) of the last PEM certificate block (the root) in ``data``."""
    start = data.rindex(BEGIN)
    return start, data.index(END, start) + len(END)


def pem(der: bytes) -> bytes:
    """Canonical 64-column PEM of ``der``."""
    text = base64.b64encode(der)
    lines = b"\n".join(text[i : i + 64] for i in range(0, len(text), 64))
    return BEGIN + lines + b"\n" + END


def with_root_der_bit_flipped(data: bytes, bit: int) -> bytes:
    """``data`` whose last PEM block is re-encoded from its DER with one bit flipped."""
    start, end = last_pem_span(data)
    body = data[start + len(BEGIN) : end - len(END)].replace(b"\n", b"")
    replaced = pem(flip(base64.b64decode(body), bit))
    assert len(replaced) == end - start
    return data[:start] + replaced + data[end:]
