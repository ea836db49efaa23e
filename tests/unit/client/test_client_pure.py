"""The client maps JSend answers to veil errors and refuses malformed chains and manifests locally."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from veil.client import CoordinatorClient
from veil.client._coordinator import _raise_for, _split_chain
from veil.errors import (
    AuthorizationError,
    Error,
    ManifestError,
    NotFoundError,
    ProtocolError,
    StateError,
    VerificationError,
)
from veil.pki import CertifiedKey

# Port 9 (discard) on loopback: nothing in these tests may reach the network.
UNREACHABLE = "127.0.0.1:9"


def test_success_returns_the_data(make_response: Callable[..., httpx.Response]) -> None:
    """A 200 JSend success answer returns its data member."""
    assert _raise_for(make_response(200, {"status": "success", "data": {"code": 3}})) == {"code": 3}


@pytest.mark.parametrize(
    ("status", "error", "fields"),
    [
        (401, AuthorizationError, {"authenticated": False}),
        (403, AuthorizationError, {"authenticated": True}),
        (404, NotFoundError, {}),
        (409, StateError, {"retryable": False}),
        (503, StateError, {"retryable": True}),
        (400, ProtocolError, {}),
    ],
)
def test_error_statuses_map_to_veil_errors(
    make_response: Callable[..., httpx.Response],
    status: int,
    error: type[Error],
    fields: dict[str, bool],
) -> None:
    """Each HTTP error status raises the veil error that says who must act, with the server message."""
    resp = make_response(status, {"status": "error", "message": "the reason"})
    with pytest.raises(error, match="the reason") as info:
        _raise_for(resp)
    for name, value in fields.items():
        assert getattr(info.value, name) is value


def test_unexpected_status_is_a_generic_coordinator_failure(
    make_response: Callable[..., httpx.Response],
) -> None:
    """A 500 answer raises the root Error saying the coordinator failed."""
    with pytest.raises(Error, match="the coordinator failed: boom"):
        _raise_for(make_response(500, {"status": "error", "message": "boom"}))


def test_non_success_body_on_200_is_not_accepted(
    make_response: Callable[..., httpx.Response],
) -> None:
    """A 200 answer whose JSend status is not success is not treated as data."""
    with pytest.raises(Error, match="HTTP 200"):
        _raise_for(make_response(200, {"status": "fail"}))


def test_answer_without_json_is_a_protocol_error(
    make_response: Callable[..., httpx.Response],
) -> None:
    """A body that is not JSON raises ProtocolError naming the HTTP status."""
    with pytest.raises(ProtocolError, match="HTTP 502 without a JSend body"):
        _raise_for(make_response(502, content=b"<html>bad gateway</html>"))


def test_split_chain_reads_every_certificate(
    coordinator_cas: tuple[CertifiedKey, CertifiedKey],
) -> None:
    """A PEM bundle of intermediate and root parses into both certificates, in order."""
    root, intermediate = coordinator_cas
    chain = _split_chain(intermediate.cert_pem + root.cert_pem)
    assert [c.subject for c in chain] == [intermediate.cert.subject, root.cert.subject]


@pytest.mark.parametrize("pem", [b"", b"not a certificate"], ids=["empty", "garbage"])
def test_split_chain_refuses_unparseable_input(pem: bytes) -> None:
    """A chain that does not parse is a verification failure, not a crash."""
    with pytest.raises(VerificationError, match="does not parse"):
        _split_chain(pem)


def test_invalid_manifest_is_refused_locally_before_any_request(
    coordinator_cas: tuple[CertifiedKey, CertifiedKey],
) -> None:
    """set_manifest and verify_manifest reject an invalid manifest without contacting anyone."""
    root, _ = coordinator_cas
    with CoordinatorClient(UNREACHABLE, root_pem=root.cert_pem) as client:
        with pytest.raises(ManifestError):
            client.set_manifest(b"{not json")
        with pytest.raises(ManifestError):
            client.verify_manifest(b'{"Packages": {}, "Marbles": {"m": {"Package": "none"}}}')
