"""Headers every response carries, on both listeners, problems and parser errors included.

`Server: bff` names no versions (aiohttp's default, `Python/3.11 aiohttp/3.14.5`, tells an
attacker which advisories apply); `X-Content-Type-Options: nosniff` stops a browser from
reading a JSON or problem body as HTML or script.
"""

from __future__ import annotations

from multidict import CIMultiDict

SERVER = "bff"
_FIXED = (("Server", SERVER), ("X-Content-Type-Options", "nosniff"))


def stamp(headers: CIMultiDict[str]) -> None:
    for name, value in _FIXED:
        headers[name] = value
