"""Operations: activation metrics and events, and the whole sealed state free of marble keys."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from veil.coordinator.service import CoordinatorService
from veil.coordinator.store import SealedSQLiteStore
from veil.errors import VerificationError
from veil.pki import generate_key

from .conftest import MODEL_KEY, Marble, User


def _private_forms(key: ec.EllipticCurvePrivateKey) -> list[bytes]:
    scalar = key.private_numbers().private_value.to_bytes(32, "big")
    der = key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return [scalar, scalar.hex().encode(), der]


def test_activations_are_counted_by_type_and_result_and_logged_as_events(
    service: CoordinatorService, make_marble: Callable[..., Marble]
) -> None:
    """A success and a refusal appear in the metrics and in the event log (no key material)."""
    good = make_marble()
    service.activate(good.request)
    with pytest.raises(VerificationError):
        service.activate(make_marble(evidence_key=generate_key()).request)
    text = service.metrics.render(state=3)
    assert 'veil_coordinator_marble_activations_total{type="m",result="success"} 1' in text
    refusals = [line for line in text.splitlines() if 'type="m"' in line and "success" not in line]
    assert len(refusals) == 1
    assert refusals[0].endswith(" 1")
    events = service.events.list()
    assert [e["result"] for e in events] == ["success", "refused"]
    assert events[0]["uuid"] == good.request.uuid
    assert events[1]["reason"]


def test_whole_sealed_state_holds_no_marble_private_key(
    make_service: Callable[..., CoordinatorService],
    make_sealed_store: Callable[[], SealedSQLiteStore],
    manifest_bytes: bytes,
    make_marble: Callable[..., Marble],
    users: dict[str, User],
) -> None:
    """After activations, every row of the sealed store, decrypted, lacks each marble's key."""
    store = make_sealed_store()
    service = make_service(store)
    service.set_manifest(manifest_bytes)
    service.write_secrets(users["owner"].cert_der, {"model_key": MODEL_KEY})
    marbles = [make_marble(), make_marble()]
    for marble in marbles:
        service.activate(marble.request)
    with store.transaction() as txn:
        rows = [txn.get(key) or b"" for key in txn.keys("")]
    assert len(rows) > 10
    state = b"\x00".join(rows) + json.dumps(service.events.list()).encode()
    for marble in marbles:
        for form in _private_forms(marble.key):
            assert form not in state
