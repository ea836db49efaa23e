"""Shamir secret sharing over GF(2^8) (the AES field, polynomial x^8 + x^4 + x^3 + x + 1).

Each byte of the secret is the constant term of its own random polynomial of degree ``k - 1``.
A share is ``y-values ‖ x`` (one byte longer than the secret, as HashiCorp's ``shamir`` package
lays it out); ``x`` runs from 1 to ``n``. Any ``k`` distinct shares give the secret back by
Lagrange interpolation at 0; fewer give no information about it.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence

from veil.errors import ProtocolError

__all__ = ["combine", "split"]


def _build_tables() -> tuple[list[int], list[int]]:
    exp = [0] * 512
    log = [0] * 256
    value = 1
    for power in range(255):
        exp[power] = value
        log[value] = power
        # multiply by the generator 3 = x + 1
        value ^= (value << 1) ^ (0x11B if value & 0x80 else 0)
        value &= 0xFF
    for power in range(255, 512):
        exp[power] = exp[power - 255]
    return exp, log


_EXP, _LOG = _build_tables()


def _mul(a: int, b: int) -> int:
    if a == 0 or b == 0:
        return 0
    return _EXP[_LOG[a] + _LOG[b]]


def _div(a: int, b: int) -> int:
    if b == 0:
        raise ZeroDivisionError("division by zero in GF(2^8)")
    if a == 0:
        return 0
    return _EXP[(_LOG[a] - _LOG[b]) % 255]


def _evaluate(coefficients: Sequence[int], x: int) -> int:
    result = 0
    for coefficient in reversed(coefficients):
        result = _mul(result, x) ^ coefficient
    return result


def split(secret: bytes, *, shares: int, threshold: int) -> list[bytes]:
    """Split ``secret`` into ``shares`` shares of which any ``threshold`` recover it."""
    if not 2 <= threshold <= shares <= 255:
        raise ValueError("need 2 <= threshold <= shares <= 255")
    if not secret:
        raise ValueError("cannot split an empty secret")
    polynomials = [
        [byte, *(secrets.randbelow(256) for _ in range(threshold - 1))] for byte in secret
    ]
    return [
        bytes(_evaluate(poly, x) for poly in polynomials) + bytes([x]) for x in range(1, shares + 1)
    ]


def combine(parts: Sequence[bytes]) -> bytes:
    """The secret from at least ``threshold`` distinct shares (garbage if too few are given)."""
    if len(parts) < 2:
        raise ProtocolError("at least two shares are needed")
    length = len(parts[0])
    if length < 2 or any(len(p) != length for p in parts):
        raise ProtocolError("the shares differ in length")
    xs = [p[-1] for p in parts]
    if 0 in xs or len(set(xs)) != len(xs):
        raise ProtocolError("the shares are not distinct")
    secret = bytearray()
    for index in range(length - 1):
        value = 0
        for i, xi in enumerate(xs):
            basis = 1
            for j, xj in enumerate(xs):
                if i != j:
                    basis = _mul(basis, _div(xj, xj ^ xi))
            value ^= _mul(parts[i][index], basis)
        secret.append(value)
    return bytes(secret)
