"""PKI of a veil deployment: coordinator root and intermediate CAs, marble and user certificates."""

from veil.pki._ca import (
    MARBLE_TYPE_OID,
    CertifiedKey,
    create_intermediate,
    create_root,
    issue_marble_certificate,
    issue_server_certificate,
    load_csr,
    marble_identity,
    spki_der,
    verify_issued_by,
)
from veil.pki._selfsigned import (
    build_csr,
    csr_dns_names,
    generate_key,
    private_key_pem,
    self_signed_user_certificate,
)

__all__ = [
    "MARBLE_TYPE_OID",
    "CertifiedKey",
    "build_csr",
    "create_intermediate",
    "create_root",
    "csr_dns_names",
    "generate_key",
    "issue_marble_certificate",
    "issue_server_certificate",
    "load_csr",
    "marble_identity",
    "private_key_pem",
    "self_signed_user_certificate",
    "spki_der",
    "verify_issued_by",
]
