"""Instances of one service: power-of-two-choices balancing and passive outlier ejection.

- `pick(avoid)` draws two healthy instances at random and takes the one with fewer calls in
  flight; a retry passes the instance it just tried as `avoid`, so it goes elsewhere when it can.
- An instance with `consecutive_failures` failures in a row is ejected for
  `base * 2**(ejections-1)` seconds (capped); when the time is up it takes traffic again, and
  its next answer decides whether the count starts over. The last healthy instance is never
  ejected: a degraded service is better served than none.
- `replace_instances` swaps in a new set (service discovery): known instances keep their
  state, vanished ones only finish the calls they have.
"""

from __future__ import annotations

import random
import time
from collections.abc import Sequence

from yarl import URL

from bff.settings import OutlierSettings


class Instance:
    __slots__ = (
        "base_url",
        "consecutive_failures",
        "ejected_until",
        "ejections",
        "host",
        "in_flight",
    )

    def __init__(self, base_url: URL, host: str | None = None) -> None:
        self.base_url = base_url
        # The name this address was found under (bff.resilience.discovery), None when the URL
        # was configured as is: calls to it say `Host: <name>` (and use it for TLS), as a
        # client that resolved the name itself would.
        self.host = host
        self.in_flight = 0
        self.consecutive_failures = 0
        self.ejections = 0
        self.ejected_until = 0.0

    @property
    def key(self) -> tuple[URL, str | None]:
        return (self.base_url, self.host)

    @property
    def host_header(self) -> str | None:
        """`Host` for calls to a discovered address: the name, with the port when explicit."""
        if self.host is None:
            return None
        port = self.base_url.explicit_port
        return self.host if port is None else f"{self.host}:{port}"

    def __repr__(self) -> str:
        return f"Instance({self.base_url}, in_flight={self.in_flight})"


class InstancePool:
    __slots__ = ("_settings", "ejections", "instances")

    def __init__(self, urls: tuple[URL, ...], settings: OutlierSettings) -> None:
        if not urls:
            raise ValueError("a service needs at least one instance")
        self.instances = tuple(Instance(u) for u in urls)
        self._settings = settings
        self.ejections = 0  # instances ejected since start (bff_outlier_ejections_total)

    def pick(self, avoid: Instance | None = None) -> Instance:
        instances = self.instances
        if len(instances) == 1:
            return instances[0]
        now = time.monotonic()
        healthy = [i for i in instances if i.ejected_until <= now and i is not avoid]
        if not healthy:
            healthy = [i for i in instances if i.ejected_until <= now] or list(instances)
        if len(healthy) == 1:
            return healthy[0]
        a, b = random.sample(healthy, 2)
        return a if a.in_flight <= b.in_flight else b

    def record_success(self, instance: Instance) -> None:
        instance.consecutive_failures = 0

    def record_failure(self, instance: Instance) -> None:
        instance.consecutive_failures += 1
        if instance.consecutive_failures < self._settings.consecutive_failures:
            return
        now = time.monotonic()
        others_healthy = any(i is not instance and i.ejected_until <= now for i in self.instances)
        if not others_healthy:
            return
        # Ejections grow only while they repeat: a long healthy spell starts the count over.
        if instance.ejections and now - instance.ejected_until > self._settings.max_ejection_s:
            instance.ejections = 0
        instance.ejections += 1
        backoff = self._settings.base_ejection_s * 2 ** (instance.ejections - 1)
        instance.ejected_until = now + min(backoff, self._settings.max_ejection_s)
        instance.consecutive_failures = 0
        self.ejections += 1

    def replace_instances(self, fresh: Sequence[Instance]) -> None:
        """Take `fresh` as the instances from now on (service discovery found a new set).

        An instance already here (same URL and name) is kept, with its ejection state and
        in-flight count; one that is gone gets no new calls, and the calls it has in flight
        finish on their own (it is drained, not cut off).
        """
        if not fresh:
            raise ValueError("a service needs at least one instance")
        current = {i.key: i for i in self.instances}
        self.instances = tuple(current.get(i.key, i) for i in fresh)

    def is_ejected(self, instance: Instance) -> bool:
        return instance.ejected_until > time.monotonic()
