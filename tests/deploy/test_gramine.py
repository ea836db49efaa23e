"""The Gramine manifest templates render (Jinja2, as gramine-manifest does) into valid TOML."""

from __future__ import annotations

import tomllib
from typing import Any

import pytest

from tests.deploy._tools import DEPLOY, module

TEMPLATES = {"coordinator": "veil-coordinator", "server": "veil-server"}
COMMANDS = {"coordinator": ["coordinator", "run"], "server": ["serve"]}
PYTHON = "/usr/local/bin/python3.11"
STDLIB = "/usr/local/lib/python3.11"
DYNLOAD = "/usr/local/lib/python3.11/lib-dynload"
SITE = "/usr/local/lib/python3.11/site-packages"
RUNTIME = "/usr/lib/x86_64-linux-gnu/gramine/runtime/glibc"
LIBOS = "/usr/lib/x86_64-linux-gnu/gramine/libsysdb.so"
# What the host may set. Anything else (VEIL_TEE above all) is fixed in the measured manifest.
PASSTHROUGH_ALLOWED = {
    "VEIL_COORDINATOR_CLIENT_ADDR", "VEIL_COORDINATOR_MESH_ADDR", "VEIL_COORDINATOR_METRICS_ADDR",
    "VEIL_COORDINATOR_STORE", "VEIL_COORDINATOR_ETCD_ENDPOINTS", "VEIL_COORDINATOR_ETCD_PREFIX",
    "VEIL_COORDINATOR_KEY_ADDR", "VEIL_COORDINATOR_PEERS", "VEIL_PCCS_URL",
    "VEIL_MARBLE_TYPE", "VEIL_MARBLE_COORDINATOR_ADDR", "VEIL_MARBLE_COORDINATOR_CERT",
    "VEIL_MARBLE_UUID_FILE", "VEIL_MODEL_NAME", "VEIL_MODEL_BASE_PATH", "VEIL_HOST",
    "VEIL_GRPC_PORT", "VEIL_REST_PORT", "VEIL_METRICS_ADDR",
}  # fmt: skip


class _Dir(str):
    """A directory path as ``pathlib.Path`` shows it to templates (``is_dir()``)."""

    __slots__ = ()

    def is_dir(self) -> bool:
        return True


def _runtimedir(libc: str = "glibc") -> str:
    return RUNTIME


def _get_sys_path(interpreter: str) -> list[_Dir]:
    """What gramine-manifest gets by running ``interpreter -c 'import sys; print(sys.path)'``."""
    assert interpreter == PYTHON
    return [_Dir(STDLIB), _Dir(DYNLOAD), _Dir(SITE)]


# The globals gramine-manifest gives templates (graminelibos/gen_jinja_env.py): dictionaries.
GRAMINE = {"libos": LIBOS, "runtimedir": _runtimedir}
PYTHON_NS = {"get_sys_path": _get_sys_path}


def render(component: str, **defines: str) -> dict[str, Any]:
    """Render like ``gramine-manifest -D...``: strict about undefined names, then parse TOML."""
    jinja2 = module("jinja2")
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(DEPLOY / "gramine"),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
    )
    template = env.get_template(f"{TEMPLATES[component]}.manifest.template")
    text = template.render(
        gramine=GRAMINE,
        python=PYTHON_NS,
        env={},
        arch_libdir="/lib/x86_64-linux-gnu",
        entrypoint=PYTHON,
        log_level="error",
        **defines,
    )
    return tomllib.loads(text)


def _keys(tree: dict[str, Any], prefix: str = "") -> list[str]:
    out = []
    for key, value in tree.items():
        out.append(prefix + key)
        if isinstance(value, dict):
            out += _keys(value, prefix + key + ".")
    return out


def _gib(size: str) -> float:
    units = {"M": 1 / 1024, "G": 1}
    return float(size[:-1]) * units[size[-1]]


@pytest.mark.parametrize("component", TEMPLATES)
def test_template_renders_to_a_production_sgx_manifest(component: str) -> None:
    """DCAP attestation, no debug enclave, no insecure__ option, the Python entry point of veil."""
    manifest = render(component)
    sgx = manifest["sgx"]
    assert sgx["remote_attestation"] == "dcap"
    assert sgx["debug"] is False
    assert sgx["edmm_enable"] is False
    assert not [k for k in _keys(manifest) if "insecure__" in k]
    assert manifest["libos"]["entrypoint"] == PYTHON
    assert manifest["loader"]["entrypoint"]["uri"] == f"file:{LIBOS}"
    argv = manifest["loader"]["argv"]
    assert argv[:3] == ["python3", "-m", "veil"]
    assert argv[3 : 3 + len(COMMANDS[component])] == COMMANDS[component]
    assert isinstance(sgx["isvprodid"], int)
    assert isinstance(sgx["isvsvn"], int)


@pytest.mark.parametrize("component", TEMPLATES)
def test_python_and_veil_sources_are_trusted_files(component: str) -> None:
    """Gramine, libc, the interpreter, the standard library and site-packages (veil) are measured."""
    trusted = render(component)["sgx"]["trusted_files"]
    for path in (LIBOS, PYTHON, RUNTIME + "/", STDLIB + "/", DYNLOAD + "/", SITE + "/"):
        assert f"file:{path}" in trusted
    allowed = render(component)["sgx"].get("allowed_files", [])
    assert not [a for a in allowed if a.startswith(f"file:{STDLIB}")]
    mounts = {m["path"] for m in render(component)["fs"]["mounts"]}
    assert {STDLIB, DYNLOAD, SITE, PYTHON} <= mounts


@pytest.mark.parametrize("component", TEMPLATES)
def test_the_host_cannot_choose_the_tee(component: str) -> None:
    """VEIL_TEE is fixed to sgx; only addresses and identifiers pass through from the host."""
    env = render(component)["loader"]["env"]
    assert env["VEIL_TEE"] == "sgx"
    passthrough = {k for k, v in env.items() if isinstance(v, dict) and v.get("passthrough")}
    assert passthrough <= PASSTHROUGH_ALLOWED
    assert "VEIL_SIMULATED_PLATFORM" not in env
    assert "insecure__use_host_env" not in render(component)["loader"]


def test_enclaves_are_sized_for_their_workloads() -> None:
    """onnxruntime gets a 4 GiB enclave and 128 threads by default; the coordinator 2 GiB and 64."""
    server, coordinator = render("server")["sgx"], render("coordinator")["sgx"]
    assert _gib(server["enclave_size"]) >= 4
    assert server["max_threads"] >= 128
    assert _gib(coordinator["enclave_size"]) >= 2
    assert coordinator["max_threads"] >= 64


def test_build_time_settings_override_the_defaults() -> None:
    """-Denclave_size, -Dmax_threads, -Dedmm and -Ddns_names reach the manifest."""
    manifest = render(
        "coordinator", enclave_size="8G", max_threads="256", edmm="1", dns_names="veil.example.com"
    )
    assert manifest["sgx"]["enclave_size"] == "8G"
    assert manifest["sgx"]["max_threads"] == 256
    assert manifest["sgx"]["edmm_enable"] is True
    assert "--dns-name=veil.example.com" in manifest["loader"]["argv"]


def test_coordinator_seal_keys_are_bound_to_the_signer() -> None:
    """The coordinator's seal key lives in a Gramine encrypted mount keyed by MRSIGNER."""
    manifest = render("coordinator")
    mounts = {m["path"]: m for m in manifest["fs"]["mounts"]}
    sealed = mounts["/sealed"]
    assert sealed["type"] == "encrypted"
    assert sealed["key_name"] == "_sgx_mrsigner"
    assert manifest["loader"]["env"]["VEIL_SGX_SEAL_KEY_FILE"].startswith("/sealed/")
    assert manifest["sgx"]["allowed_files"] == ["file:/data/"]
    assert manifest["loader"]["env"]["VEIL_COORDINATOR_SEAL_DIR"] == "/data"


def test_server_reads_ciphertext_models_unmeasured_but_nothing_executable() -> None:
    """Models, the pod UID and the coordinator root are allowed files; none is code."""
    allowed = render("server")["sgx"]["allowed_files"]
    assert allowed == [
        "file:/models/",
        "file:/var/run/veil/marble/uuid",
        "file:/etc/veil/coordinator/root.pem",
    ]
