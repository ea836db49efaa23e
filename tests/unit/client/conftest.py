"""Factory fixtures for the client's pure parts: JSend responses and coordinator certificates."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import httpx
import pytest

from veil.pki import CertifiedKey, create_intermediate, create_root


@pytest.fixture
def make_response() -> Callable[..., httpx.Response]:
    """Factory: an HTTP response with a JSON body (or raw content), as the coordinator sends."""

    def make(status: int, body: object = None, *, content: bytes | None = None) -> httpx.Response:
        if content is not None:
            return httpx.Response(status, content=content)
        return httpx.Response(status, json=body)

    return make


@pytest.fixture
def coordinator_cas() -> tuple[CertifiedKey, CertifiedKey]:
    """(root, intermediate) of a fresh coordinator."""
    now = dt.datetime.now(dt.UTC)
    root = create_root(now)
    intermediate, _ = create_intermediate(root, now)
    return root, intermediate
