"""Coordinator PKI: CA chain, marble certificates certify the CSR key, CSRs prove possession."""

from __future__ import annotations

import datetime as dt
import ipaddress

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from veil.errors import ProtocolError, VerificationError
from veil.pki import (
    MARBLE_TYPE_OID,
    CertifiedKey,
    build_csr,
    create_root,
    csr_dns_names,
    issue_marble_certificate,
    issue_server_certificate,
    load_csr,
    marble_identity,
    private_key_pem,
    self_signed_user_certificate,
    spki_der,
    verify_issued_by,
)

MARBLE_UUID = "4b1cf4a1-7b1d-4ad4-9c4e-3e1f5b2f3a11"


def _issue(
    csr_der: bytes, issuer: CertifiedKey, now: dt.datetime, marble_type: str = "model"
) -> x509.Certificate:
    return issue_marble_certificate(
        load_csr(csr_der),
        issuer,
        marble_uuid=MARBLE_UUID,
        marble_type=marble_type,
        dns_names=["model.example"],
        now=now,
    )


def test_root_is_a_self_signed_ca_with_server_names(root: CertifiedKey, now: dt.datetime) -> None:
    """The root CA signs itself, is a CA, and names the coordinator's DNS name and loopback."""
    verify_issued_by(root.cert, root.cert, now)
    assert root.cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    sans = root.cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == ["coordinator.example"]
    assert ipaddress.ip_address("127.0.0.1") in sans.get_values_for_type(x509.IPAddress)


def test_intermediate_chains_to_root_and_marble_root_is_self_signed(
    root: CertifiedKey, cas: tuple[CertifiedKey, CertifiedKey], now: dt.datetime
) -> None:
    """The intermediate is signed by the root; the marble root is the same key self-signed."""
    intermediate, marble_root = cas
    verify_issued_by(intermediate.cert, root.cert, now)
    verify_issued_by(marble_root.cert, marble_root.cert, now)
    assert spki_der(intermediate.cert.public_key()) == spki_der(  # type: ignore[arg-type]
        marble_root.cert.public_key()  # type: ignore[arg-type]
    )
    assert intermediate.cert.subject == marble_root.cert.subject


def test_each_intermediate_has_a_fresh_key(
    root: CertifiedKey, cas: tuple[CertifiedKey, CertifiedKey], now: dt.datetime
) -> None:
    """Rotating the intermediate gives a new key, so old marble certificates do not chain to it."""
    from veil.pki import create_intermediate

    rotated, _ = create_intermediate(root, now)
    assert spki_der(rotated.key.public_key()) != spki_der(cas[0].key.public_key())


def test_marble_certificate_certifies_exactly_the_csr_key(
    cas: tuple[CertifiedKey, CertifiedKey],
    marble_key: ec.EllipticCurvePrivateKey,
    csr_der: bytes,
    now: dt.datetime,
) -> None:
    """The issued certificate's public key is the marble's CSR key, not one the CA made."""
    cert = _issue(csr_der, cas[0], now)
    assert spki_der(cert.public_key()) == spki_der(marble_key.public_key())  # type: ignore[arg-type]


def test_marble_certificate_chains_to_intermediate_and_marble_root(
    cas: tuple[CertifiedKey, CertifiedKey], csr_der: bytes, now: dt.datetime
) -> None:
    """A marble certificate verifies under the intermediate and under the cross-signed marble root."""
    intermediate, marble_root = cas
    cert = _issue(csr_der, intermediate, now)
    verify_issued_by(cert, intermediate.cert, now)
    verify_issued_by(cert, marble_root.cert, now)


def test_marble_certificate_carries_identity_and_usages(
    cas: tuple[CertifiedKey, CertifiedKey], csr_der: bytes, now: dt.datetime
) -> None:
    """The UUID and marble type round-trip through marble_identity; it is a TLS leaf, not a CA."""
    cert = _issue(csr_der, cas[0], now, marble_type="model-server")
    assert marble_identity(cert) == (MARBLE_UUID, "model-server")
    assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    usages = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert ExtendedKeyUsageOID.SERVER_AUTH in usages
    assert ExtendedKeyUsageOID.CLIENT_AUTH in usages
    assert cert.extensions.get_extension_for_oid(MARBLE_TYPE_OID).critical is False


def test_marble_identity_refuses_a_certificate_that_is_not_a_marble(
    root: CertifiedKey,
) -> None:
    """A certificate without the marble-type extension is not a marble certificate."""
    with pytest.raises(VerificationError, match="not a marble certificate"):
        marble_identity(root.cert)


def test_verify_issued_by_refuses_another_issuer(
    cas: tuple[CertifiedKey, CertifiedKey], csr_der: bytes, now: dt.datetime
) -> None:
    """A certificate issued by another coordinator's intermediate does not verify under ours."""
    other_root = create_root(now)
    from veil.pki import create_intermediate

    other_intermediate, _ = create_intermediate(other_root, now)
    cert = _issue(csr_der, other_intermediate, now)
    with pytest.raises(VerificationError, match="not issued by the expected CA"):
        verify_issued_by(cert, cas[0].cert, now)


@pytest.mark.parametrize(
    "offset", [dt.timedelta(minutes=-10), dt.timedelta(days=366)], ids=["before", "after"]
)
def test_verify_issued_by_refuses_outside_the_validity_period(
    cas: tuple[CertifiedKey, CertifiedKey], csr_der: bytes, now: dt.datetime, offset: dt.timedelta
) -> None:
    """A genuine marble certificate is refused at a time outside its validity."""
    cert = _issue(csr_der, cas[0], now)
    with pytest.raises(VerificationError, match="not valid at this time"):
        verify_issued_by(cert, cas[0].cert, now + offset)


def test_server_certificate_is_signed_by_issuer_with_a_new_key(
    cas: tuple[CertifiedKey, CertifiedKey], now: dt.datetime
) -> None:
    """The mesh server certificate chains to the intermediate and is for server auth only."""
    server = issue_server_certificate(
        cas[0], common_name="mesh", dns_names=["mesh.example"], now=now
    )
    verify_issued_by(server.cert, cas[0].cert, now)
    usages = server.cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(usages) == [ExtendedKeyUsageOID.SERVER_AUTH]


def test_certified_key_round_trips_through_pem(root: CertifiedKey) -> None:
    """A CA stored as PEM certificate and PKCS#8 key loads back to the same certificate and key."""
    loaded = CertifiedKey.from_pem(root.cert_pem, root.key_pem())
    assert loaded.cert_der == root.cert_der
    assert spki_der(loaded.key.public_key()) == spki_der(root.key.public_key())


def test_certified_key_refuses_a_non_ecdsa_key(root: CertifiedKey) -> None:
    """Coordinator CA keys must be ECDSA; an RSA key is a protocol error."""
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    rsa_pem = rsa_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    with pytest.raises(ProtocolError, match="ECDSA"):
        CertifiedKey.from_pem(root.cert_pem, rsa_pem)


# -- CSRs --------------------------------------------------------------------------------------


def test_build_csr_round_trips_key_and_names(
    marble_key: ec.EllipticCurvePrivateKey, csr_der: bytes
) -> None:
    """build_csr produces a CSR that load_csr accepts, with the key and DNS names requested."""
    csr = load_csr(csr_der)
    assert spki_der(csr.public_key()) == spki_der(marble_key.public_key())  # type: ignore[arg-type]
    assert csr_dns_names(csr) == ["model.example"]
    assert csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "marble"


def test_csr_without_names_has_no_dns_names(marble_key: ec.EllipticCurvePrivateKey) -> None:
    """A CSR without a SubjectAlternativeName extension requests no DNS names."""
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bare")]))
        .sign(marble_key, hashes.SHA256())
    )
    assert csr_dns_names(csr) == []


def test_load_csr_refuses_a_csr_with_a_broken_self_signature(csr_der: bytes) -> None:
    """A CSR whose signature does not verify gives no proof of possession and is refused."""
    tampered = bytearray(csr_der)
    tampered[-1] ^= 0x01
    with pytest.raises((VerificationError, ProtocolError)):
        load_csr(bytes(tampered))


def test_load_csr_refuses_a_csr_signed_by_another_key(
    marble_key: ec.EllipticCurvePrivateKey,
) -> None:
    """Putting one key in a CSR signed by another key fails the proof of possession."""
    victim = x509.load_der_x509_csr(build_csr(marble_key, common_name="m", dns_names=[]))
    attacker_key = ec.generate_private_key(ec.SECP256R1())
    forged_signature = attacker_key.sign(victim.tbs_certrequest_bytes, ec.ECDSA(hashes.SHA256()))
    forged = _splice_signature(victim, forged_signature)
    load_csr(_splice_signature(victim, victim.signature))  # control: the splice itself is sound
    with pytest.raises(VerificationError, match="proof of possession"):
        load_csr(forged)


def _tlv(tag: int, content: bytes) -> bytes:
    size = len(content)
    if size < 0x80:
        return bytes([tag, size]) + content
    length = size.to_bytes((size.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(length)]) + length + content


def _splice_signature(csr: x509.CertificateSigningRequest, signature: bytes) -> bytes:
    """The CSR's request info and algorithm with another signature, re-encoded as DER."""
    der = csr.public_bytes(serialization.Encoding.DER)
    tbs = csr.tbs_certrequest_bytes
    old_bits = _tlv(0x03, b"\x00" + csr.signature)
    algorithm = der[der.index(tbs) + len(tbs) : len(der) - len(old_bits)]
    return _tlv(0x30, tbs + algorithm + _tlv(0x03, b"\x00" + signature))


def test_load_csr_refuses_garbage_and_oversized_input() -> None:
    """Bytes that are not a DER CSR, or more than 16 KiB, are protocol errors."""
    with pytest.raises(ProtocolError, match="not a DER PKCS#10"):
        load_csr(b"not a csr")
    with pytest.raises(ProtocolError, match="larger than"):
        load_csr(bytes(16 * 1024 + 1))


def test_load_csr_refuses_a_non_ecdsa_key() -> None:
    """Marble keys must be ECDSA; an RSA CSR is refused."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "rsa")]))
        .sign(key, hashes.SHA256())
    )
    with pytest.raises(ProtocolError, match="ECDSA"):
        load_csr(csr.public_bytes(serialization.Encoding.DER))


# -- user certificates ---------------------------------------------------------------------------


def test_self_signed_user_certificate_is_a_client_certificate(now: dt.datetime) -> None:
    """A user certificate is self-signed, not a CA, for client auth, and valid from now."""
    key = ec.generate_private_key(ec.SECP256R1())
    cert = self_signed_user_certificate(key, "alice", now=now)
    verify_issued_by(cert, cert, now)
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "alice"
    usages = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(usages) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    assert b"PRIVATE KEY" in private_key_pem(key)
