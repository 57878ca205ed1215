"""A start that cannot hurt a running service, as operators run it (`python -m ...`).

- An address in use (public or admin port, 1 or N workers; the mocks too) is refused with
  exit status 2 and one line naming it, and the running instance keeps all its traffic:
  a second `python -m bff` never joins the first one's SO_REUSEPORT group.
- A bad host: the same, one line, no traceback.
- SIGTERM or SIGINT at any moment of start-up (while Python imports, while workers spawn,
  while a worker waits for its JWKS): every worker stopped, exit 0 within the grace period.
- `--print-config` prints the effective configuration with secrets redacted; the same is
  logged once at start.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from bff_support import stand_in
from process_support import (
    ROOT,
    Lines,
    Process,
    announced_mocks,
    clean_env,
    group_alive,
    group_gone,
    run_to_exit,
    running,
    stop,
    url_in,
)
from pytest_aiohttp import AiohttpServer

from bff.listeners import Address, reserve

pytestmark = pytest.mark.slow

STEP_S = 30.0  # bound on every wait; a refusal takes about a second
GRACE_S = 5.0
SECRET = "a-very-secret-hs256-key-0123456789abcdef"
REDIS_PASSWORD = "hunter2-redis-password"


def assert_one_line_refusal(out: subprocess.CompletedProcess[str], address: str) -> None:
    assert out.returncode == 2, (out.stdout, out.stderr)
    assert "Traceback" not in out.stderr
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, out.stderr
    assert address in lines[0]
    assert "listening on" not in out.stdout


@contextmanager
def occupied() -> Iterator[int]:
    """A port some other program listens on (no SO_REUSEPORT)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


@contextmanager
def left_in_time_wait() -> Iterator[int]:
    """A port another server just left: it listened (with SO_REUSEADDR, as nginx, Go's
    net/http, uvicorn and aiohttp do), accepted 5 connections and closed each first, then
    closed. Its side of each connection stays in TIME_WAIT for 60 s. (A server without
    SO_REUSEADDR leaves TIME_WAITs that no one can bind past on Linux, with or without it.)"""
    with socket.socket() as server:
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = int(server.getsockname()[1])
        clients = []
        for _ in range(5):
            clients.append(socket.create_connection(("127.0.0.1", port)))
            accepted, _ = server.accept()
            accepted.close()  # the server closes first: the TIME_WAIT is on its side
    for client in clients:
        client.close()
    deadline = time.monotonic() + STEP_S
    while time_waits(port) < 5:  # the clients' FINs are on their way
        assert time.monotonic() < deadline, f"no TIME_WAIT on port {port}"
        time.sleep(0.01)
    yield port


def time_waits(port: int) -> int:
    """Sockets in TIME_WAIT on local port `port` (/proc/net/tcp; state 06)."""
    rows = Path("/proc/net/tcp").read_text().splitlines()[1:]
    return sum(
        1
        for row in rows
        if int(row.split()[1].split(":")[1], 16) == port and row.split()[3] == "06"
    )


@pytest.fixture
async def first_bff() -> AsyncIterator[tuple[str, str]]:
    """A running BFF with 2 workers (a SO_REUSEPORT group): its (public, admin) URLs."""
    env = {"BFF_PRODUCT_URL": "http://127.0.0.1:9", "BFF_WORKERS": "2"}
    async with running(["-m", "bff", "--port", "0"], env) as (_proc, lines):
        admin = url_in(await lines.next_matching("bff admin on"))
        public = url_in(await lines.next_matching("bff listening on"))
        yield public, admin


def port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


async def openapi_statuses(url: str, count: int) -> list[int]:
    """`count` requests, each on a new connection (SO_REUSEPORT spreads connections)."""
    connector = aiohttp.TCPConnector(force_close=True)
    async with aiohttp.ClientSession(connector=connector) as session:
        out = []
        for _ in range(count):
            async with session.get(f"{url}/openapi.json") as resp:
                out.append(resp.status)
        return out


class TestAddressInUse:
    @pytest.mark.parametrize("workers", ["1", "2"])
    @pytest.mark.parametrize("which", ["public", "admin"])
    async def test_a_running_bff_is_not_joined(
        self, first_bff: tuple[str, str], workers: str, which: str
    ) -> None:
        public, admin = first_bff
        busy = port_of(public if which == "public" else admin)
        flag = "--port" if which == "public" else "--admin-port"
        # The other port free (0): the refusal must name the busy one.
        args = ["-m", "bff", "--workers", workers, "--port", "0", flag, str(busy)]
        out = await asyncio.to_thread(run_to_exit, args)
        assert_one_line_refusal(out, f"127.0.0.1:{busy}")
        assert "address already in use" in out.stderr
        # The first instance still answers every connection: nobody joined its group.
        assert await openapi_statuses(public, 20) == [200] * 20

    @pytest.mark.parametrize("workers", ["1", "2"])
    @pytest.mark.parametrize("flag", ["--port", "--admin-port"])
    def test_a_port_another_program_holds(self, workers: str, flag: str) -> None:
        with occupied() as port:
            out = run_to_exit(["-m", "bff", "--workers", workers, "--port", "0", flag, str(port)])
        assert_one_line_refusal(out, f"127.0.0.1:{port}")

    def test_the_mocks_refuse_too(self) -> None:
        with occupied() as port:
            out = run_to_exit(
                [
                    "-m",
                    "mock_services",
                    "--product-port=0",
                    f"--reviews-port={port}",
                    "--inventory-port=0",
                    "--lab-port=0",
                ]
            )
        assert out.returncode == 2, out.stderr
        assert "Traceback" not in out.stderr
        assert f"cannot listen on 127.0.0.1:{port}: address already in use" in out.stderr
        assert "http://" not in out.stdout, "nothing is announced when one service can't start"

    def test_a_start_under_way_is_not_joined(self) -> None:
        """Another supervisor holds the address (reserved, its workers not listening yet):
        a second deployment is refused, whoever of the two was first to bind."""
        reservation = reserve(Address("127.0.0.1", 0))
        try:
            out = run_to_exit(["-m", "bff", "--workers", "2", "--port", str(reservation.port)])
        finally:
            reservation.close()
        assert_one_line_refusal(out, f"127.0.0.1:{reservation.port}")
        assert "address already in use" in out.stderr

    @pytest.mark.parametrize("workers", ["1", "2"])
    def test_a_bad_host(self, workers: str) -> None:
        args = ["-m", "bff", "--workers", workers, "--port", "0", "--host", "no-such-host.invalid"]
        out = run_to_exit(args)
        assert_one_line_refusal(out, "no-such-host.invalid")


BFF_ARGS = ["-m", "bff", "--port=0"]
START_ENV = {"BFF_SHUTDOWN_GRACE_S": str(GRACE_S), "BFF_DRAIN_DELAY_S": "1"}


class TestTimeWait:
    """A port whose last server closed its connections first is free: its TIME_WAIT sockets
    are no listener, and a start there must not be refused (it used to be, exit 2, for 60 s)."""

    @pytest.mark.parametrize("workers", ["1", "2"])
    @pytest.mark.parametrize("flag", ["--port", "--admin-port"])
    async def test_the_bff_starts(self, workers: str, flag: str) -> None:
        with left_in_time_wait() as port:
            other = "--admin-port" if flag == "--port" else "--port"
            args = ["-m", "bff", "--workers", workers, flag, str(port), other, "0"]
            async with running(args) as (_, lines):
                admin = url_in(await lines.next_matching("bff admin on"))
                public = url_in(await lines.next_matching("bff listening on"))
                assert port_of(public if flag == "--port" else admin) == port
                assert await openapi_statuses(public, 4) == [200] * 4

    async def test_the_mocks_start(self) -> None:
        with left_in_time_wait() as port:
            args = ["-m", "mock_services", "--product-port=0", f"--reviews-port={port}"]
            async with running([*args, "--inventory-port=0", "--lab-port=0"]) as (_, lines):
                urls = await announced_mocks(lines)
        assert port_of(urls["reviews"]) == port


async def stopped_cleanly(proc: Process, lines: Lines, sig: int) -> tuple[int, str]:
    """Send `sig`; return (exit code, output) once the process has exited, asserting that it
    did so within the grace period and left no worker behind."""
    sent = time.monotonic()
    code = await stop(proc, sig, within_s=GRACE_S + 5)
    took = time.monotonic() - sent
    assert took < GRACE_S, f"took {took:.1f} s"
    # Workers exit just before their supervisor: allow for the reaping.
    assert await group_gone(proc.pid, 5.0), "a worker outlived the supervisor"
    lines.rest()
    return code, "\n".join(lines.seen)


@pytest.fixture
async def slow_jwks(aiohttp_server: AiohttpServer) -> AsyncIterator[tuple[str, asyncio.Event]]:
    """A JWKS endpoint that holds every fetch until released: a worker's start waits on it."""
    arrived = asyncio.Event()
    release = asyncio.Event()

    async def handle(_request: web.Request) -> web.Response:
        arrived.set()
        await release.wait()
        return web.json_response({"keys": []})

    server = await stand_in(aiohttp_server, handle, "/jwks")
    yield str(server.make_url("/jwks")), arrived
    release.set()


def _caught_mask(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        caught = next(line for line in status if line.startswith("SigCgt:"))
    return int(caught.split()[1], 16)


async def catching_sigterm(pid: int) -> None:
    """Until process `pid` has a SIGTERM handler (Linux: the SigCgt mask in /proc): our code
    has started. (SIGINT is caught by the interpreter itself from its first moment, so it
    tells nothing.)"""
    for _ in range(int(STEP_S / 0.005)):
        if _caught_mask(pid) & (1 << (signal.SIGTERM - 1)):
            return
        await asyncio.sleep(0.005)
    raise AssertionError("the process never caught the signal")


class TestSignalsDuringStartUp:
    """From the first line of `bff/__main__.py` on. (Before it, while the interpreter itself
    boots, about 20 ms, nothing of ours runs and the default action ends the process.)"""

    @pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
    @pytest.mark.parametrize("workers", ["1", "2"])
    @pytest.mark.parametrize("after_s", [0.0, 0.3, 1.0])
    async def test_stops_with_exit_0(self, sig: int, workers: str, after_s: float) -> None:
        """As soon as it catches signals (still importing aiohttp & co), then while workers
        spawn and start (0.3 s, 1 s later)."""
        async with running(BFF_ARGS, {**START_ENV, "BFF_WORKERS": workers}) as (proc, lines):
            await catching_sigterm(proc.pid)
            await asyncio.sleep(after_s)
            code, output = await stopped_cleanly(proc, lines, sig)
        assert code == 0, output
        assert "Traceback" not in output

    @pytest.mark.parametrize("workers", ["1", "2"])
    async def test_stops_while_a_worker_waits_for_its_jwks(
        self, slow_jwks: tuple[str, asyncio.Event], workers: str
    ) -> None:
        url, arrived = slow_jwks
        env = {**START_ENV, "BFF_WORKERS": workers, "BFF_AUTH_JWT_JWKS_URL": url}
        async with running(BFF_ARGS, env) as (proc, lines):
            await asyncio.wait_for(arrived.wait(), STEP_S)  # a worker is inside its start-up
            code, output = await stopped_cleanly(proc, lines, signal.SIGTERM)
        assert code == 0, output
        assert "listening on" not in output
        assert "Traceback" not in output


CONFIG_ENV = {
    "BFF_AUTH_JWT_SECRET": SECRET,
    "BFF_REDIS_URL": f"redis://bff:{REDIS_PASSWORD}@127.0.0.1:6379/0",
    "BFF_DEADLINE_MS": "450",
}


class TestConfiguration:
    def test_print_config_shows_the_effective_values_without_secrets(self) -> None:
        out = run_to_exit(["-m", "bff", "--print-config", "--admin-port", "9191"], CONFIG_ENV)
        assert out.returncode == 0, out.stderr
        config = json.loads(out.stdout)["variables"]
        assert config["BFF_DEADLINE_MS"] == {"value": 450.0, "from": "environment"}
        assert config["BFF_ADMIN_PORT"] == {"value": 9191, "from": "command line"}
        assert config["BFF_AUTH_JWT_ALGORITHM"]["value"] == "HS256"
        assert config["BFF_AUTH_JWT_SECRET"]["value"] == "<redacted>"
        assert config["BFF_REDIS_URL"]["value"] == "redis://bff:<redacted>@127.0.0.1:6379/0"
        assert SECRET not in out.stdout
        assert REDIS_PASSWORD not in out.stdout

    async def test_logged_once_at_start_without_secrets(self) -> None:
        env = {**CONFIG_ENV, "BFF_WORKERS": "2", "BFF_LOG_FORMAT": "json"}
        async with running(["-m", "bff", "--port", "0"], env) as (_proc, lines):
            await lines.next_matching("bff listening on")
            await asyncio.sleep(0.5)  # any late line from a worker
            seen = list(lines.seen)
        config_lines = [line for line in seen if '"event":"config"' in line]
        assert len(config_lines) == 1, "once, by the supervisor, not once per worker"
        assert json.loads(config_lines[0])["variables"]["BFF_DEADLINE_MS"]["value"] == 450.0
        assert all(SECRET not in line and REDIS_PASSWORD not in line for line in seen)


class TestOrphans:
    async def test_workers_stop_when_their_supervisor_is_killed(self) -> None:
        """SIGKILL to the supervisor, whose output reader is gone too (a killed `make run`,
        a timed-out test): its workers notice, stop, and free the port."""
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            *BFF_ARGS,
            cwd=ROOT,
            env=clean_env({**START_ENV, "BFF_WORKERS": "2"}),
            stdin=asyncio.subprocess.DEVNULL,
            # A pipe, not the launcher's file: the reader going away is the case under test.
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,
        )
        assert proc.stdout is not None
        try:
            for _ in range(200):
                line = await asyncio.wait_for(proc.stdout.readline(), STEP_S)
                assert line, "exited before listening"
                if line.startswith(b"bff listening on"):
                    break
            port = port_of(line.split()[3].decode())
            proc._transport.close()  # type: ignore[attr-defined]  # our end of its pipes
            proc.kill()  # the supervisor only; the workers are its children
            assert await group_gone(proc.pid, STEP_S), "orphaned workers kept running"
            with socket.socket() as sock:
                assert sock.connect_ex(("127.0.0.1", port)) != 0, "the port is still served"
        finally:
            if group_alive(proc.pid):
                os.killpg(proc.pid, signal.SIGKILL)
