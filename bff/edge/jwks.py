"""Signing keys from the identity provider's JWKS URL, never fetched on a request's path.

PyJWT's `PyJWKClient` does the fetching and parsing, but it is synchronous (urllib) and, used
as documented (`get_signing_key` per token), fetches on the caller's thread whenever its
cache expires or a `kid` is unknown: on the event loop, that would stall every request of
the worker for the length of an HTTP call. So this class keeps the parsed keys itself and
asks the client for the set only in a thread:

- once at start (a failure is logged; tokens get 401 until a fetch succeeds);
- every `REFRESH_S` in the background (keys the provider has retired stop working);
- when a token names a `kid` we do not have (rotation), at most once per `COOLDOWN_S`
  (counted between such refreshes only, so a rotation right after start is seen at once):
  concurrent requests wait for the same fetch, and a flood of made-up `kid`s costs one
  fetch per cooldown, not one per request.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar

import jwt
from jwt import PyJWKClient

from bff.lifecycle import in_background
from bff.observability.logging import log

REFRESH_S = 300.0
COOLDOWN_S = 30.0
FETCH_TIMEOUT_S = 5.0


class JwksKeys:
    __slots__ = ("_algorithm", "_client", "_fetch", "_keys", "_last_kid_refresh", "_url")

    def __init__(self, url: str, algorithm: str) -> None:
        self._url = url
        self._algorithm = algorithm
        self._client = PyJWKClient(url, cache_jwk_set=False, timeout=FETCH_TIMEOUT_S)
        self._keys: dict[str | None, Any] = {}
        self._last_kid_refresh = float("-inf")
        self._fetch: asyncio.Task[None] | None = None

    async def key_for(self, kid: str | None) -> Any:
        """The verification key of `kid`, or None when the provider has no such key."""
        key = self._keys.get(kid)
        if key is None and time.monotonic() - self._last_kid_refresh >= COOLDOWN_S:
            self._last_kid_refresh = time.monotonic()
            await self.refresh()
            key = self._keys.get(kid)
        return key

    async def refresh(self) -> None:
        """Fetch the set once; callers arriving meanwhile share that fetch."""
        if self._fetch is None or self._fetch.done():
            self._fetch = asyncio.create_task(self._fetch_once())
        await asyncio.shield(self._fetch)

    async def _fetch_once(self) -> None:
        try:
            jwk_set = await _in_daemon_thread(self._client.get_jwk_set, True)
        except Exception as exc:  # PyJWKClientError, a bad set: keep the keys we have
            log.warning("jwks_fetch_failed", url=self._url, error=str(exc))
            return
        keys: dict[str | None, Any] = {}
        for jwk in jwk_set.keys:
            if jwk.public_key_use not in (None, "sig"):
                continue
            if jwk.algorithm_name != self._algorithm or _too_weak(jwk.key):
                continue
            keys[jwk.key_id] = jwk.key
        if len(keys) == 1:
            # A token without `kid` is accepted only when the set leaves no doubt.
            keys[None] = next(iter(keys.values()))
        self._keys = keys
        log.info("jwks_fetched", url=self._url, keys=len([k for k in keys if k is not None]))

    async def running(self) -> AsyncIterator[None]:
        """cleanup_ctx: the first fetch at start, then a refresh every `REFRESH_S`."""
        await self.refresh()
        async with in_background(self._refresh_forever(), "jwks-refresh"):
            yield

    async def _refresh_forever(self) -> None:
        while True:
            await asyncio.sleep(REFRESH_S)
            await self.refresh()


T = TypeVar("T")


async def _in_daemon_thread(fn: Callable[..., T], *args: Any) -> T:
    """`fn(*args)` in a daemon thread of its own, not the loop's executor: a fetch hanging on a
    slow provider (up to FETCH_TIMEOUT_S) must not hold up a worker that is told to stop
    (asyncio.run waits for the executor's threads; nobody waits for a daemon thread)."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[T] = loop.create_future()

    def deliver(result: T | None, exc: BaseException | None) -> None:
        if done.done():
            return
        if exc is not None:
            done.set_exception(exc)
        else:
            done.set_result(result)  # type: ignore[arg-type]

    def run() -> None:
        try:
            result, exc = fn(*args), None
        except BaseException as error:  # handed to the awaiting coroutine
            result, exc = None, error
        with contextlib.suppress(RuntimeError):  # the loop is gone: nobody waits any more
            loop.call_soon_threadsafe(deliver, result, exc)

    threading.Thread(target=run, name="jwks-fetch", daemon=True).start()
    return await done


def kid_of(token: str) -> str | None:
    """The `kid` of a token's header (unverified: it only selects a key); raises
    `jwt.InvalidTokenError` for a header that is not one."""
    kid = jwt.get_unverified_header(token).get("kid")
    if kid is not None and not isinstance(kid, str):
        raise jwt.InvalidTokenError("kid is not a string")
    return kid


def _too_weak(key: Any) -> bool:
    """RSA under 2048 bits is refused, as for a configured PEM key."""
    size = getattr(key, "key_size", None)
    return isinstance(size, int) and getattr(key, "curve", None) is None and size < 2048
