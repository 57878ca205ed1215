"""`make cluster`: several BFF instances behind nginx, sharing one redis-server, on loopback.

    nginx :8000 ──┬── bff :8080 (admin :9090) ──┐
                  ├── bff :8180 (admin :9190) ──┼── mocks :8081 :8082 :8083
                  └── bff :8280 (admin :9290) ──┘
                         └──── redis-server :6380 (rate limits, cache) ────┘

The same topology as deploy/compose.yaml, with processes instead of containers: nginx runs in
the foreground with its prefix (config, pid, temp files) in a temporary directory and its error
log on stderr, and includes the very files Compose mounts (deploy/nginx/). Every process leads
its own session, so stopping one stops its workers too; Ctrl-C (or SIGTERM) stops them all,
nginx first (no new traffic), then the BFF instances (each drains), then the mocks and Redis.

Tests use `Cluster` with free ports (`Ports.free()`) and their own log sink.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

from bff.settings import SettingsError, read_variable
from deploy.topology import NGINX_DIR, Ports, nginx_conf

ROOT = NGINX_DIR.parents[1]
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 20.0  # the BFF's shutdown grace (10 s) plus its supervisor's margin (5 s)


class Cluster:
    """Starts the topology in order, each part once the one it needs is listening."""

    def __init__(self, ports: Ports, workdir: Path, sink: TextIO, env: dict[str, str]) -> None:
        self.ports = ports
        self.workdir = workdir
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self._forwarders: dict[str, threading.Thread] = {}
        self._sink = sink
        self._sink_lock = threading.Lock()
        # Settings of ours win; PROMETHEUS_MULTIPROC_DIR would make instances share files.
        self._env = {k: v for k, v in env.items() if k != "PROMETHEUS_MULTIPROC_DIR"}

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.ports.cluster}"

    def redis_url(self) -> str:
        return f"redis://127.0.0.1:{self.ports.redis}/0"

    def bff_env(self, index: int) -> dict[str, str]:
        p = self.ports
        return {
            **self._env,
            "BFF_HOST": "127.0.0.1",
            "BFF_PORT": str(p.bff[index]),
            "BFF_ADMIN_PORT": str(p.admin[index]),
            "BFF_WORKERS": self._env.get("BFF_WORKERS", "1"),
            "BFF_PRODUCT_URL": f"http://127.0.0.1:{p.mocks[0]}",
            "BFF_REVIEWS_URL": f"http://127.0.0.1:{p.mocks[1]}",
            "BFF_INVENTORY_URL": f"http://127.0.0.1:{p.mocks[2]}",
            "BFF_REDIS_URL": self.redis_url(),
            # nginx connects from loopback: its X-Forwarded-For names the client.
            "BFF_TRUSTED_PROXIES": "127.0.0.1/32",
        }

    def start(self) -> None:
        busy = [p for p in self.ports.all() if _listening(p)]
        if busy:
            raise ClusterError(f"ports already in use: {', '.join(map(str, busy))}")
        p = self.ports
        redis_dir = self.workdir / "redis"
        redis_dir.mkdir(exist_ok=True)
        redis = [_binary("redis-server"), "--bind", "127.0.0.1", "--port", str(p.redis)]
        # A scratch store: nothing in it outlives the cluster.
        self._spawn("redis", [*redis, "--save", "", "--appendonly", "no", "--dir", str(redis_dir)])
        mocks = [sys.executable, "-m", "mock_services", "--product-port", str(p.mocks[0])]
        ports = ["--reviews-port", str(p.mocks[1]), "--inventory-port", str(p.mocks[2])]
        ports += ["--lab-port", "0"]  # not 8089: `make run` may be serving its lab there
        self._spawn("mocks", [*mocks, *ports])
        self.wait_listening([p.redis, *p.mocks])
        for i in range(len(p.bff)):
            self.start_bff(i)
        self.wait_listening(list(p.bff))
        prefix = self.workdir / "nginx"
        prefix.mkdir(exist_ok=True)
        conf = prefix / "nginx.conf"
        conf.write_text(nginx_conf(p, prefix))
        self._spawn("nginx", [_binary("nginx"), "-p", str(prefix), "-c", str(conf), "-e", "stderr"])
        self.wait_listening([p.cluster])

    def start_bff(self, index: int) -> None:
        self._spawn(f"bff-{index + 1}", [sys.executable, "-m", "bff"], self.bff_env(index))

    def restart_bff(self, index: int) -> None:
        """Start instance `index` again once it has exited, and wait until it listens."""
        self.start_bff(index)
        self.wait_listening([self.ports.bff[index]], watch=[f"bff-{index + 1}"])

    def stop(self) -> None:
        """nginx first, then every BFF (they drain), then what they depend on."""
        order = ["nginx"] + [n for n in self.processes if n.startswith("bff-")] + ["mocks", "redis"]
        for group in (order[:1], order[1:-2], order[-2:]):
            for name in group:
                proc = self.processes.get(name)
                if proc is not None and proc.poll() is None:
                    # nginx: SIGQUIT is its graceful stop (finish the requests it holds).
                    proc.send_signal(signal.SIGQUIT if name == "nginx" else signal.SIGTERM)
            for name in group:
                self._reap(name)

    def signal(self, name: str, sig: int) -> None:
        self.processes[name].send_signal(sig)

    def _reap(self, name: str) -> None:
        proc = self.processes.get(name)
        if proc is None:
            return
        try:
            proc.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self._print(name, f"did not stop within {STOP_TIMEOUT_S:.0f} s: killed")
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # its workers too, if any outlived it
        proc.wait(timeout=5)
        self._forwarders[name].join(timeout=5)  # the last lines, up to the pipe's end
        if proc.stdout is not None:
            proc.stdout.close()

    def _spawn(self, name: str, cmd: list[str], env: dict[str, str] | None = None) -> None:
        if name in self.processes:
            self._reap(name)  # the earlier one, with its output pipe
        proc = subprocess.Popen(  # noqa: S603 - our own commands, no shell
            cmd,
            cwd=ROOT,
            env=env or self._env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # a terminal's Ctrl-C reaches us only; we stop the rest
        )
        self.processes[name] = proc
        forwarder = threading.Thread(target=self._forward, args=(name, proc), daemon=True)
        self._forwarders[name] = forwarder
        forwarder.start()

    def _forward(self, name: str, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stdout is not None
        for raw in proc.stdout:
            self._print(name, raw.decode(errors="replace").rstrip("\n"))

    def _print(self, name: str, line: str) -> None:
        with self._sink_lock:
            self._sink.write(f"{name:<6} | {line}\n")
            self._sink.flush()

    def wait_listening(self, ports: list[int], watch: list[str] | None = None) -> None:
        """Until every port accepts; one of the `watch`ed processes (all) exiting is an error."""
        deadline = time.monotonic() + START_TIMEOUT_S
        watched = {n: p for n, p in self.processes.items() if watch is None or n in watch}
        for port in ports:
            while not _listening(port):
                dead = [n for n, p in watched.items() if p.poll() is not None]
                if dead:
                    raise ClusterError(f"{', '.join(dead)} exited during start-up")
                if time.monotonic() > deadline:
                    raise ClusterError(f"nothing listens on port {port} after start-up")
                time.sleep(0.05)


class ClusterError(Exception):
    pass


def _listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _binary(name: str) -> str:
    # Debian puts nginx in /usr/sbin, which a non-root PATH often lacks.
    found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")
    if found is None:
        raise ClusterError(f"{name} is not installed (make cluster installs it with apt-get)")
    return found


@contextlib.contextmanager
def running(ports: Ports, sink: TextIO, env: dict[str, str] | None = None) -> Iterator[Cluster]:
    """A started cluster in a temporary directory, always stopped and removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="bff-cluster-") as tmp:
        cluster = Cluster(ports, Path(tmp), sink, dict(os.environ if env is None else env))
        try:
            cluster.start()
            yield cluster
        finally:
            cluster.stop()


def main(argv: list[str] | None = None) -> int:
    argparse.ArgumentParser(
        prog="python -m deploy.cluster",
        description="Three BFF instances behind nginx sharing one redis-server, plus the mock "
        "services, on loopback (what `make cluster` runs). nginx listens on BFF_CLUSTER_PORT "
        "(default 8000); every other BFF_* variable reaches the instances. Ctrl-C stops all.",
    ).parse_args(argv)
    try:
        # The shape of a port, checked by BFF_PORT's own declaration.
        cluster_port: int = read_variable("BFF_PORT", os.environ.get("BFF_CLUSTER_PORT", "8000"))
        if cluster_port == 0:
            raise SettingsError("BFF_PORT: must be a port number 1-65535")
    except SettingsError as exc:
        print(f"make cluster: BFF_CLUSTER_PORT: {str(exc).partition(': ')[2]}", file=sys.stderr)
        return 2
    ports = Ports(cluster=cluster_port)
    env = dict(os.environ)
    if sys.stdout.isatty():  # a person reads this terminal: the BFF's readable log lines
        env.setdefault("BFF_LOG_FORMAT", "console")
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        with running(ports, sys.stdout, env) as cluster:
            print(
                f"cluster listening on {cluster.url} "
                f"(bff {', '.join(map(str, ports.bff))}; admin {', '.join(map(str, ports.admin))}; "
                f"redis {ports.redis}); Ctrl-C stops it",
                flush=True,
            )
            return _watch(cluster, stop)
    except ClusterError as exc:
        print(f"make cluster: {exc}", file=sys.stderr)
        return 2


def _watch(cluster: Cluster, stop: threading.Event) -> int:
    """Until Ctrl-C. An instance that dies is reported and the others keep serving (killing
    one is how to watch a failover); without nginx there is no cluster left to serve."""
    gone: set[str] = set()
    while not stop.wait(0.5):
        for name, proc in cluster.processes.items():
            if proc.poll() is not None and name not in gone:
                gone.add(name)
                print(f"{name} exited with status {proc.returncode}", file=sys.stderr, flush=True)
        if "nginx" in gone:
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
