"""Real processes on loopback for the security tests: a coordinator, marbles, users, raw sockets.

Everything here talks to veil the way an attacker on the network would: HTTP over TLS with
hand-made bodies, evidence issued by the simulated platform for any identity we like, and
sockets that misbehave. Nothing reaches into a running process.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
import uuid as uuidlib
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from veil.attestation import SimulatedIdentity, SimulatedPlatform, marble_report_data, measure
from veil.pki import build_csr, generate_key, private_key_pem, spki_der

VEIL = [sys.executable, "-m", "veil"]
SERVE_ID = measure("serve")


def b64(data: bytes) -> str:
    """Standard base64 text."""
    return base64.b64encode(data).decode()


# -- users ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class User:
    """A manifest user: a self-signed client certificate and its key, also written to files."""

    name: str
    cert_pem: bytes
    key_pem: bytes = field(repr=False)
    cert_file: Path
    key_file: Path

    @property
    def cert_der(self) -> bytes:
        return x509.load_pem_x509_certificate(self.cert_pem).public_bytes(
            serialization.Encoding.DER
        )


def new_user(
    name: str,
    directory: Path,
    *,
    not_before: dt.datetime | None = None,
    not_after: dt.datetime | None = None,
) -> User:
    """A self-signed ECDSA client certificate (as ``veil user new`` makes), validity adjustable."""
    now = dt.datetime.now(dt.UTC)
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before or now - dt.timedelta(minutes=5))
        .not_valid_after(not_after or now + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    directory.mkdir(parents=True, exist_ok=True)
    cert_file, key_file = directory / f"{name}.crt", directory / f"{name}.key"
    cert_file.write_bytes(cert_pem)
    key_file.touch(mode=0o600)
    key_file.write_bytes(key_pem)
    return User(name, cert_pem, key_pem, cert_file, key_file)


# -- processes -----------------------------------------------------------------------------------
def wait_ready(popen: subprocess.Popen[bytes], ready: Path, log: Path, timeout: float) -> Any:
    """Wait for a ``--ready-file`` document; fail with the log if the process exits first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ready.exists():
            try:
                return json.loads(ready.read_text())
            except ValueError:
                pass  # written by rename, but be lenient
        if popen.poll() is not None:
            raise AssertionError(f"process exited early ({popen.returncode}):\n{tail(log)}")
        time.sleep(0.02)
    raise AssertionError(f"not ready after {timeout} s:\n{tail(log)}")


def tail(path: Path, lines: int = 30) -> str:
    """The last lines of a log file."""
    if not path.exists():
        return "(no log)"
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def stop_process(popen: subprocess.Popen[bytes], timeout: float = 15) -> None:
    """SIGTERM, then SIGKILL if it does not exit; only this one process."""
    if popen.poll() is None:
        popen.send_signal(signal.SIGTERM)
        try:
            popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            popen.kill()
            popen.wait()


class Coordinator:
    """``veil coordinator run`` in a subprocess, on loopback ports chosen by the kernel."""

    def __init__(
        self, workdir: Path, platform: Path, *, name: str = "coordinator", data: bool = True
    ) -> None:
        self.workdir = workdir
        self.platform = platform
        self.name = name
        self.data_dir: Path | None = workdir / f"{name}-data" if data else None
        self.log = workdir / f"{name}.log"
        self.ready_file = workdir / f"{name}.ready"
        self.popen: subprocess.Popen[bytes] | None = None
        self.ready: dict[str, Any] = {}
        self.root_pem = b""
        self.starts = 0

    def start(self, timeout: float = 60) -> dict[str, Any]:
        """Start (or restart on the same data directory) and wait until it is ready."""
        self.ready_file.unlink(missing_ok=True)
        args = [
            "coordinator", "run", "--tee", "simulated", "--simulated-platform", str(self.platform),
            "--client-addr", "127.0.0.1:0", "--mesh-addr", "127.0.0.1:0",
            "--ready-file", str(self.ready_file),
        ]  # fmt: skip
        if self.data_dir is not None:
            args += ["--seal-dir", str(self.data_dir)]
        with self.log.open("ab") as fh:
            self.popen = subprocess.Popen(
                [*VEIL, *args], cwd=self.workdir, stdout=fh, stderr=subprocess.STDOUT
            )
        self.ready = wait_ready(self.popen, self.ready_file, self.log, timeout)
        self.starts += 1
        self.root_pem = fetch_root(self.client_addr)
        return self.ready

    @property
    def client_addr(self) -> str:
        return f"127.0.0.1:{self.ready['client_port']}"

    @property
    def mesh_addr(self) -> str:
        return f"127.0.0.1:{self.ready['mesh_port']}"

    @property
    def client_url(self) -> str:
        return f"https://{self.client_addr}"

    @property
    def mesh_url(self) -> str:
        return f"https://{self.mesh_addr}"

    def kill9(self) -> None:
        """SIGKILL the coordinator (a crash: no cleanup, no flush)."""
        assert self.popen is not None
        self.popen.send_signal(signal.SIGKILL)
        self.popen.wait()

    def stop(self) -> None:
        if self.popen is not None:
            stop_process(self.popen)

    def tls(self, user: User | None = None) -> ssl.SSLContext:
        """A client context pinned to the coordinator root (SAN 'localhost'), maybe with a user."""
        ctx = ssl.create_default_context(cadata=self.root_pem.decode())
        ctx.check_hostname = False  # we dial 127.0.0.1; the pin is the root certificate
        if user is not None:
            ctx.load_cert_chain(user.cert_file, user.key_file)
        return ctx

    def client(self, user: User | None = None, *, timeout: float = 15) -> httpx.Client:
        """An HTTPS client for the client API (``base_url`` set)."""
        return httpx.Client(base_url=self.client_url, verify=self.tls(user), timeout=timeout)

    def mesh(self, *, timeout: float = 15) -> httpx.Client:
        """An HTTPS client for the mesh API (no client certificate)."""
        return httpx.Client(base_url=self.mesh_url, verify=self.tls(), timeout=timeout)

    def set_manifest(self, manifest: Mapping[str, Any]) -> httpx.Response:
        with self.client() as http:
            return http.post(
                "/api/v2/manifest", json={"manifest": b64(json.dumps(manifest).encode())}
            )

    def logs(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


def fetch_root(client_addr: str) -> bytes:
    """The coordinator root certificate, read from ``/quote`` (tests do not attest it)."""
    with httpx.Client(verify=False, timeout=15) as http:  # noqa: S501 - we only read the chain
        resp = http.get(f"https://{client_addr}/api/v2/quote")
    chain = resp.json()["data"]["cert"].encode()
    certs = x509.load_pem_x509_certificates(chain)
    return certs[-1].public_bytes(serialization.Encoding.PEM)


# -- marbles -------------------------------------------------------------------------------------
@dataclass
class MarbleRequest:
    """An activation request and the marble key it certifies."""

    body: dict[str, Any]
    key: ec.EllipticCurvePrivateKey
    uuid: str


def activation_request(
    platform: SimulatedPlatform,
    marble_type: str,
    *,
    identity: SimulatedIdentity | None = None,
    uuid: str | None = None,
    bind_key: ec.EllipticCurvePrivateKey | None = None,
    tee: str = "simulated",
) -> MarbleRequest:
    """A marble's activation body: fresh key + CSR, evidence binding ``bind_key`` (default: it)."""
    key = generate_key()
    marble_uuid = str(uuidlib.uuid4()) if uuid is None else uuid
    cn = marble_uuid if 0 < len(marble_uuid) <= 64 else "marble"
    csr = build_csr(key, common_name=cn, dns_names=["localhost"])
    identity = identity or SimulatedIdentity(unique_id=SERVE_ID)
    bound = (bind_key or key).public_key()
    evidence = platform.issue(identity, marble_report_data(spki_der(bound)))
    body = {
        "marbleType": marble_type,
        "uuid": marble_uuid,
        "csr": b64(csr),
        "evidence": b64(evidence.raw),
        "tee": tee,
    }
    return MarbleRequest(body, key, marble_uuid)


def marble_tls(coordinator: Coordinator, request: MarbleRequest, activation: Any) -> ssl.SSLContext:
    """A client context presenting the certificate the coordinator issued at activation."""
    chain = (activation["certificate"] + activation["intermediate"]).encode()
    ctx = coordinator.tls()
    directory = coordinator.workdir / "marbles"
    directory.mkdir(exist_ok=True)
    cert_file, key_file = directory / f"{request.uuid}.crt", directory / f"{request.uuid}.key"
    cert_file.write_bytes(chain)
    key_file.touch(mode=0o600)
    key_file.write_bytes(private_key_pem(request.key))
    ctx.load_cert_chain(cert_file, key_file)
    return ctx


# -- raw sockets ---------------------------------------------------------------------------------
def split(addr: str) -> tuple[str, int]:
    host, _, port = addr.rpartition(":")
    return host, int(port)


def tls_handshake(addr: str, *, version: ssl.TLSVersion, cafile_pem: bytes | None = None) -> str:
    """Try one handshake pinned to exactly ``version``; return the negotiated version."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.set_ciphers("ALL:@SECLEVEL=0")  # let this client offer what old TLS needs
    ctx.minimum_version = version
    ctx.maximum_version = version
    with socket.create_connection(split(addr), timeout=5) as raw, ctx.wrap_socket(raw) as tls:
        return str(tls.version())


def plaintext_request(addr: str, request: bytes = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n") -> bytes:
    """Send plaintext bytes to a port and return whatever comes back within 3 s."""
    with socket.create_connection(split(addr), timeout=3) as sock:
        sock.sendall(request)
        chunks = []
        try:
            while True:
                data = sock.recv(65536)
                if not data:
                    break
                chunks.append(data)
        except (TimeoutError, ConnectionResetError):
            pass
    return b"".join(chunks)


@contextmanager
def slow_loris(addr: str, *, connections: int, tls: bool, complete_tls: bool) -> Iterator[int]:
    """Hold ``connections`` sockets that never finish a request; yield how many are open.

    With ``tls`` and ``complete_tls`` each socket finishes the TLS handshake, then sends a
    partial header line; without ``complete_tls`` it sends half a ClientHello and stops.
    """
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    held: list[socket.socket] = []
    try:
        for _ in range(connections):
            try:
                sock = socket.create_connection(split(addr), timeout=2)
            except OSError:
                break  # the server stopped accepting: that is the attack working
            held.append(sock)
            try:
                if tls and complete_tls:
                    sock = ctx.wrap_socket(sock)
                    held[-1] = sock
                    sock.sendall(b"POST /v1/models/x:predict HTTP/1.1\r\nHost: localhost\r\nX-a: ")
                elif tls:
                    sock.sendall(bytes.fromhex("160301020001"))  # a ClientHello header only
                else:
                    sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")
            except OSError:
                break
        yield len(held)
    finally:
        for sock in held:
            sock.close()


def oversized_body(size: int) -> Iterator[bytes]:
    """A chunked body of ``size`` bytes that is valid JSON prefix (so only its size is wrong)."""
    yield b'{"pad": "'
    chunk = b"A" * 65536
    sent = 0
    while sent < size:
        yield chunk
        sent += len(chunk)
    yield b'"}'


def deep_json(depth: int) -> bytes:
    """``{"a": [[[[ ... ]]]]}`` nested ``depth`` levels: valid JSON, hostile shape."""
    return b'{"a": ' + b"[" * depth + b"]" * depth + b"}"


def env_value(params: Mapping[str, Any], name: str) -> bytes:
    """A rendered Env value of a marble's parameters (base64 on the wire)."""
    return base64.b64decode(params["env"][name])


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def rss_bytes(pid: int) -> int:
    """Resident set size of a process, from /proc."""
    pages = int(Path(f"/proc/{pid}/statm").read_text().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE")


def open_fds(pid: int) -> int:
    """Number of open file descriptors of a process."""
    return sum(1 for _ in Path(f"/proc/{pid}/fd").iterdir())
