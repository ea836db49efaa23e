"""Transport attacks on every HTTP listener: TLS downgrade, plaintext, slow-loris, big and deep bodies.

The listeners are the coordinator's client API and mesh API and the inference server's REST API
(TF Serving ``/v1`` and KServe ``/v2`` on one port), each a real process of the deployment.
"""

from __future__ import annotations

import concurrent.futures
import resource
import socket
import ssl
import subprocess
import threading
import time
import warnings
from collections.abc import Callable, Iterator

import httpx
import pytest

from tests.security._harness import (
    Coordinator,
    deep_json,
    open_fds,
    oversized_body,
    plaintext_request,
    slow_loris,
    stop_process,
    tls_handshake,
)
from tests.security.conftest import MODEL, Deployment, start_server
from tests.unit.serving._support import certificate, key_pem

LISTENERS = ["coordinator-client", "coordinator-mesh", "inference-rest"]


def _addr(deployment: Deployment, listener: str) -> str:
    co = deployment.coordinator
    return {
        "coordinator-client": co.client_addr,
        "coordinator-mesh": co.mesh_addr,
        "inference-rest": deployment.rest_addr,
    }[listener]


def _healthy(deployment: Deployment, listener: str, timeout: float = 10) -> httpx.Response:
    """One ordinary request a legitimate client would make on ``listener``."""
    co = deployment.coordinator
    if listener == "coordinator-client":
        with co.client(timeout=timeout) as http:
            return http.get("/api/v2/status")
    if listener == "coordinator-mesh":
        with co.mesh(timeout=timeout) as http:
            return http.get("/api/v2/marble/parameters")  # 401 without a marble cert: alive
    with deployment.rest(timeout=timeout) as http:
        return http.get(f"/v1/models/{MODEL}")


@pytest.fixture(scope="module")
def permissive_tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A local TLS server that accepts TLS 1.0: proves our client really offers old versions."""
    from cryptography.hazmat.primitives.asymmetric import ec

    d = tmp_path_factory.mktemp("tls10")
    key = ec.generate_private_key(ec.SECP256R1())
    (d / "server.pem").write_bytes(certificate("localhost", key, None) + key_pem(key))
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.set_ciphers("ALL:@SECLEVEL=0")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        ctx.minimum_version = ssl.TLSVersion.TLSv1
    ctx.load_cert_chain(d / "server.pem")
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            try:
                with ctx.wrap_socket(conn, server_side=True):
                    pass
            except (ssl.SSLError, OSError):
                pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"127.0.0.1:{listener.getsockname()[1]}"
    stop.set()
    thread.join()
    listener.close()


@pytest.mark.parametrize("listener", LISTENERS)
@pytest.mark.parametrize("version", ["TLSv1", "TLSv1_1"])
def test_tls_downgrade_to_1_0_or_1_1_is_refused(
    deployment: Deployment, listener: str, version: str, permissive_tls_server: str
) -> None:
    """A client that offers only TLS 1.0 / 1.1 gets no session; 1.2 and 1.3 work."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        old = getattr(ssl.TLSVersion, version)
        assert tls_handshake(permissive_tls_server, version=old)  # the client can speak it
        with pytest.raises((ssl.SSLError, ConnectionResetError)):
            tls_handshake(_addr(deployment, listener), version=old)
    for modern in (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3):
        assert tls_handshake(_addr(deployment, listener), version=modern)


@pytest.mark.parametrize("listener", LISTENERS)
def test_plaintext_http_to_a_tls_port_gets_no_http_answer(
    deployment: Deployment, listener: str
) -> None:
    """Plaintext HTTP to a TLS port: no HTTP response, let alone data (at most a TLS alert)."""
    answer = plaintext_request(
        _addr(deployment, listener),
        b"POST /api/v2/secrets HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}",
    )
    assert not answer.startswith(b"HTTP/"), answer[:80]
    assert b"secret" not in answer.lower()


@pytest.mark.parametrize("listener", LISTENERS)
@pytest.mark.parametrize(
    "complete_tls", [True, False], ids=["stalled-headers", "stalled-handshake"]
)
def test_slow_loris_connections_do_not_block_other_clients(
    deployment: Deployment, listener: str, complete_tls: bool
) -> None:
    """100 connections that never finish their headers (or TLS handshake) leave others served."""
    addr = _addr(deployment, listener)
    with slow_loris(addr, connections=100, tls=True, complete_tls=complete_tls) as held:
        assert held == 100
        start = time.monotonic()
        resp = _healthy(deployment, listener, timeout=5)
        assert resp.status_code < 500, resp.text
        assert time.monotonic() - start < 5


HEADER_TIMEOUT = 10  # seconds a listener may wait for a request head before closing the socket


def _limited(fds: int) -> Callable[[], None]:
    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (fds, fds))

    return apply


def test_stalled_connections_cannot_exhaust_a_listener(deployment: Deployment) -> None:
    """Slow-loris to exhaustion: with every descriptor held by stalled requests, a new client is
    still served within HEADER_TIMEOUT + 5 s (the server must close connections that never
    complete their request head). Run against fresh processes whose descriptor limit is small so
    that exhaustion takes a few hundred sockets instead of the tens of thousands a real attacker
    would open against the default limit."""
    d = deployment.dir / "loris"
    d.mkdir(exist_ok=True)
    co = Coordinator(d, deployment.platform_dir, name="loris-coordinator", data=False)
    server: subprocess.Popen[bytes] | None = None
    try:
        co.start()
        server, _, ready = start_server(
            d, deployment.coordinator, name="loris-server", models=deployment.dir / "models"
        )
        rest = f"127.0.0.1:{ready['rest_port']}"
        assert co.popen is not None
        targets: dict[str, tuple[int, str, Callable[[float], int]]] = {
            "coordinator-client": (co.popen.pid, co.client_addr, lambda t: _status(co, t)),
            "inference-rest": (server.pid, rest, lambda t: _model_status(deployment, rest, t)),
        }
        for pid, _, _ in targets.values():
            budget = open_fds(pid) + 40
            resource.prlimit(pid, resource.RLIMIT_NOFILE, (budget, budget))

        def attack(name: str) -> str:
            _, addr, probe = targets[name]
            with slow_loris(addr, connections=80, tls=True, complete_tls=True):
                deadline = time.monotonic() + HEADER_TIMEOUT + 5
                while time.monotonic() < deadline:
                    try:
                        if probe(3) < 500:
                            return ""
                    except httpx.HTTPError:
                        pass
                return f"{name}: no legitimate request served for {HEADER_TIMEOUT + 5} s"

        with concurrent.futures.ThreadPoolExecutor(len(targets)) as pool:
            failures = [f for f in pool.map(attack, list(targets)) if f]
        assert not failures, failures
    finally:
        co.stop()
        if server is not None:
            stop_process(server)


def _status(co: Coordinator, timeout: float) -> int:
    with co.client(timeout=timeout) as http:
        return http.get("/api/v2/status").status_code


def _model_status(deployment: Deployment, rest: str, timeout: float) -> int:
    ctx = ssl.create_default_context(cadata=deployment.coordinator.root_pem.decode())
    with httpx.Client(base_url=f"https://{rest}", verify=ctx, timeout=timeout) as http:
        return http.get(f"/v1/models/{MODEL}").status_code


# -- bodies ----------------------------------------------------------------------------------------
BODY_TARGETS = [
    ("coordinator-client", "/api/v2/manifest"),
    ("coordinator-client", "/api/v2/secrets"),
    ("coordinator-client", "/api/v2/update"),
    ("coordinator-client", "/api/v2/recover"),
    ("coordinator-mesh", "/api/v2/marble/activate"),
    ("inference-rest", f"/v1/models/{MODEL}:predict"),
    ("inference-rest", f"/v2/models/{MODEL}/infer"),
]


def _client(deployment: Deployment, listener: str, timeout: float = 60) -> httpx.Client:
    co = deployment.coordinator
    if listener == "coordinator-client":
        return co.client(deployment.users["owner"], timeout=timeout)
    if listener == "coordinator-mesh":
        return co.mesh(timeout=timeout)
    return deployment.rest(timeout=timeout)


@pytest.mark.parametrize(("listener", "path"), BODY_TARGETS)
def test_oversized_chunked_body_is_refused_and_the_server_lives(
    deployment: Deployment, listener: str, path: str
) -> None:
    """A 96 MiB chunked body (no Content-Length) is refused with 4xx; the listener still serves."""
    with _client(deployment, listener) as http:
        try:
            resp = http.post(
                path,
                content=oversized_body(96 * 1024 * 1024),
                headers={"content-type": "application/json"},
            )
            assert 400 <= resp.status_code < 500, resp.text[:300]
        except (httpx.RemoteProtocolError, httpx.WriteError, httpx.ReadError):
            pass  # the server hung up mid-body: also a refusal
    assert _healthy(deployment, listener).status_code < 500


@pytest.mark.parametrize(("listener", "path"), BODY_TARGETS)
def test_oversized_declared_body_is_refused_before_reading(
    deployment: Deployment, listener: str, path: str
) -> None:
    """A Content-Length of 10 GiB is refused from the header alone, without waiting for a body."""
    addr = _addr(deployment, listener)
    host, port = addr.rsplit(":", 1)
    ctx = ssl.create_default_context(cadata=deployment.coordinator.root_pem.decode())
    ctx.check_hostname = False
    head = (
        f"POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
        f"Content-Length: {10 * 1024**3}\r\n\r\n{{"
    ).encode()
    with (
        socket.create_connection((host, int(port)), timeout=10) as raw,
        ctx.wrap_socket(raw) as tls,
    ):
        tls.sendall(head)
        answer = tls.recv(4096)
    status = int(answer.split(b" ", 2)[1])
    assert 400 <= status < 500, answer[:200]


@pytest.mark.parametrize(("listener", "path"), BODY_TARGETS)
@pytest.mark.parametrize("depth", [1_000, 100_000])
def test_deeply_nested_json_is_a_4xx_not_a_crash(
    deployment: Deployment, listener: str, path: str, depth: int
) -> None:
    """``[[[[…]]]]`` nested 1 000 and 100 000 levels is refused with 4xx; no 5xx, no hang."""
    with _client(deployment, listener) as http:
        resp = http.post(
            path, content=deep_json(depth), headers={"content-type": "application/json"}
        )
    assert 400 <= resp.status_code < 500, resp.text[:300]
    assert _healthy(deployment, listener).status_code < 500


def test_many_keys_and_huge_strings_in_a_manifest_are_refused_quickly(
    deployment: Deployment,
) -> None:
    """A 2 MiB manifest of 100 000 keys is refused in well under a second of server time."""
    import base64
    import json

    doc = {"Packages": {f"p{i}": {"UniqueID": "00" * 32} for i in range(20_000)}}
    raw = json.dumps(doc).encode()
    with deployment.coordinator.client(timeout=30) as http:
        start = time.monotonic()
        resp = http.post("/api/v2/manifest", json={"manifest": base64.b64encode(raw).decode()})
        elapsed = time.monotonic() - start
    assert 400 <= resp.status_code < 500, resp.text[:300]
    assert elapsed < 10
