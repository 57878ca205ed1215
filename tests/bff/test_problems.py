"""A bug in the BFF is a 500 problem that reveals nothing; the traceback goes to the log."""

from __future__ import annotations

import pytest
from bff_support import MakeBff

from bff import product_details


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
