"""OpenAPI 3.1: the file in the repo, served, true of the running app.

schemathesis generates requests from bff/openapi.json, valid and invalid, and runs them
against a live BFF (on mocks with no simulated latency, in a thread of its own) with all its
default checks: no 5xx, no status, header, content type or body the document does not
describe, valid input accepted and invalid input rejected, 405 for undocumented methods.
The number of examples is bounded to keep the suite fast.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from importlib.resources import files
from typing import Any

import pytest
import requests
import schemathesis
from bff_support import KINDS
from hypothesis import HealthCheck, settings
from server_thread_support import ServerThread

from bff.app import create_app
from bff.server import make_runner
from bff.settings import Settings
from mock_services import create_service_app

DOCUMENT = json.loads(files("bff").joinpath("openapi.json").read_text())
schema = schemathesis.openapi.from_dict(DOCUMENT)


@pytest.fixture(scope="module")
def live_url() -> Iterator[str]:
    """Mocks (no simulated latency) and the BFF on its production runner, on loopback ports
    served from a thread of their own: the fuzzer's calls block."""
    servers = ServerThread()
    try:
        # Rate limiting stays on, with room for the fuzzer's burst from one address.
        env = {"BFF_RATE_LIMIT_RATE": "1000", "BFF_RATE_LIMIT_BURST": "5000"}
        for kind in KINDS:
            url = servers.serve(create_service_app(kind, latency_scale=0))
            env[f"BFF_{kind.upper()}_URL"] = url
        bff_settings = Settings.from_env(env)
        runner = lambda app: make_runner(app, bff_settings)  # noqa: E731 - the one use
        yield servers.serve(create_app(bff_settings), runner=runner)
    finally:
        servers.close()


class TestDocument:
    def test_is_openapi_3_1(self) -> None:
        assert DOCUMENT["openapi"].startswith("3.1.")

    def test_served_as_kept_in_the_repo(self, live_url: str) -> None:
        resp = requests.get(f"{live_url}/openapi.json", timeout=5)
        assert resp.status_code == 200
        assert resp.headers["Content-Type"].startswith("application/json")
        assert resp.json() == DOCUMENT

    def test_every_route_is_described(self) -> None:
        app = create_app(Settings.from_env({}))
        routes = {r.canonical for r in app.router.resources()}
        assert routes == set(DOCUMENT["paths"])


def _validate(live_url: str, method: str, path: str, **kwargs: Any) -> int:
    """One hand-made request, validated against the document like a fuzzed one."""
    operation = schema[path][method]
    case = operation.Case(**kwargs)
    response = case.call(base_url=live_url, timeout=5)
    case.validate_response(response)
    return int(response.status_code)


class TestResponsesMatchTheDocument:
    def test_200(self, live_url: str) -> None:
        assert (
            _validate(live_url, "GET", "/product-details/{id}", path_parameters={"id": "P1"}) == 200
        )

    def test_400_for_a_bad_header(self, live_url: str) -> None:
        status = _validate(
            live_url,
            "GET",
            "/product-details/{id}",
            path_parameters={"id": "P1"},
            headers={"X-Request-Timeout-Ms": "0"},
        )
        assert status == 400

    def test_404_for_a_missing_product(self, live_url: str) -> None:
        status = _validate(
            live_url, "GET", "/product-details/{id}", path_parameters={"id": "missing-1"}
        )
        assert status == 404

    def test_operator_paths_are_not_part_of_the_api(self, live_url: str) -> None:
        """They live on the admin listener; here they are an unknown path like any other."""
        assert not {"/healthz", "/readyz", "/metrics"} & set(DOCUMENT["paths"])
        for path in ("/healthz", "/readyz", "/metrics"):
            response = requests.get(f"{live_url}{path}", timeout=5)
            assert response.status_code == 404, path
            assert response.headers["Content-Type"] == "application/problem+json"


@schema.parametrize()
@settings(
    max_examples=25,
    deadline=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
)
def test_fuzzed_requests_get_documented_answers(case: Any, live_url: str) -> None:
    response = case.call(base_url=live_url, timeout=5)
    case.validate_response(response)
