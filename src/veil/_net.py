"""Shared plumbing for veil's network services: TLS contexts from memory and uvicorn listeners.

Private to veil. Python's ``ssl`` loads certificates and keys only from files, so keys are handed
to it through anonymous ``memfd`` files and never touch a disk. Listening sockets are created with
``IPPROTO_TCP`` explicitly: asyncio sets ``TCP_NODELAY`` only on such sockets, and without it
keep-alive requests stall on Nagle's algorithm.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import ssl
from collections.abc import Iterable
from typing import Any

import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol


def _memfd(data: bytes, name: str) -> int:
    fd = os.memfd_create(name, os.MFD_CLOEXEC)
    os.write(fd, data)
    return fd


def server_ssl_context(
    cert_chain_pem: bytes,
    key_pem: bytes,
    *,
    client_ca_pem: Iterable[bytes] = (),
    require_client_cert: bool = False,
) -> ssl.SSLContext:
    """A TLS 1.2+ server context whose key is loaded from memory.

    Client certificates are requested when ``client_ca_pem`` is given; they must chain to (or be
    one of) those certificates. ``require_client_cert`` makes them mandatory.
    """
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    cert_fd = _memfd(cert_chain_pem, "veil-cert")
    key_fd = _memfd(key_pem, "veil-key")
    try:
        ctx.load_cert_chain(f"/proc/self/fd/{cert_fd}", f"/proc/self/fd/{key_fd}")
    finally:
        os.close(cert_fd)
        os.close(key_fd)
    cas = b"".join(client_ca_pem)
    if cas:
        ctx.load_verify_locations(cadata=cas.decode("ascii"))
        ctx.verify_mode = ssl.CERT_REQUIRED if require_client_cert else ssl.CERT_OPTIONAL
    return ctx


def client_ssl_context(
    ca_pem: bytes | None,
    *,
    client_cert_pem: bytes | None = None,
    client_key_pem: bytes | None = None,
) -> ssl.SSLContext:
    """A TLS client context pinned to ``ca_pem`` (or unverified when None: caller must verify)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if ca_pem is None:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    else:
        ctx.load_verify_locations(cadata=ca_pem.decode("ascii"))
    if client_cert_pem is not None and client_key_pem is not None:
        cert_fd = _memfd(client_cert_pem, "veil-client-cert")
        key_fd = _memfd(client_key_pem, "veil-client-key")
        try:
            ctx.load_cert_chain(f"/proc/self/fd/{cert_fd}", f"/proc/self/fd/{key_fd}")
        finally:
            os.close(cert_fd)
            os.close(key_fd)
    return ctx


def listen(host: str, port: int) -> socket.socket:
    """A listening TCP socket (``IPPROTO_TCP`` so asyncio enables ``TCP_NODELAY``)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(1024)
    sock.setblocking(False)
    return sock


#: Seconds a connection may take to deliver a complete request head (slow-loris defence).
HEADER_TIMEOUT = 10.0


class HeaderTimeoutH11Protocol(H11Protocol):
    """uvicorn's h11 protocol, closing connections that never complete a request head.

    uvicorn times out idle keep-alive connections but waits forever for a request head that
    arrives byte by byte; each such connection holds a descriptor until the process runs out.
    A timer starts when a connection opens or a new request begins and is cancelled once the
    request head has been parsed.
    """

    _head_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_head_timer()

    def data_received(self, data: bytes) -> None:
        """Arm the timer when bytes of a new request arrive; uvicorn parses as usual."""
        if self._head_timer is None and (self.cycle is None or self.cycle.response_complete):
            self._arm_head_timer()
        super().data_received(data)
        if self.cycle is not None and not self.cycle.response_complete:
            self._cancel_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        """Cancel the timer with the connection."""
        self._cancel_head_timer()
        super().connection_lost(exc)

    def _arm_head_timer(self) -> None:
        self._cancel_head_timer()
        self._head_timer = self.loop.call_later(HEADER_TIMEOUT, self._head_timed_out)

    def _cancel_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self.cycle is None or self.cycle.response_complete:
            # abort, not close: a TLS close waits for the peer's close_notify, which a slow-loris
            # client never sends, and would hold the descriptor for the shutdown timeout.
            self.transport.abort()


class PeerCertH11Protocol(HeaderTimeoutH11Protocol):
    """The header-timeout protocol, adding the TLS peer certificate to the ASGI scope.

    The DER certificate appears as ``scope["extensions"]["tls"]["client_cert_der"]`` (absent when
    the client sent none).
    """

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        ssl_object = transport.get_extra_info("ssl_object")
        peer = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
        inner = self.app

        async def app(scope: Any, receive: Any, send: Any) -> None:
            if peer is not None:
                scope.setdefault("extensions", {})["tls"] = {"client_cert_der": peer}
            await inner(scope, receive, send)

        self.app = app


async def serve_asgi(
    app: Any, sock: socket.socket, ssl_context: ssl.SSLContext | None
) -> uvicorn.Server:
    """Start serving ``app`` on ``sock``; returns the running server (``should_exit`` stops it)."""
    config = uvicorn.Config(
        app,
        http=PeerCertH11Protocol,
        lifespan="off",
        log_config=None,
        access_log=False,
        timeout_keep_alive=30,
        timeout_graceful_shutdown=2,
    )
    config.load()
    config.ssl = ssl_context
    server = uvicorn.Server(config)
    # The process owner handles signals (several servers share one loop).
    server.capture_signals = contextlib.nullcontext  # type: ignore[method-assign,assignment]
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    server._veil_task = task  # type: ignore[attr-defined]
    return server


async def stop_asgi(server: uvicorn.Server) -> None:
    """Stop a server started by :func:`serve_asgi`."""
    server.should_exit = True
    task: asyncio.Task[None] = server._veil_task  # type: ignore[attr-defined]
    with contextlib.suppress(asyncio.CancelledError):
        await task
