"""The three pages load nothing from another origin: the machines they run on are offline,
and a page that needs a CDN, a web font or a third-party script would break there (their
Content-Security-Policy would also refuse it, silently)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bff.admin.status import STATIC_DIR as STATUS_PAGE
from mock_services.lab import STATIC_DIR as FAULT_LAB
from storefront.app import STATIC_DIR as STOREFRONT

# src=, href=, url( or @import followed by a scheme-relative or absolute http(s) URL.
ELSEWHERE = re.compile(r"(?:src|href|url|@import)\s*[=( ]\s*[\"']?(?:https?:)?//", re.IGNORECASE)


PAGES = {"fault-lab": FAULT_LAB, "status": STATUS_PAGE, "storefront": STOREFRONT}


@pytest.mark.parametrize("folder", PAGES.values(), ids=PAGES.keys())
def test_nothing_comes_from_another_origin(folder: Path) -> None:
    files = sorted(folder.iterdir())
    assert {f.suffix for f in files} == {".html", ".js", ".css"}
    for path in files:
        assert not ELSEWHERE.search(path.read_text()), path
