"""The HTTP seam of the online collateral source, and its standard-library default.

``veil.attestation`` may not import web frameworks (import-linter contract "Web, gRPC and CLI
frameworks only in adapters and entry points"), so httpx is plugged in from an adapter through
:class:`HttpGet` (ADR 0006); the default uses ``urllib`` with a timeout and a size limit.
"""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol
from urllib.parse import urlsplit

from veil.errors import ConfigurationError, NetworkError

__all__ = ["MAX_RESPONSE_SIZE", "HttpGet", "HttpResponse", "urllib_get"]

MAX_RESPONSE_SIZE = 4 * 1024 * 1024


@dataclass(frozen=True)
class HttpResponse:
    """A response: status, headers with lower-case names, and the body."""

    status: int
    body: bytes
    headers: Mapping[str, str] = field(default_factory=dict)


class HttpGet(Protocol):
    """GET a URL; raise ``NetworkError`` when the server cannot be reached."""

    def __call__(self, url: str, /) -> HttpResponse:
        """The response to ``GET url`` (any status)."""
        ...


def urllib_get(url: str, /, *, timeout: float = 30.0) -> HttpResponse:
    """GET ``url`` with the standard library (http and https only)."""
    if urlsplit(url).scheme not in ("http", "https"):
        raise ConfigurationError(f"collateral URLs must be http(s), got {url!r}")
    request = urllib.request.Request(url, headers={"Accept": "*/*"})  # noqa: S310 - scheme checked above
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - scheme checked above
            body = response.read(MAX_RESPONSE_SIZE + 1)
            status, headers = response.status, response.headers
    except urllib.error.HTTPError as exc:
        try:
            body, status, headers = exc.read(MAX_RESPONSE_SIZE + 1), exc.code, exc.headers
        finally:
            exc.close()
    except (urllib.error.URLError, OSError) as exc:
        raise NetworkError(f"could not reach {url}: {exc}; check the network or the URL") from None
    if len(body) > MAX_RESPONSE_SIZE:
        raise NetworkError(f"{url} answered with more than {MAX_RESPONSE_SIZE} bytes")
    return HttpResponse(
        status=status, body=body, headers={k.lower(): v for k, v in headers.items()}
    )
