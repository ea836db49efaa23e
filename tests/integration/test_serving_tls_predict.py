"""``veil serve --ssl_config_file`` (PEM contents, as TF Serving) and ``veil predict [--grpc]``."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from tests.integration._deploy import Services, veil
from tests.unit.serving._support import certificate, half_plus_two_onnx, key_pem

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def tls_serve(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, dict[str, int]]]:
    """A plain server whose TLS comes from an SSLConfig with multi-line PEM strings."""
    d = tmp_path_factory.mktemp("tls")
    key = ec.generate_private_key(ec.SECP256R1())
    cert = certificate("localhost", key, None)
    (d / "server.pem").write_bytes(cert)
    (d / "ssl.cfg").write_text(
        f'server_key: "{key_pem(key).decode()}"\nserver_cert: "{cert.decode()}"\n'
    )
    (d / "m" / "1").mkdir(parents=True)
    (d / "m" / "1" / "model.onnx").write_bytes(half_plus_two_onnx())
    services = Services(d)
    try:
        process = services.start(
            "serve", "serve", "--model_name", "m", "--model_base_path", d / "m",
            "--ssl_config_file", d / "ssl.cfg", "--port", "0", "--rest_api_port", "0",
            "--ready-file", d / "ready",
        )  # fmt: skip
        yield d, services.wait_ready(process, d / "ready")
    finally:
        services.stop()


def test_veil_predict_rest_and_grpc_over_ssl_config_tls(
    tls_serve: tuple[Path, dict[str, int]],
) -> None:
    """`veil predict` answers over REST and --grpc, pinned to the server's certificate."""
    d, ports = tls_serve
    (d / "rows.json").write_text(json.dumps({"instances": [1.0, 2.0, 5.0]}))
    rest = veil(
        "predict", "--server", f"127.0.0.1:{ports['rest_port']}", "--model", "m",
        "--coordinator-cert", d / "server.pem", "--instances", d / "rows.json", cwd=d,
    ).stdout  # fmt: skip
    assert json.loads(rest) == {"predictions": [2.5, 3.0, 4.5]}
    grpc_out = veil(
        "predict", "--grpc", "--server", f"localhost:{ports['grpc_port']}", "--model", "m",
        "--coordinator-cert", d / "server.pem", "--instances", d / "rows.json",
        "--input-name", "x", cwd=d,
    ).stdout  # fmt: skip
    assert json.loads(grpc_out) == {"outputs": {"y": [2.5, 3.0, 4.5]}}


def test_veil_predict_refuses_a_server_outside_the_pinned_root(
    tls_serve: tuple[Path, dict[str, int]],
) -> None:
    """Pinned to another root, `veil predict` refuses (exit 1) and sends nothing."""
    d, ports = tls_serve
    other = certificate("other", ec.generate_private_key(ec.SECP256R1()), None)
    (d / "other.pem").write_bytes(other)
    (d / "rows.json").write_text(json.dumps({"instances": [1.0]}))
    proc = veil(
        "predict", "--server", f"127.0.0.1:{ports['rest_port']}", "--model", "m",
        "--coordinator-cert", d / "other.pem", "--instances", d / "rows.json", cwd=d, check=False,
    )  # fmt: skip
    assert proc.returncode == 1
