"""The Kubernetes manifests: rendered by kustomize, valid against the API schemas (offline),
and consistent with what the BFF does (ports, drain timings, writable paths, settings)."""

from __future__ import annotations

import json
import subprocess
from typing import Any

import kubernetes_validate
import pytest
from deploy_support import DEPLOY, built_image, load_all_yaml, require_tool, unavailable

from bff.settings import Settings

K8S = DEPLOY / "k8s"
# The oldest Kubernetes still widely run and the newest schemas the package ships.
VERSIONS = ("1.28.0", kubernetes_validate.latest_version())
# What the BFF's supervisor adds past BFF_SHUTDOWN_GRACE_S before it kills a worker.
SUPERVISOR_MARGIN_S = 5


def kustomize_capable_kubectl() -> str:
    """kubectl with kustomize v4+ (kubectl 1.21+): older ones (Debian bookworm's
    kubernetes-client is 1.20, with kustomize v2) cannot read these kustomizations."""
    kubectl = require_tool("kubectl")
    out = subprocess.run(
        [kubectl, "version", "--client", "-o", "json"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    try:
        minor = int(json.loads(out.stdout)["clientVersion"]["minor"].rstrip("+"))
    except (ValueError, KeyError):
        minor = 0
    if minor < 21:
        unavailable(
            f"{kubectl} is older than 1.21 (its kustomize cannot read deploy/k8s)", tool="kubectl"
        )
    return kubectl


def render(target: str) -> list[dict[str, Any]]:
    kubectl = kustomize_capable_kubectl()
    out = subprocess.run(
        [kubectl, "kustomize", str(K8S / target)],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    )
    return load_all_yaml(out.stdout)


@pytest.fixture(scope="module", params=["base", "overlays/local"])
def rendered(request: pytest.FixtureRequest) -> list[dict[str, Any]]:
    return render(request.param)


def one(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    (found,) = [d for d in docs if d["kind"] == kind and d["metadata"]["name"].startswith(name)]
    return found


def bff_container(docs: list[dict[str, Any]]) -> dict[str, Any]:
    pod = one(docs, "Deployment", "bff")["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    return container


def bff_config(docs: list[dict[str, Any]]) -> dict[str, str]:
    data: dict[str, str] = one(docs, "ConfigMap", "bff-config")["data"]
    return data


class TestSchemas:
    """Every rendered resource is valid for the Kubernetes API (strict: no unknown field)."""

    @pytest.mark.parametrize("version", VERSIONS)
    def test_every_resource_validates(self, rendered: list[dict[str, Any]], version: str) -> None:
        for doc in rendered:
            kubernetes_validate.validate(doc, version, strict=True)

    def test_a_typo_is_caught(self, rendered: list[dict[str, Any]]) -> None:
        """The check above can fail: an unknown field in a container is refused."""
        deployment = one(rendered, "Deployment", "bff")
        deployment["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {}
        with pytest.raises(kubernetes_validate.ValidationError):
            kubernetes_validate.validate(deployment, VERSIONS[-1], strict=True)

    def test_the_local_overlay_runs_the_whole_topology(self) -> None:
        docs = render("overlays/local")
        kinds = {(d["kind"], d["metadata"]["name"].split("-config")[0]) for d in docs}
        for expected in [
            ("Deployment", "bff"),
            ("Service", "bff"),
            ("HorizontalPodAutoscaler", "bff"),
            ("PodDisruptionBudget", "bff"),
            ("ConfigMap", "bff"),
            ("StatefulSet", "redis"),
            ("Service", "redis"),
            ("Deployment", "mocks"),
        ]:
            assert expected in kinds
        assert {d["metadata"].get("namespace") for d in docs if d["kind"] != "Namespace"} == {
            "bff-local"
        }
        for name in ("product", "reviews", "inventory"):
            assert one(docs, "Service", name)["spec"]["clusterIP"] == "None"  # headless

    def test_the_local_overlay_runs_the_image_the_docs_build(self) -> None:
        """The local cluster's pods run the tag docs/deploy.md builds and `kind load` loads;
        the base's release tag there would leave them in ErrImagePull."""
        pods = [
            d["spec"]["template"]["spec"]
            for d in render("overlays/local")
            if d["kind"] in ("Deployment", "StatefulSet")
        ]
        ours = {
            c["image"]
            for pod in pods
            for c in pod["containers"]
            if c["image"].startswith("product-details-bff:")
        }
        assert ours == {built_image()}


class TestDeployment:
    """The pod spec agrees with the BFF: its ports, its drain, its writable paths."""

    def test_the_configmap_is_valid_bff_settings(self, rendered: list[dict[str, Any]]) -> None:
        settings = Settings.from_env(bff_config(rendered))
        ports = {p["name"]: p["containerPort"] for p in bff_container(rendered)["ports"]}
        assert ports["http"] == settings.port
        assert str(ports["admin"]) == bff_config(rendered)["BFF_ADMIN_PORT"]
        assert settings.host == "0.0.0.0"

    def test_probes_ask_the_admin_port(self, rendered: list[dict[str, Any]]) -> None:
        container = bff_container(rendered)
        assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "admin"}
        assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "admin"}

    def test_the_grace_period_covers_prestop_drain_and_shutdown(
        self, rendered: list[dict[str, Any]]
    ) -> None:
        pod = one(rendered, "Deployment", "bff")["spec"]["template"]["spec"]
        container = bff_container(rendered)
        settings = Settings.from_env(bff_config(rendered))
        command = container["lifecycle"]["preStop"]["exec"]["command"]
        assert command[0] == "sleep"
        pre_stop_s = float(command[1])
        assert settings.edge.drain_delay_s < settings.shutdown_grace_s
        needed = pre_stop_s + settings.shutdown_grace_s + SUPERVISOR_MARGIN_S
        assert pod["terminationGracePeriodSeconds"] >= needed
        # Endpoints forget the pod while preStop sleeps: longer than a readiness period.
        readiness = container["readinessProbe"]
        assert pre_stop_s >= readiness["periodSeconds"] * readiness["failureThreshold"]

    def test_runs_as_non_root_on_a_read_only_root(self, rendered: list[dict[str, Any]]) -> None:
        pod = one(rendered, "Deployment", "bff")["spec"]["template"]["spec"]
        container = bff_container(rendered)
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["runAsUser"] != 0
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        assert container["securityContext"]["allowPrivilegeEscalation"] is False
        assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]

    def test_the_metrics_directory_is_a_writable_volume(
        self, rendered: list[dict[str, Any]]
    ) -> None:
        """prometheus_client's multiprocess files need a writable directory on a read-only root."""
        container = bff_container(rendered)
        env = {e["name"]: e["value"] for e in container.get("env", [])}
        metrics_dir = env["PROMETHEUS_MULTIPROC_DIR"]
        mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
        volumes = one(rendered, "Deployment", "bff")["spec"]["template"]["spec"]["volumes"]
        empty_dirs = {v["name"] for v in volumes if "emptyDir" in v}
        assert mounts[metrics_dir] in empty_dirs
        assert mounts["/tmp"] in empty_dirs

    def test_requests_and_limits_are_set(self, rendered: list[dict[str, Any]]) -> None:
        resources = bff_container(rendered)["resources"]
        for kind in ("requests", "limits"):
            assert {"cpu", "memory"} <= resources[kind].keys()
        # One worker per CPU of the limit (os.cpu_count() would see the node's CPUs).
        workers = int(bff_config(rendered)["BFF_WORKERS"])
        assert workers == int(resources["limits"]["cpu"])

    def test_the_service_exposes_the_api_port_only(self, rendered: list[dict[str, Any]]) -> None:
        service = one(rendered, "Service", "bff")
        assert [p["targetPort"] for p in service["spec"]["ports"]] == ["http"]

    def test_the_autoscaler_and_the_budget_select_the_pods(
        self, rendered: list[dict[str, Any]]
    ) -> None:
        deployment = one(rendered, "Deployment", "bff")
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        pdb = one(rendered, "PodDisruptionBudget", "bff")
        assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
        hpa = one(rendered, "HorizontalPodAutoscaler", "bff")
        assert hpa["spec"]["scaleTargetRef"]["name"] == deployment["metadata"]["name"]
        assert hpa["spec"]["metrics"][0]["resource"]["name"] == "cpu"
        assert hpa["spec"]["minReplicas"] > pdb["spec"]["maxUnavailable"]
