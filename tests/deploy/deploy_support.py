"""Shared by the deploy tests: the repository's deploy/ files and the tools that check them
(found, or skipped or failed, by `required_tools`)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml
from required_tools import require_tool, unavailable

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"

__all__ = [
    "DEPLOY",
    "ROOT",
    "built_image",
    "load_all_yaml",
    "load_yaml",
    "require_tool",
    "unavailable",
]


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def load_all_yaml(text: str) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(text) if doc]


def built_image() -> str:
    """The tag docs/deploy.md's one `docker build` gives our image: what a newcomer has."""
    text = (ROOT / "docs" / "deploy.md").read_text()
    (tag,) = re.findall(r"^docker build .*-t (\S+) \.$", text, flags=re.MULTILINE)
    return tag
