"""`python -m bff` as users run it: flags, --help, several workers, clean stop on signals."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess

import aiohttp
import pytest
from process_support import announced_mocks, run_to_exit, running, stop, url_in

pytestmark = pytest.mark.slow

PASSWORD = "pa55word"


def exited(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """`python -m bff ARGS` run to its end (a refusal, --help, --print-config)."""
    return run_to_exit(["-m", "bff", *args], env)


def test_help_lists_the_flags() -> None:
    out = exited("--help")
    assert out.returncode == 0
    for flag in ("--host", "--port", "--admin-port", "--workers", "--print-config"):
        assert flag in out.stdout


def test_an_invalid_setting_stops_start_up_with_a_clear_message() -> None:
    out = exited(env={"BFF_DEADLINE_MS": "soon"})
    assert out.returncode == 2
    assert out.stderr == (
        "python -m bff: invalid setting: BFF_DEADLINE_MS: expected a number of milliseconds"
        " (0 < x <= 60000), got 'soon'\n"
    )


class TestBadUrlsAtStart:
    """A URL that cannot be used is one line naming its variable and exit status 2, never a
    traceback, and its password is in none of it, whether starting or printing the config."""

    @pytest.mark.parametrize("args", [(), ("--print-config",)], ids=["start", "print-config"])
    def test_a_redis_url_with_a_password_and_a_bad_port(self, args: tuple[str, ...]) -> None:
        out = exited(*args, env={"BFF_REDIS_URL": f"redis://:{PASSWORD}@127.0.0.1:notaport/0"})
        assert out.returncode == 2
        (line,) = out.stderr.splitlines()
        assert line.startswith("python -m bff: invalid setting: BFF_REDIS_URL: expected")
        assert "redis://:<redacted>@127.0.0.1:notaport/0" in line
        assert PASSWORD not in out.stderr + out.stdout

    def test_a_service_url_with_a_bad_port(self) -> None:
        out = exited(env={"BFF_PRODUCT_URL": "http://127.0.0.1:notaport"})
        assert out.returncode == 2
        (line,) = out.stderr.splitlines()
        assert line.startswith("python -m bff: invalid setting: BFF_PRODUCT_URL: expected")
        assert line.endswith("(its port is not a number from 0 to 65535)")

    def test_every_bad_value_on_a_line_of_its_own(self) -> None:
        out = exited(env={"BFF_PRODUCT_URL": "http://h:x", "BFF_DEADLINE_MS": "abc"})
        assert out.returncode == 2
        assert [line.split(": ")[2] for line in out.stderr.splitlines()] == [
            "BFF_PRODUCT_URL",
            "BFF_DEADLINE_MS",
        ]


class TestPrintConfig:
    """What is in force and where each value came from, secrets redacted."""

    def test_says_where_each_value_came_from(self) -> None:
        env = {
            "BFF_DEADLINE_MS": "450",
            "BFF_REDIS_URL": f"redis://bff:{PASSWORD}@127.0.0.1:6379/0",
            "BFF_AUTH_JWT_JWKS_URL": f"https://idp.example/jwks?access_token={PASSWORD}&v=2",
        }
        out = exited("--print-config", "--port", "8181", env=env)
        assert out.returncode == 0, out.stderr
        variables = json.loads(out.stdout)["variables"]
        assert variables["BFF_DEADLINE_MS"] == {"value": 450.0, "from": "environment"}
        assert variables["BFF_PORT"] == {"value": 8181, "from": "command line"}
        assert variables["BFF_HOST"] == {"value": "127.0.0.1", "from": "default"}
        assert variables["BFF_REDIS_URL"]["value"] == "redis://bff:<redacted>@127.0.0.1:6379/0"
        assert variables["BFF_AUTH_JWT_JWKS_URL"]["value"] == (
            "https://idp.example/jwks?access_token=<redacted>&v=<redacted>"
        )
        assert PASSWORD not in out.stdout


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
    mocks_args = ["-m", "mock_services", "--latency-scale", "0", "--lab-port", "0"]
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
    [
        ("--port=99999", "argument --port: expected a port number (0 <= x <= 65535), got '99999'"),
        ("--workers=0", "argument --workers: expected a whole number (1 <= x <= 1024), got '0'"),
    ],
)
def test_an_invalid_flag_is_refused_with_the_settings_message(flag: str, message: str) -> None:
    out = exited(flag)
    assert out.returncode == 2
    assert message in out.stderr


def test_a_flag_is_checked_against_the_rules_with_the_environment() -> None:
    out = exited("--admin-port", "8080", env={"BFF_PORT": "8080"})
    assert out.returncode == 2
    assert out.stderr == (
        "python -m bff: invalid setting: BFF_ADMIN_PORT must differ from BFF_PORT (both 8080)\n"
    )


def test_an_unknown_variable_is_a_warning_naming_the_closest_setting() -> None:
    out = exited("--print-config", env={"BFF_DEADLINE_MSS": "300"})
    assert out.returncode == 0
    assert out.stderr == (
        "python -m bff: warning: "
        "BFF_DEADLINE_MSS is not a setting (did you mean BFF_DEADLINE_MS?)\n"
    )
    assert json.loads(out.stdout)["variables"]["BFF_DEADLINE_MS"]["value"] == 500.0
