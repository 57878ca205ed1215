"""The Compose file, the Prometheus config and the Dockerfile, checked by reading them:
containers cannot be built or pulled on the machines that run these tests."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from deploy_support import DEPLOY, built_image, load_yaml

from bff.settings import Settings

COMPOSE = DEPLOY / "compose.yaml"
REPLICAS = ("bff-1", "bff-2", "bff-3")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data: dict[str, Any] = load_yaml(COMPOSE)
    return data


@pytest.fixture(scope="module")
def stages() -> list[str]:
    """The Dockerfile's stages, each from its FROM line on."""
    text = (DEPLOY / "Dockerfile").read_text()
    return re.split(r"^FROM ", text, flags=re.MULTILINE)[1:]


def host_path(volume: str) -> Path:
    return (COMPOSE.parent / volume.split(":", 1)[0]).resolve()


class TestCompose:
    """§4's topology: nginx, three replicas, the mocks, Redis, traces, metrics, dashboards."""

    def test_has_the_whole_topology(self, compose: dict[str, Any]) -> None:
        services = compose["services"]
        expected = {*REPLICAS, "nginx", "mocks", "redis", "otel-collector", "jaeger"}
        assert expected | {"prometheus", "grafana"} <= services.keys()

    def test_every_mounted_file_exists(self, compose: dict[str, Any]) -> None:
        mounts = [
            v
            for service in compose["services"].values()
            for v in service.get("volumes", [])
            if v.startswith(".")
        ]
        assert len(mounts) >= 7  # nginx x3, collector, prometheus x2, grafana x2
        missing = [m for m in mounts if not host_path(m).exists()]
        assert missing == []

    def test_runs_the_image_the_docs_build(self, compose: dict[str, Any]) -> None:
        """Every service of ours runs the tag docs/deploy.md builds (another tag, never built,
        would make `docker compose up` pull a name no registry has)."""
        ours = {
            s["image"]
            for s in compose["services"].values()
            if s.get("image", "").startswith("product-details-bff:")
        }
        assert ours == {built_image()}

    def test_the_build_context_holds_the_dockerfile(self, compose: dict[str, Any]) -> None:
        build = compose["services"]["bff-1"]["build"]
        context = (COMPOSE.parent / build["context"]).resolve()
        assert (context / build["dockerfile"]).is_file()
        assert (context / "pyproject.toml").is_file()

    @pytest.mark.parametrize("replica", REPLICAS)
    def test_every_replica_has_valid_settings(self, compose: dict[str, Any], replica: str) -> None:
        env = compose["services"][replica]["environment"]
        settings = Settings.from_env({k: str(v) for k, v in env.items()})
        assert settings.downstream("product").urls[0].host == "mocks"
        # nginx's network is trusted for X-Forwarded-For.
        assert settings.edge.trusted_proxies

    def test_stop_grace_covers_the_bff_shutdown(self, compose: dict[str, Any]) -> None:
        service = compose["services"]["bff-1"]
        settings = Settings.from_env({k: str(v) for k, v in service["environment"].items()})
        grace = int(service["stop_grace_period"].rstrip("s"))
        assert grace >= settings.shutdown_grace_s + 5  # the supervisor's margin

    def test_nginx_uses_the_shared_proxy_files(self, compose: dict[str, Any]) -> None:
        volumes = compose["services"]["nginx"]["volumes"]
        mounted = {host_path(v).name: v.split(":")[1] for v in volumes}
        conf = (DEPLOY / "nginx" / "nginx.conf").read_text()
        for name in ("proxy.conf", "upstream-keepalive.conf"):
            assert f"include {mounted[name]};" in conf
        for replica in REPLICAS:
            assert f"server {replica}:8080" in conf

    def test_prometheus_scrapes_every_replica_admin_port(self, compose: dict[str, Any]) -> None:
        config = load_yaml(DEPLOY / "prometheus" / "prometheus.yml")
        targets = config["scrape_configs"][0]["static_configs"][0]["targets"]
        assert sorted(targets) == [f"{r}:9090" for r in REPLICAS]
        dockerfile = (DEPLOY / "Dockerfile").read_text()
        assert "BFF_ADMIN_PORT=9090" in dockerfile


class TestDockerfile:
    """Multi-stage, non-root, no build tools in the final stage, `python -m bff`."""

    def test_two_stages_on_slim_python_311(self, stages: list[str]) -> None:
        assert len(stages) == 2
        for stage in stages:
            assert stage.startswith("python:3.11-slim")

    def test_the_final_stage_has_no_build_tools(self, stages: list[str]) -> None:
        final = stages[-1]
        assert "build-essential" not in final
        assert "apt-get install" not in final
        assert "--no-index" in final  # only the wheels built in the first stage

    def test_runs_as_a_non_root_user(self, stages: list[str]) -> None:
        (user,) = re.findall(r"^USER (\S+)", stages[-1], flags=re.MULTILINE)
        assert user.split(":")[0] not in {"0", "root"}

    def test_entrypoint_and_healthcheck(self, stages: list[str]) -> None:
        final = stages[-1]
        assert 'ENTRYPOINT ["python", "-m", "bff"]' in final
        healthcheck = final[final.index("HEALTHCHECK") :]
        assert "urllib.request" in healthcheck  # slim images have no curl
        assert "BFF_ADMIN_PORT" in healthcheck
        assert "/healthz" in healthcheck
