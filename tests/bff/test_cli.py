"""`python -m bff` as users run it: flags, --help, several workers, clean stop on signals."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys

import aiohttp
import pytest
from process_support import announced_mocks, clean_env, running, stop, url_in

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
async def test_serves_and_stops_cleanly(workers: int, sig: int) -> None:
    mocks_args = ["-m", "mock_services", "--latency-scale", "0"]
    mocks_args += [f"--{kind}-port=0" for kind in ("product", "reviews", "inventory")]
    async with running(mocks_args) as (_, mocks_out):
        env = {f"BFF_{k.upper()}_URL": url for k, url in (await announced_mocks(mocks_out)).items()}
        args = ["-m", "bff", "--port", "0", "--workers", str(workers)]
        async with running(args, env) as (bff, out):
            statuses = await _fetch_all(url_in(await out.next_matching("bff listening on")), 20)
            assert statuses == [200] * 20
            code = await stop(bff, sig)
            output = out.read()
    assert code == 0, output
    assert "Traceback" not in output


@pytest.mark.parametrize(
    ("flag", "message"),
    [("--port=99999", "argument --port: expected `int` <= 65535"), ("--workers=0", "`int` >= 1")],
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


def test_an_unknown_variable_is_a_warning_naming_the_closest_setting() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "bff", "--print-config"],
        capture_output=True,
        text=True,
        timeout=30,
        env=clean_env({"BFF_DEADLINE_MSS": "300"}),
    )
    assert out.returncode == 0
    assert out.stderr == (
        "python -m bff: warning: "
        "BFF_DEADLINE_MSS is not a setting (did you mean BFF_DEADLINE_MS?)\n"
    )
    assert json.loads(out.stdout)["deadline_ms"] == 500.0
