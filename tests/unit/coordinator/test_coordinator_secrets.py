"""User-defined secrets: only authorised users write them, marbles get them once set, none leak."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from veil.coordinator.service import CoordinatorService
from veil.coordinator.store import MemoryStore
from veil.errors import (
    AuthorizationError,
    NotFoundError,
    ProtocolError,
    StateError,
    VerificationError,
)
from veil.pki import CertifiedKey, issue_marble_certificate, load_csr

from .conftest import MODEL_KEY, Doc, Marble, User

KEY_HEX = MODEL_KEY.hex()


def _der(pem: bytes) -> bytes:
    return x509.load_pem_x509_certificate(pem).public_bytes(serialization.Encoding.DER)


def _assert_no_secret(exc: BaseException) -> None:
    text = f"{exc} {exc!r} {exc.args!r}"
    assert KEY_HEX not in text
    assert KEY_HEX.upper() not in text
    assert repr(MODEL_KEY) not in text


# -- writing -----------------------------------------------------------------------------------


def test_owner_with_write_secret_sets_the_model_key(
    service: CoordinatorService, users: dict[str, User]
) -> None:
    """A user whose role grants WriteSecret stores the key and is named as the writer."""
    assert service.write_secrets(users["owner"].cert_der, {"model_key": MODEL_KEY}) == "owner"
    read = service.read_secrets(users["owner"].cert_der, ["model_key"])
    assert read["model_key"].key == MODEL_KEY


def test_user_without_write_secret_is_refused_without_leaking_the_value(
    service: CoordinatorService, users: dict[str, User]
) -> None:
    """A known user lacking WriteSecret gets AuthorizationError whose message holds no key bytes."""
    with pytest.raises(AuthorizationError) as info:
        service.write_secrets(users["reader"].cert_der, {"model_key": MODEL_KEY})
    assert info.value.authenticated is True
    assert "reader" in str(info.value)
    _assert_no_secret(info.value)
    assert service.read_secrets(users["owner"].cert_der, ["model_key"]) == {}


def test_unknown_client_certificate_is_unauthenticated(
    service: CoordinatorService, make_user: Callable[[str], User]
) -> None:
    """A certificate that belongs to no manifest user is refused as unauthenticated."""
    stranger = make_user("owner")  # same name, another key: names do not authenticate
    with pytest.raises(AuthorizationError) as info:
        service.write_secrets(stranger.cert_der, {"model_key": MODEL_KEY})
    assert info.value.authenticated is False
    _assert_no_secret(info.value)


def test_missing_client_certificate_is_unauthenticated(service: CoordinatorService) -> None:
    """Writing secrets without a client certificate is refused as unauthenticated."""
    with pytest.raises(AuthorizationError) as info:
        service.write_secrets(None, {"model_key": MODEL_KEY})
    assert info.value.authenticated is False


def test_writing_a_generated_secret_is_refused(
    service: CoordinatorService, users: dict[str, User]
) -> None:
    """A secret that is not UserDefined cannot be overwritten by any user."""
    with pytest.raises(AuthorizationError, match="not user-defined") as info:
        service.write_secrets(users["owner"].cert_der, {"shared": bytes(16)})
    _assert_no_secret(info.value)


@pytest.mark.parametrize("size", [16, 31, 33], ids=["128-bit", "248-bit", "264-bit"])
def test_key_of_the_wrong_size_is_refused_without_leaking_it(
    service: CoordinatorService, users: dict[str, User], size: int
) -> None:
    """A symmetric key whose size differs from the manifest's is refused; the message holds no bytes."""
    value = bytes.fromhex("5e" * size)
    with pytest.raises(ProtocolError, match="256-bit key") as info:
        service.write_secrets(users["owner"].cert_der, {"model_key": value})
    assert value.hex() not in str(info.value)


def test_oversized_secret_is_refused(service: CoordinatorService, users: dict[str, User]) -> None:
    """A value above the user-secret size limit is refused before any other check on its content."""
    with pytest.raises(ProtocolError, match="too large"):
        service.write_secrets(users["owner"].cert_der, {"model_key": bytes(64 * 1024 + 1)})


def test_unknown_or_no_secret_is_refused(
    service: CoordinatorService, users: dict[str, User]
) -> None:
    """Writing a secret the manifest does not define, or nothing at all, is refused."""
    with pytest.raises(NotFoundError):
        service.write_secrets(users["owner"].cert_der, {"other": MODEL_KEY})
    with pytest.raises(ProtocolError, match="no secrets"):
        service.write_secrets(users["owner"].cert_der, {})


def test_a_refused_batch_writes_nothing(
    service: CoordinatorService, users: dict[str, User]
) -> None:
    """A write with one unauthorised secret stores none of the batch."""
    with pytest.raises(AuthorizationError):
        service.write_secrets(
            users["owner"].cert_der, {"model_key": MODEL_KEY, "shared": bytes(16)}
        )
    assert service.read_secrets(users["owner"].cert_der, ["model_key"]) == {}


def test_writing_secrets_before_a_manifest_is_refused(
    make_service: Callable[..., CoordinatorService], users: dict[str, User]
) -> None:
    """Without a manifest there are no users, so secrets cannot be written."""
    with pytest.raises(StateError, match="cannot write secrets"):
        make_service().write_secrets(users["owner"].cert_der, {"model_key": MODEL_KEY})


def test_secret_writes_do_not_log_or_record_the_value(
    make_service: Callable[..., CoordinatorService],
    manifest_bytes: bytes,
    users: dict[str, User],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Log records and the update log name the secret and user but never its value."""
    service = make_service(MemoryStore())
    service.set_manifest(manifest_bytes)
    with caplog.at_level("DEBUG"):
        service.write_secrets(users["owner"].cert_der, {"model_key": MODEL_KEY})
    assert caplog.records
    assert KEY_HEX not in repr([vars(r) for r in caplog.records])
    entries = [json.loads(line) for line in service.update_log()]
    assert [e["action"] for e in entries] == ["set-manifest", "secret-set"]
    assert entries[1]["subject"] == "model_key"
    assert entries[1]["user"] == "owner"
    assert KEY_HEX not in repr(entries)


# -- reading -----------------------------------------------------------------------------------


def test_generated_shared_secret_is_readable_with_read_secret(
    service: CoordinatorService, users: dict[str, User]
) -> None:
    """The shared 128-bit key generated at set_manifest is the same for every reader."""
    owner = service.read_secrets(users["owner"].cert_der, ["shared"])["shared"].key
    reader = service.read_secrets(users["reader"].cert_der, ["shared"])["shared"].key
    assert owner is not None
    assert len(owner) == 16
    assert owner == reader


def test_reading_a_secret_without_read_secret_is_refused(
    make_service: Callable[..., CoordinatorService],
    make_manifest: Callable[[], Doc],
    users: dict[str, User],
) -> None:
    """A user whose roles do not list the secret cannot read it."""
    doc = make_manifest()
    doc["Roles"]["reader"]["ResourceNames"] = ["shared"]
    service = make_service()
    service.set_manifest(json.dumps(doc).encode())
    with pytest.raises(AuthorizationError, match="not allowed to read"):
        service.read_secrets(users["reader"].cert_der, ["model_key"])


def test_reading_an_unknown_secret_is_not_found(
    service: CoordinatorService, users: dict[str, User]
) -> None:
    """Reading a secret the manifest does not define raises NotFoundError."""
    with pytest.raises(NotFoundError):
        service.read_secrets(users["owner"].cert_der, ["other"])


# -- marble parameters -------------------------------------------------------------------------


def test_parameters_are_pending_until_the_user_defined_secret_is_set(
    service: CoordinatorService, users: dict[str, User], make_marble: Callable[..., Marble]
) -> None:
    """A marble activated before the model key is set waits (retryable), then gets the hex key."""
    result = service.activate(make_marble().request)
    assert result.parameters is None
    assert result.pending_secrets == ("model_key",)
    cert_der = _der(result.certificate_pem)
    with pytest.raises(StateError, match="model_key") as info:
        service.marble_parameters(cert_der)
    assert info.value.retryable is True
    service.write_secrets(users["owner"].cert_der, {"model_key": MODEL_KEY})
    params = service.marble_parameters(cert_der)
    assert params.env["VEIL_MODEL_KEY"] == KEY_HEX.encode()


def test_marble_activated_after_the_secret_is_set_gets_parameters_at_once(
    service: CoordinatorService, users: dict[str, User], make_marble: Callable[..., Marble]
) -> None:
    """Once the model key is set, activation returns rendered parameters with no pending secrets."""
    service.write_secrets(users["owner"].cert_der, {"model_key": MODEL_KEY})
    result = service.activate(make_marble().request)
    assert result.pending_secrets == ()
    assert result.parameters is not None
    assert result.parameters.env["VEIL_MODEL_KEY"] == KEY_HEX.encode()


def test_parameters_for_a_certificate_of_another_coordinator_are_refused(
    service: CoordinatorService,
    make_service: Callable[..., CoordinatorService],
    manifest_bytes: bytes,
    users: dict[str, User],
    make_marble: Callable[..., Marble],
) -> None:
    """A marble certificate issued by another coordinator does not authenticate to this one."""
    service.write_secrets(users["owner"].cert_der, {"model_key": MODEL_KEY})
    other = make_service()
    other.set_manifest(manifest_bytes)
    foreign = other.activate(make_marble().request)
    with pytest.raises(VerificationError, match="not issued by the expected CA"):
        service.marble_parameters(_der(foreign.certificate_pem))


def test_parameters_for_a_user_certificate_are_refused(
    service: CoordinatorService, users: dict[str, User]
) -> None:
    """A self-signed user certificate is not a marble certificate of this coordinator."""
    with pytest.raises(VerificationError):
        service.marble_parameters(users["owner"].cert_der)


def test_parameters_for_a_never_activated_marble_are_refused(
    make_service: Callable[..., CoordinatorService],
    manifest_bytes: bytes,
    make_marble: Callable[..., Marble],
) -> None:
    """A certificate with this coordinator's signature but an unknown UUID gets no parameters."""
    store = MemoryStore()
    service = make_service(store)
    service.set_manifest(manifest_bytes)
    intermediate = CertifiedKey.from_pem(
        store.get("pki/intermediate.cert") or b"", store.get("pki/intermediate.key") or b""
    )
    marble = make_marble()
    cert = issue_marble_certificate(
        load_csr(marble.request.csr_der),
        intermediate,
        marble_uuid=marble.request.uuid,
        marble_type="m",
        dns_names=["m.example"],
        now=dt.datetime.now(dt.UTC),
    )
    with pytest.raises(VerificationError, match="no activated marble"):
        service.marble_parameters(cert.public_bytes(serialization.Encoding.DER))
