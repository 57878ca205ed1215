"""Instances found by name, the way Envoy's strict DNS clusters find them.

A downstream URL whose host is a name (not an address) stands for every address the name
resolves to: a Kubernetes headless Service answers with one address per ready pod, and each
becomes an instance of the pool, balanced and ejected on its own. The names are resolved again
every BFF_DNS_REFRESH_S (default 10 s):

- an address that is gone leaves the pool (its calls in flight finish: `replace_instances`);
  a new one joins; one still there keeps its state (ejection, in-flight count);
- a resolution that fails or comes back empty keeps the last good set: a DNS hiccup must not
  empty a pool that was serving;
- before the first good answer the URL stays as configured (aiohttp resolves it per
  connection), so a name that does not resolve at start-up is no worse than without discovery;
- IPv4 addresses are preferred when a name has both (Envoy's V4_PREFERRED): `localhost` is
  one instance, not a live 127.0.0.1 and a ::1 nothing listens on.

Calls to a discovered address carry `Host: <name>` (`Instance.host_header`), as a client that
resolved the name itself would send. URLs given as addresses are never resolved. The resolver
is aiohttp's `AbstractResolver` (its default, a thread pool over getaddrinfo), injected so
that tests answer for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import random
import socket
from collections.abc import AsyncIterator, Sequence

import aiohttp
from aiohttp.abc import AbstractResolver
from yarl import URL

from bff.observability.logging import log
from bff.resilience.pool import Instance, InstancePool

# A resolver that hangs must not stall the refresh loop past the next round.
_RESOLVE_TIMEOUT_S = 5.0
# Spread the refreshes of many workers and services instead of resolving all at once.
_JITTER = 0.1


def is_address(host: str | None) -> bool:
    try:
        ipaddress.ip_address(host or "")
    except ValueError:
        return False
    return True


@contextlib.asynccontextmanager
async def discovering(
    services: Sequence[tuple[str, Sequence[URL], InstancePool]],
    refresh_s: float,
    resolver: AbstractResolver | None = None,
) -> AsyncIterator[tuple[ServiceDiscovery, ...]]:
    """Discovery for each (name, urls, pool) while the block runs: one first resolution before
    it starts (so the first requests are already balanced), then a refresh every `refresh_s`.
    Without a `resolver`, aiohttp's default one is made here and closed afterwards."""
    own = resolver is None
    active = resolver if resolver is not None else aiohttp.DefaultResolver()
    found = tuple(ServiceDiscovery(n, urls, pool, active, refresh_s) for n, urls, pool in services)
    try:
        for discovery in found:
            if discovery.enabled:
                await discovery.refresh()
                discovery.start()
        yield found
    finally:
        for discovery in found:
            await discovery.stop()
        if own:
            await active.close()


class ServiceDiscovery:
    """Keeps one service's pool in step with what its URLs' names resolve to."""

    def __init__(
        self,
        service: str,
        urls: Sequence[URL],
        pool: InstancePool,
        resolver: AbstractResolver,
        refresh_s: float,
    ) -> None:
        self.service = service
        self._urls = tuple(urls)
        self._pool = pool
        self._resolver = resolver
        self._refresh_s = refresh_s
        # Last good instances per configured URL: the URL itself until a name resolves.
        self._known: dict[URL, tuple[Instance, ...]] = {u: (Instance(u),) for u in self._urls}
        self._task: asyncio.Task[None] | None = None

    @property
    def enabled(self) -> bool:
        """Only URLs given by name have anything to discover."""
        return self._refresh_s > 0 and any(not is_address(u.host) for u in self._urls)

    async def refresh(self) -> None:
        """Resolve every name once and hand the pool the resulting set if it changed."""
        for url in self._urls:
            if is_address(url.host):
                continue
            found = await self._resolve(url)
            if found:
                self._known[url] = found
        # Two names for one address are one instance (the first name wins the Host header).
        unique: dict[URL, Instance] = {}
        for instance in (i for url in self._urls for i in self._known[url]):
            unique.setdefault(instance.base_url, instance)
        fresh = list(unique.values())
        before = {i.key for i in self._pool.instances}
        after = {i.key for i in fresh}
        if before == after:
            return
        self._pool.replace_instances(fresh)
        log.info(
            "instances_changed",
            service=self.service,
            joined=sorted(str(url) for url, _ in after - before),
            left=sorted(str(url) for url, _ in before - after),
            instances=len(after),
        )

    async def _resolve(self, url: URL) -> tuple[Instance, ...]:
        host, port = url.host or "", url.port or 80
        try:
            async with asyncio.timeout(_RESOLVE_TIMEOUT_S):
                answers = await self._resolver.resolve(host, port, family=socket.AF_UNSPEC)
        except Exception as exc:  # resolvers raise OSError, TimeoutError, their own errors...
            log.warning(
                "dns_refresh_failed", service=self.service, host=host, error=repr(exc)[:200]
            )
            return ()
        v4 = [a["host"] for a in answers if a["family"] == socket.AF_INET]
        addresses = v4 or [a["host"] for a in answers if a["family"] == socket.AF_INET6]
        if not addresses:
            log.warning("dns_refresh_empty", service=self.service, host=host)
        return tuple(Instance(url.with_host(a), host) for a in sorted(set(addresses)))

    def start(self) -> None:
        """Re-resolve every `refresh_s` in the background until `stop()`."""
        if self.enabled and self._task is None:
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name=f"discovery-{self.service}"
            )

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._refresh_s * random.uniform(1 - _JITTER, 1 + _JITTER))
            try:
                await self.refresh()
            except Exception as exc:  # never let one bad round end discovery for good
                log.error("dns_refresh_error", service=self.service, error=repr(exc)[:200])
