"""Credentials out of anything shown: `--print-config`, the start-up log line, every refusal.

A URL can carry a secret in two places: its user information (`redis://:password@host`, or
a token alone as the user, `https://token@host`) and its query (`?access_token=...`, a
signed URL's `sig=`, an API key under any name). The query's names are kept, every value is
hidden: no list of credential names is ever complete, and the names alone say enough to
recognise the URL. This works on text that is not a valid URL too, since a refused value
is shown in its refusal.
"""

from __future__ import annotations

import re

__all__ = ["REDACTED", "redact_urls"]

REDACTED = "<redacted>"

# scheme://userinfo@ : the userinfo is everything before the first "@" of the authority.
_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<userinfo>[^/?#@\s]*)@")
# ?name=value&name=value, up to a fragment or whitespace (a comma-separated list of URLs may
# lose the next URL to the redaction: hiding too much is the safe side).
_QUERY = re.compile(r"\?(?P<query>[^#\s]*)")


def redact_urls(text: str) -> str:
    """`text` with every URL's password (or lone user) and query values replaced."""
    return _QUERY.sub(_query, _USERINFO.sub(_userinfo, text))


def _userinfo(match: re.Match[str]) -> str:
    user, colon, _password = match["userinfo"].partition(":")
    shown = f"{user}:{REDACTED}" if colon else REDACTED
    return f"{match['scheme']}{shown}@"


def _query(match: re.Match[str]) -> str:
    if not match["query"]:
        return "?"
    return "?" + "&".join(map(_pair, match["query"].split("&")))


def _pair(pair: str) -> str:
    name, equals, _value = pair.partition("=")
    # A bare `?token` is all value.
    return f"{name}={REDACTED}" if equals and name else REDACTED
