"""Foreign exceptions become `DownstreamError`s here, and only here (httpx's `map_exceptions`).

    with map_exceptions("reviews"):
        ... send, read, decode ...

    TimeoutError                              -> DownstreamTimeout    no answer in time
    aiohttp.ClientPayloadError                -> DownstreamUnavailable the body broke off
                                                                        (truncated, wrong length,
                                                                        broken encoding)
    aiohttp.ClientResponseError               -> BadResponse          an answer that is not HTTP
                                                                        (64 KB of headers, ...)
    aiohttp.ClientError, OSError              -> DownstreamUnavailable refused, reset, closed
    msgspec.DecodeError, ValueError (so also  -> BadResponse          a body we cannot use
    UnicodeDecodeError), RecursionError,
    OverflowError, TypeError, LookupError

`BadResponse` is about one answer (one id), the others are about the service: the classifier
decides what the breaker hears from that difference. Anything else is a bug of ours, not a
downstream's: it propagates, the fan-out logs it with its traceback and answers for the part.
`retry_after()` parses the header without ever raising.
"""

from __future__ import annotations

import email.utils
import math
import time
from collections.abc import Iterator
from contextlib import contextmanager

import aiohttp
import msgspec

from bff.errors import BadResponse, DownstreamError, DownstreamTimeout, DownstreamUnavailable

# Errors of decoding a body: msgspec's own, `bytes.decode` (UnicodeDecodeError is a
# ValueError), Python's recursion limit on deep nesting, int/float conversions.
_DECODE_ERRORS = (
    msgspec.DecodeError,
    ValueError,
    RecursionError,
    OverflowError,
    TypeError,
    LookupError,
)
# Longer than any deadline: a `Retry-After` beyond it just means "no retry this time".
_RETRY_AFTER_CAP_S = 3600.0


@contextmanager
def map_exceptions(service: str, timeout_detail: str = "no answer in time") -> Iterator[None]:
    try:
        yield
    except DownstreamError:
        raise
    except TimeoutError:
        raise DownstreamTimeout(service, timeout_detail) from None
    except aiohttp.ClientPayloadError as exc:
        raise DownstreamUnavailable(service, describe(exc)) from None
    except aiohttp.ClientResponseError as exc:
        raise BadResponse(service, describe(exc)) from None
    except (aiohttp.ClientError, OSError) as exc:
        raise DownstreamUnavailable(service, describe(exc)) from None
    except _DECODE_ERRORS as exc:
        raise BadResponse(service, describe(exc)) from None


def retry_after(value: str | None) -> float | None:
    """Seconds a server asked us to wait (delta-seconds or an HTTP date), or None.

    Never raises: "²" (`isdigit()` accepts it, `int()` does not), "-1", "1e9", dates in year
    9999 and garbage are all either None or a finite number in [0, one hour].
    """
    if not value:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        return min(float(int(value[:8])), _RETRY_AFTER_CAP_S)
    try:
        when = email.utils.parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError, OverflowError, IndexError, OSError):
        return None
    if not math.isfinite(when):
        return None
    return min(max(0.0, when - time.time()), _RETRY_AFTER_CAP_S)


def describe(exc: BaseException) -> str:
    try:
        text = str(exc)
    except Exception:  # a library exception whose __str__ breaks must not escape from here
        text = ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
