"""The loopback cluster's addresses, and the nginx.conf that puts nginx in front of them.

nginx's proxy behaviour is not written here: the generated file includes deploy/nginx/'s
`proxy.conf` and `upstream-keepalive.conf`, the same files Compose mounts.
"""

from __future__ import annotations

import contextlib
import dataclasses
import socket
from pathlib import Path

NGINX_DIR = Path(__file__).resolve().parent / "nginx"
# Not 6379: a redis-server installed as a system service may already hold it.
DEFAULT_REDIS_PORT = 6380


@dataclasses.dataclass(frozen=True, slots=True)
class Ports:
    cluster: int = 8000
    bff: tuple[int, ...] = (8080, 8180, 8280)
    admin: tuple[int, ...] = (9090, 9190, 9290)
    mocks: tuple[int, int, int] = (8081, 8082, 8083)
    redis: int = DEFAULT_REDIS_PORT

    @classmethod
    def free(cls, replicas: int = 3) -> Ports:
        """Ports the kernel says are free now (for tests; another process may take one)."""
        got = _free_ports(2 * replicas + 5)
        return cls(
            cluster=got[0],
            bff=tuple(got[1 : 1 + replicas]),
            admin=tuple(got[1 + replicas : 1 + 2 * replicas]),
            mocks=(got[-4], got[-3], got[-2]),
            redis=got[-1],
        )

    def all(self) -> list[int]:
        return [self.cluster, *self.bff, *self.admin, *self.mocks, self.redis]


def _free_ports(n: int) -> list[int]:
    with contextlib.ExitStack() as stack:
        socks = [stack.enter_context(socket.socket()) for _ in range(n)]
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]


def nginx_conf(ports: Ports, prefix: Path) -> str:
    """The main nginx.conf of the loopback cluster; proxy behaviour comes from deploy/nginx/."""
    servers = "\n".join(
        f"        server 127.0.0.1:{p} max_fails=3 fail_timeout=5s;" for p in ports.bff
    )
    temp = "\n".join(
        f"    {kind}_temp_path {prefix / (kind + '_temp')};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    return f"""daemon off;
worker_processes 2;
pid {prefix / "nginx.pid"};
error_log stderr warn;

events {{
    worker_connections 1024;
}}

http {{
    access_log off;
    server_tokens off;
{temp}

    upstream bff {{
{servers}
        include {NGINX_DIR / "upstream-keepalive.conf"};
    }}

    server {{
        listen 127.0.0.1:{ports.cluster};
        include {NGINX_DIR / "proxy.conf"};
    }}
}}
"""
