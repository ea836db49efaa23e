"""``veil run``: MarbleRun's premain — files in a private directory, env, argv, exec."""

from __future__ import annotations

import json
import stat
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration._deploy import Services, veil
from veil.attestation import measure
from veil.errors import ConfigurationError
from veil.manifest import RenderedParameters
from veil.runtime import place_parameters
from veil.runtime._launcher import private_directory

pytestmark = pytest.mark.integration

REPORT = """
import json, os, sys
files_dir = os.environ["VEIL_MARBLE_FILES_DIR"]
files = {}
for root, _, names in os.walk(files_dir):
    for name in names:
        path = os.path.join(root, name)
        files[os.path.relpath(path, files_dir)] = [open(path).read(), oct(os.stat(path).st_mode & 0o777)]
report = {
    "argv": sys.argv[1:],
    "files": files,
    "dir_mode": oct(os.stat(files_dir).st_mode & 0o777),
    "env": {k: v for k, v in os.environ.items() if k.startswith(("MARBLE_", "GREETING"))},
}
open(sys.argv[1], "w").write(json.dumps(report))
"""


def test_files_go_under_a_private_directory_with_private_modes(tmp_path: Path) -> None:
    """Relative and inside-absolute paths are written 0600 under a 0700 directory; env is set."""
    directory = private_directory(tmp_path)
    params = RenderedParameters(
        files={"a.txt": b"A", "sub/b.txt": b"B", str(directory / "c.txt"): b"C"},
        env={"GREETING": b"hello"},
        argv=(),
    )
    env = place_parameters(params, directory, base_env={"PATH": "/bin"})
    assert env == {"PATH": "/bin", "GREETING": "hello", "VEIL_MARBLE_FILES_DIR": str(directory)}
    assert (directory / "sub" / "b.txt").read_bytes() == b"B"
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    for name in ("a.txt", "sub/b.txt", "c.txt"):
        assert stat.S_IMODE((directory / name).stat().st_mode) == 0o600


def test_default_private_directory_is_on_tmpfs() -> None:
    """Without a parent, the directory is made on /dev/shm (tmpfs) where it exists."""
    directory = private_directory()
    try:
        if Path("/dev/shm").is_dir():
            assert directory.parent == Path("/dev/shm")
    finally:
        directory.rmdir()


@pytest.mark.parametrize("name", ["../escape", "sub/../../escape", "/etc/passwd", "", "link/x"])
def test_paths_leaving_the_directory_are_refused(tmp_path: Path, name: str) -> None:
    """Traversal, absolute paths outside, empty names and symlinks out are refused."""
    directory = private_directory(tmp_path)
    (directory / "link").symlink_to(tmp_path)
    params = RenderedParameters(files={name: b"x"}, env={}, argv=())
    with pytest.raises(ConfigurationError):
        place_parameters(params, directory, base_env={})
    assert not (tmp_path / "escape").exists()
    assert not (tmp_path / "x").exists()


@pytest.fixture(scope="module")
def coordinator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str, Services]]:
    """A coordinator whose manifest has a marble "job" for `veil run` (Files, Env, Argv)."""
    d = tmp_path_factory.mktemp("launcher")
    services = Services(d)
    try:
        veil("attest", "simulated-platform", "init", d / "platform", cwd=d)
        process = services.start(
            "coordinator", "coordinator", "run", "--tee", "simulated",
            "--simulated-platform", d / "platform", "--client-addr", "127.0.0.1:0",
            "--mesh-addr", "127.0.0.1:0", "--seal-dir", d / "state", "--ready-file", d / "c.ready",
        )  # fmt: skip
        ports = services.wait_ready(process, d / "c.ready")
        client, mesh = f"127.0.0.1:{ports['client_port']}", f"127.0.0.1:{ports['mesh_port']}"
        (d / "policy.json").write_text(
            veil("attest", "measure", "--entry", "coordinator", "--json", cwd=d).stdout
        )
        veil(
            "verify", "--coordinator", client, "--policy", d / "policy.json",
            "--simulated-root", d / "platform" / "root.pem", "--save-root", d / "root.pem", cwd=d,
        )  # fmt: skip
        manifest = {
            "Packages": {
                "job": {"TEE": "simulated", "UniqueID": measure("run").hex(), "Debug": False}
            },
            "Marbles": {
                "job": {
                    "Package": "job",
                    "Parameters": {
                        "Files": {
                            "config/app.txt": "key={{ hex .Secrets.app_key }}",
                            "plain.txt": "plain",
                        },
                        "Env": {"GREETING": "hello"},
                        "Argv": [sys.executable, "-c", REPORT, str(d / "report.json")],
                    },
                }
            },
            "Secrets": {"app_key": {"Type": "symmetric-key", "Size": 128}},
        }
        (d / "manifest.json").write_text(json.dumps(manifest))
        veil("manifest", "set", d / "manifest.json", "--coordinator", client,
             "--coordinator-cert", d / "root.pem", cwd=d)  # fmt: skip
        yield d, mesh, services
    finally:
        services.stop()


def test_veil_run_activates_places_parameters_and_execs(
    coordinator: tuple[Path, str, Services],
) -> None:
    """The program runs with the manifest's Argv, Files (0600, 0700 dir), Env and MARBLE_PREDEFINED_*."""
    d, mesh, _ = coordinator
    veil(
        "run", "--coordinator", mesh, "--marble-type", "job", "--coordinator-cert", d / "root.pem",
        "--tee", "simulated", "--simulated-platform", d / "platform", "--uuid-file", d / "uuid",
        "--files-dir-parent", d, "--", "false", cwd=d,
    )  # fmt: skip
    report = json.loads((d / "report.json").read_text())
    assert report["argv"] == [str(d / "report.json")]  # Argv replaced the command "false"
    assert report["dir_mode"] == "0o700"
    content, mode = report["files"]["config/app.txt"]
    assert content.startswith("key=")
    assert len(content) == 4 + 32
    assert mode == "0o600"
    assert report["files"]["plain.txt"] == ["plain", "0o600"]
    env = report["env"]
    assert env["GREETING"] == "hello"
    assert "BEGIN CERTIFICATE" in env["MARBLE_PREDEFINED_MARBLE_CERTIFICATE_CHAIN"]
    assert "PRIVATE KEY" in env["MARBLE_PREDEFINED_PRIVATE_KEY"]
    assert "BEGIN CERTIFICATE" in env["MARBLE_PREDEFINED_ROOT_CA"]
    assert env["MARBLE_PREDEFINED_COORDINATOR_ROOT_CA"] == (d / "root.pem").read_text()


def test_veil_run_with_a_wrong_marble_type_is_refused(
    coordinator: tuple[Path, str, Services],
) -> None:
    """An unknown marble type is refused activation and nothing is executed."""
    d, mesh, _ = coordinator
    proc = veil(
        "run", "--coordinator", mesh, "--marble-type", "nope", "--coordinator-cert", d / "root.pem",
        "--tee", "simulated", "--simulated-platform", d / "platform", "--uuid-file", d / "uuid2",
        "--", "touch", d / "ran", cwd=d, check=False,
    )  # fmt: skip
    assert proc.returncode != 0
    assert not (d / "ran").exists()
