"""The Kustomize overlays render with kubectl and validate offline against pinned Kubernetes schemas."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from typing import Any

import pytest

from tests.deploy._tools import DEPLOY, kubectl, module
from tests.deploy.test_gramine import render as render_gramine

KUSTOMIZE = DEPLOY / "kubernetes"
OVERLAYS = ["simulated", "sgx", "ha", "sgx-ha"]
# Validated against the oldest release still common in managed clusters and the release of the
# pinned kubectl that renders them (scripts/install-deploy-tools.sh).
KUBERNETES_VERSIONS = ["1.31.0", "1.37.0"]

Resource = dict[str, Any]
_rendered: dict[str, list[Resource]] = {}


def render(overlay: str) -> list[Resource]:
    """``kubectl kustomize`` of one overlay, parsed (cached for the session)."""
    if overlay not in _rendered:
        yaml = module("yaml")
        result = subprocess.run(
            [kubectl(), "kustomize", str(KUSTOMIZE / "overlays" / overlay)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        _rendered[overlay] = [d for d in yaml.safe_load_all(result.stdout) if d]
    return _rendered[overlay]


def find(resources: list[Resource], kind: str, name: str) -> Resource:
    matches = [r for r in resources if r["kind"] == kind and r["metadata"]["name"] == name]
    assert len(matches) == 1, f"{kind}/{name}: {len(matches)} found"
    return matches[0]


def workloads(resources: list[Resource]) -> Iterator[Resource]:
    return (r for r in resources if r["kind"] in ("Deployment", "StatefulSet"))


def env(container: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e.get("value", "") for e in container.get("env", [])}


def container(resources: list[Resource], deployment: str) -> dict[str, Any]:
    first: dict[str, Any] = find(resources, "Deployment", deployment)["spec"]["template"]["spec"][
        "containers"
    ][0]
    return first


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_resource_validates_strictly(overlay: str, version: str) -> None:
    """Each rendered resource matches the Kubernetes OpenAPI schema, unknown fields rejected."""
    kv = module("kubernetes_validate")
    problems = []
    for resource in render(overlay):
        try:
            kv.validate(resource, version, strict=True)
        except kv.ValidationError as exc:
            where = "/".join(str(p) for p in exc.path)
            problems.append(
                f"{resource['kind']}/{resource['metadata']['name']} {where}: {exc.message}"
            )
    assert problems == []


def test_the_validator_rejects_a_misspelt_field() -> None:
    """The offline validation is real: a typo in a rendered resource is caught."""
    kv = module("kubernetes_validate")
    service = dict(find(render("simulated"), "Service", "coordinator-client-api"))
    service["spec"] = {**service["spec"], "portz": service["spec"]["ports"]}
    with pytest.raises(kv.ValidationError, match="portz"):
        kv.validate(service, KUBERNETES_VERSIONS[0], strict=True)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_pods_are_hardened(overlay: str) -> None:
    """Non-root, seccomp RuntimeDefault, read-only root, no privilege escalation, no capabilities."""
    for w in workloads(render(overlay)):
        pod = w["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True, w["metadata"]["name"]
        assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
        assert pod["automountServiceAccountToken"] is False
        assert all("hostPath" not in v for v in pod.get("volumes", []))
        for c in pod["containers"]:
            sc = c["securityContext"]
            assert sc["readOnlyRootFilesystem"] is True, c["name"]
            assert sc["allowPrivilegeEscalation"] is False, c["name"]
            assert sc["capabilities"]["drop"] == ["ALL"], c["name"]
            assert sc["seccompProfile"]["type"] == "RuntimeDefault", c["name"]
            assert "memory" in c["resources"]["limits"], c["name"]
    namespace = find(render(overlay), "Namespace", "veil")
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_coordinator_probes_and_services(overlay: str) -> None:
    """Probes hit /healthz and /readyz over HTTPS on the client port; client and mesh Services."""
    resources = render(overlay)
    c = container(resources, "veil-coordinator")
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert ports["client-api"] == 4433
    assert ports["mesh-api"] == 2001
    assert c["livenessProbe"]["httpGet"] == {
        "path": "/healthz",
        "port": "client-api",
        "scheme": "HTTPS",
    }
    assert c["readinessProbe"]["httpGet"] == {
        "path": "/readyz",
        "port": "client-api",
        "scheme": "HTTPS",
    }
    client = find(resources, "Service", "coordinator-client-api")["spec"]["ports"]
    mesh = find(resources, "Service", "coordinator-mesh-api")["spec"]["ports"]
    assert [p["port"] for p in client] == [4433]
    assert [p["port"] for p in mesh] == [2001]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_inference_replicas_take_marble_settings_from_the_pod(overlay: str) -> None:
    """UUID file from the pod UID (downward API), marble type and coordinator address; HPA."""
    resources = render(overlay)
    deployment = find(resources, "Deployment", "veil-inference")
    pod = deployment["spec"]["template"]["spec"]
    settings = env(pod["containers"][0])
    assert settings["VEIL_MARBLE_TYPE"] == "inference-server"
    assert settings["VEIL_MARBLE_COORDINATOR_ADDR"].startswith("coordinator-mesh-api.")
    assert settings["VEIL_MARBLE_COORDINATOR_CERT"]
    mount = next(
        m
        for m in pod["containers"][0]["volumeMounts"]
        if settings["VEIL_MARBLE_UUID_FILE"].startswith(m["mountPath"] + "/")
    )
    volume = next(v for v in pod["volumes"] if v["name"] == mount["name"])
    item = volume["downwardAPI"]["items"][0]
    assert item["fieldRef"]["fieldPath"] == "metadata.uid"
    assert settings["VEIL_MARBLE_UUID_FILE"] == f"{mount['mountPath']}/{item['path']}"
    hpa = find(resources, "HorizontalPodAutoscaler", "veil-inference")
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "veil-inference",
    }
    assert hpa["spec"]["minReplicas"] >= 2


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_metrics_are_scraped_and_traffic_is_denied_by_default(overlay: str) -> None:
    """Prometheus annotations on every pod; a default-deny policy for ingress and egress."""
    resources = render(overlay)
    for w in workloads(resources):
        annotations = w["spec"]["template"]["metadata"]["annotations"]
        assert annotations["prometheus.io/scrape"] == "true"
        assert annotations["prometheus.io/port"].isdigit()
    deny = find(resources, "NetworkPolicy", "default-deny")["spec"]
    assert deny["podSelector"] == {}
    assert sorted(deny["policyTypes"]) == ["Egress", "Ingress"]
    assert "ingress" not in deny
    assert "egress" not in deny
    mesh = find(resources, "NetworkPolicy", "veil-coordinator")["spec"]["ingress"]
    mesh_rule = next(r for r in mesh if any(p["port"] == 2001 for p in r["ports"]))
    assert mesh_rule["from"] == [{"podSelector": {"matchLabels": {"veil.dev/marble": "true"}}}]


def test_simulated_overlay_says_so_explicitly() -> None:
    """Both components run with VEIL_TEE=simulated and the platform secret; the base sets no TEE."""
    resources = render("simulated")
    for name in ("veil-coordinator", "veil-inference"):
        settings = env(container(resources, name))
        assert settings["VEIL_TEE"] == "simulated"
        assert settings["VEIL_SIMULATED_PLATFORM"] == "/etc/veil/simulated-platform"
    assert find(resources, "PersistentVolumeClaim", "veil-coordinator-data")


@pytest.mark.parametrize("overlay", ["sgx", "sgx-ha"])
def test_sgx_overlays_request_sgx_resources(overlay: str) -> None:
    """EPC and enclave for the enclaves, provision for the aesmd quoting sidecar; no simulation."""
    resources = render(overlay)
    for name in ("veil-coordinator", "veil-inference"):
        pod = find(resources, "Deployment", name)["spec"]["template"]["spec"]
        main, *sidecars = pod["containers"]
        assert env(main)["VEIL_TEE"] == "sgx"
        assert "VEIL_SIMULATED_PLATFORM" not in env(main)
        assert main["command"][0] == "gramine-sgx"
        limits = main["resources"]["limits"]
        assert limits["sgx.intel.com/epc"]
        assert limits["sgx.intel.com/enclave"] == 1
        aesmd = next(c for c in sidecars if c["name"] == "aesmd")
        assert aesmd["resources"]["limits"]["sgx.intel.com/provision"] == 1
        assert any(t["key"] == "sgx.intel.com/epc" for t in pod["tolerations"])


@pytest.mark.parametrize("overlay", ["ha", "sgx-ha"])
def test_ha_overlays_run_three_coordinators_on_etcd(overlay: str) -> None:
    """An etcd StatefulSet of 3, 3 coordinator replicas using it, and no SQLite volume."""
    resources = render(overlay)
    etcd = find(resources, "StatefulSet", "veil-etcd")
    assert etcd["spec"]["replicas"] == 3
    coordinator = find(resources, "Deployment", "veil-coordinator")
    assert coordinator["spec"]["replicas"] == 3
    assert coordinator["spec"]["strategy"]["type"] == "RollingUpdate"
    settings = env(coordinator["spec"]["template"]["spec"]["containers"][0])
    assert settings["VEIL_COORDINATOR_STORE"] == "etcd"
    assert len(settings["VEIL_COORDINATOR_ETCD_ENDPOINTS"].split(",")) == 3
    assert not [r for r in resources if r["metadata"]["name"] == "veil-coordinator-data"]
    volumes = coordinator["spec"]["template"]["spec"]["volumes"]
    assert all("persistentVolumeClaim" not in v for v in volumes)
    assert find(resources, "PodDisruptionBudget", "veil-coordinator")["spec"]["minAvailable"] == 2


def _under(path: str, allowed: list[str]) -> bool:
    return any(path == a[5:] or (a.endswith("/") and path.startswith(a[5:])) for a in allowed)


def test_sgx_pods_match_the_gramine_manifests() -> None:
    """Each enclave's files, seal directory and EPC size agree between the pod and its manifest."""
    resources = render("sgx")
    server_pod = container(resources, "veil-inference")
    server = render_gramine("server")
    assert server_pod["command"] == ["gramine-sgx", "veil-server"]
    assert "args" not in server_pod
    settings = env(server_pod)
    for name in ("VEIL_MARBLE_UUID_FILE", "VEIL_MARBLE_COORDINATOR_CERT", "VEIL_MODEL_BASE_PATH"):
        assert _under(settings[name], server["sgx"]["allowed_files"]), name
    assert (
        server_pod["resources"]["limits"]["sgx.intel.com/epc"]
        == server["sgx"]["enclave_size"] + "i"
    )

    coordinator_pod = container(resources, "veil-coordinator")
    coordinator = render_gramine("coordinator")
    assert coordinator_pod["command"] == ["gramine-sgx", "veil-coordinator"]
    assert "args" not in coordinator_pod
    seal_dir = coordinator["loader"]["env"]["VEIL_COORDINATOR_SEAL_DIR"]
    assert seal_dir in {m["mountPath"] for m in coordinator_pod["volumeMounts"]}
    assert coordinator_pod["resources"]["limits"]["sgx.intel.com/epc"] == (
        coordinator["sgx"]["enclave_size"] + "i"
    )
