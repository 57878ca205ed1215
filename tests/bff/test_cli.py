"""`python -m bff` as users run it: flags, --help, several workers, clean stop on signals."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys

import aiohttp
import pytest
from process_support import clean_env
from processes import running_bff, running_mocks

pytestmark = pytest.mark.slow


def test_help_lists_the_flags() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "bff", "--help"],
        capture_output=True,
        text=True,
        timeout=30,
        env=clean_env(),
    )
    assert out.returncode == 0
    for flag in ("--host", "--port", "--admin-port", "--workers", "--print-config"):
        assert flag in out.stdout


def test_an_invalid_setting_stops_start_up_with_a_clear_message() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "bff"],
        capture_output=True,
        text=True,
        timeout=30,
        env={"BFF_DEADLINE_MS": "soon", "PATH": ""},
    )
    assert out.returncode == 2
    assert "BFF_DEADLINE_MS" in out.stderr
    assert "Traceback" not in out.stderr


async def _fetch_all(base: str, count: int) -> list[int]:
    async with aiohttp.ClientSession() as session:

        async def one(i: int) -> int:
            async with session.get(f"{base}/product-details/P{i:03d}") as resp:
                await resp.read()
                return resp.status

        return list(await asyncio.gather(*(one(i) for i in range(count))))


@pytest.mark.parametrize("workers", [1, 2])
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_serves_and_stops_cleanly(workers: int, sig: int) -> None:
    with (
        running_mocks("--latency-scale", "0") as mocks,
        running_bff(mocks, "--workers", str(workers)) as bff,
    ):
        statuses = asyncio.run(_fetch_all(bff.urls["bff"], 20))
        assert statuses == [200] * 20
        code, err = bff.stop(sig)
    assert code == 0, err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("flag", "message"),
    [("--port=99999", "port number 0-65535"), ("--workers=0", "integer >= 1")],
)
def test_an_invalid_flag_is_refused_with_the_settings_message(flag: str, message: str) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "bff", flag],
        capture_output=True,
        text=True,
        timeout=30,
        env=clean_env(),
    )
    assert out.returncode == 2
    assert message in out.stderr
