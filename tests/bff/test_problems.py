"""A bug in the BFF is a 500 problem that reveals nothing; the traceback goes to the log."""

from __future__ import annotations

import json

import pytest
from aiohttp import web
from bff_support import MakeBff

from bff import problems, product_details


async def test_unexpected_exception_is_a_bare_500_problem(
    make_bff: MakeBff, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def broken(*_: object) -> None:
        raise RuntimeError("secret-internal-detail at /srv/app.py")

    monkeypatch.setattr(product_details, "_merge", broken)
    bff = await make_bff()
    async with bff.get("/product-details/P001") as resp:
        assert resp.status == 500
        assert resp.content_type == "application/problem+json"
        text = await resp.text()
        request_id = resp.headers["X-Request-ID"]
    assert "secret" not in text
    assert "Traceback" not in text
    assert request_id in text
    logged = capsys.readouterr().out
    assert "secret-internal-detail" in logged  # the log has it, with the traceback
    assert "Traceback" in logged


def document(response: web.Response) -> dict[str, object]:
    assert response.content_type == "application/problem+json"
    assert response.headers["Cache-Control"] == "no-store"
    assert isinstance(response.body, bytes)
    body: dict[str, object] = json.loads(response.body)
    return body


class TestTheDocuments:
    """What a client reads in each kind of problem the BFF makes itself."""

    def test_a_bug_of_ours(self) -> None:
        response = problems.internal_error(instance="/product-details/P1", request_id="r1")
        assert response.status == 500
        assert document(response) == {
            "type": "/problems/internal-error",
            "title": "Internal error",
            "status": 500,
            "detail": "The BFF failed unexpectedly; quote the request id when reporting it.",
            "instance": "/product-details/P1",
            "requestId": "r1",
        }

    def test_not_ready(self) -> None:
        response = problems.not_ready("draining", instance="/readyz", request_id="r2")
        assert response.status == 503
        assert response.headers["Retry-After"] == "1"
        assert document(response) == {
            "type": "/problems/not-ready",
            "title": "Not ready",
            "status": 503,
            "detail": "this instance is draining",
            "instance": "/readyz",
            "requestId": "r2",
        }

    def test_aiohttps_own_errors_keep_allow_and_retry_after_only(self) -> None:
        refused = web.HTTPMethodNotAllowed("POST", ["GET", "HEAD"], headers={"X-Other": "1"})
        response = problems.from_http_exception(refused, instance="/p", request_id="r3")
        assert response.status == 405
        assert response.headers["Allow"] == "GET,HEAD"
        assert "X-Other" not in response.headers
        assert document(response) == {
            "type": "/problems/method-not-allowed",
            "title": "Method Not Allowed",
            "status": 405,
            "detail": "Method Not Allowed",  # aiohttp's text is "405: ...": the reason instead
            "instance": "/p",
            "requestId": "r3",
        }
        busy = web.HTTPServiceUnavailable(headers={"Retry-After": "3"}, text="try later")
        response = problems.from_http_exception(busy, instance="/q", request_id="r4")
        assert response.headers["Retry-After"] == "3"
        assert document(response)["detail"] == "try later"  # a text of its own is kept
        assert document(response)["type"] == "/problems/service-unavailable"
