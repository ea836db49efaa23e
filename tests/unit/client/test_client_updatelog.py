"""The client's own check of the update log: chain, head and the root's signature."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from veil.coordinator._updatelog import (
    GENESIS,
    append_entry,
    parse_log_response,
    read_log,
    verify_update_log,
)
from veil.coordinator.store import MemoryStore
from veil.errors import IntegrityError, ProtocolError

NOW = dt.datetime(2026, 12, 5, 12, 0, tzinfo=dt.UTC)


@pytest.fixture
def root_key() -> ec.EllipticCurvePrivateKey:
    """The coordinator root key that signs the head."""
    return ec.generate_private_key(ec.SECP384R1())


@pytest.fixture
def log(root_key: ec.EllipticCurvePrivateKey) -> tuple[list[str], dict[str, object]]:
    """Three entries appended as the service does, and the head."""
    store = MemoryStore()
    for action in ("set-manifest", "secret-set", "update-manifest"):
        with store.transaction() as txn:
            append_entry(
                txn,
                now=NOW,
                action=action,
                subject="x",
                user="u",
                sign=lambda b: root_key.sign(b, ec.ECDSA(hashes.SHA256())),
            )
    with store.transaction() as txn:
        signed = read_log(txn.get, txn.keys("updatelog/"))
    return list(signed.entries), dict(signed.head)


def test_intact_log_verifies(
    log: tuple[list[str], dict[str, object]], root_key: ec.EllipticCurvePrivateKey
) -> None:
    """An untouched log verifies; the first entry points at the genesis hash."""
    entries, head = log
    verify_update_log(entries, head, root_key.public_key())
    assert json.loads(entries[0])["prev"] == GENESIS
    assert head["size"] == 3


@pytest.mark.parametrize(
    ("mutate", "match"),
    [
        (lambda e: e[:1] + e[2:], "out of place"),
        (lambda e: e[:-1], "removed"),
        (lambda e: [e[0].replace("set-manifest", "set-manifesT"), *e[1:]], "does not follow"),
        (lambda e: [e[1], e[0], e[2]], "out of place"),
        (lambda e: ["{", *e[1:]], "unreadable"),
    ],
    ids=["middle-removed", "last-removed", "edited", "reordered", "garbage"],
)
def test_tampered_log_is_refused(
    log: tuple[list[str], dict[str, object]],
    root_key: ec.EllipticCurvePrivateKey,
    mutate: object,
    match: str,
) -> None:
    """Removing, editing or reordering entries raises IntegrityError naming what broke."""
    entries, head = log
    with pytest.raises(IntegrityError, match=match):
        verify_update_log(mutate(entries), head, root_key.public_key())  # type: ignore[operator]


def test_head_signed_by_another_key_is_refused(log: tuple[list[str], dict[str, object]]) -> None:
    """A log re-signed by anyone but the pinned root fails at the signature step."""
    entries, head = log
    with pytest.raises(IntegrityError, match="not signed by the coordinator root"):
        verify_update_log(entries, head, ec.generate_private_key(ec.SECP384R1()).public_key())


@pytest.mark.parametrize(
    "data",
    [None, [], {"updateLog": "x", "head": {}}, {"updateLog": [1], "head": {}}, {"updateLog": []}],
)
def test_malformed_log_answer_is_a_protocol_error(data: object) -> None:
    """A coordinator answer without a list of string entries and a head is refused."""
    with pytest.raises(ProtocolError):
        parse_log_response(data)
