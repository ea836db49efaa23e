"""TLS for both listeners, keeping the private key off disk (an anonymous memfd, closed at once)."""

from __future__ import annotations

import os
import ssl

import grpc

from veil.errors import ConfigurationError
from veil.serving._config import TLSMaterial

__all__ = ["grpc_credentials", "rest_ssl_context"]


def rest_ssl_context(material: TLSMaterial) -> ssl.SSLContext:
    """A TLS 1.2+ server context; with a client CA, client certificates are required.

    Python's ssl loads keys only from files, so the chain and key go to an anonymous in-memory
    file (``memfd_create``) that OpenSSL reads through ``/proc/self/fd/<n>``; it is closed (and
    freed) right after loading.
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_alpn_protocols(["http/1.1"])
    fd = os.memfd_create("veil-tls", os.MFD_CLOEXEC)
    try:
        _write_all(fd, material.cert_chain_pem.rstrip(b"\n") + b"\n" + material.private_key_pem)
        context.load_cert_chain(f"/proc/self/fd/{fd}")
    except ssl.SSLError as exc:
        raise ConfigurationError(
            f"The TLS certificate chain and private key could not be loaded ({exc.reason}); "
            "check that the key matches the first certificate."
        ) from None
    finally:
        os.close(fd)
    if material.client_ca_pem is not None:
        try:
            context.load_verify_locations(cadata=material.client_ca_pem.decode("ascii"))
        except (ssl.SSLError, UnicodeDecodeError) as exc:
            raise ConfigurationError(f"The client CA could not be loaded: {exc}.") from None
        context.verify_mode = ssl.CERT_REQUIRED
    return context


def grpc_credentials(material: TLSMaterial) -> grpc.ServerCredentials:
    """gRPC server credentials from the same material (client certificates as for REST)."""
    return grpc.ssl_server_credentials(
        [(material.private_key_pem, material.cert_chain_pem)],
        root_certificates=material.client_ca_pem,
        require_client_auth=material.client_ca_pem is not None,
    )


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]
