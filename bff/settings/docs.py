"""The docs' table of variables and list of cross-setting refusals, made from the
declarations: docs/configuration.md holds this output, and a test keeps the page equal to it.

    python -m bff.settings.docs    # what the page must hold, after a declaration changed
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import MISSING
from typing import Any

from bff.settings import Settings, part_services
from bff.settings.checks import RULES
from bff.settings.declaration import Service, entries
from bff.settings.kinds import figure

__all__ = ["refusals_list", "variables_table"]


def variables_table(parts: Sequence[Service] | None = None) -> str:
    """One row per variable: its default (what an empty environment reads), what it
    accepts, what it means."""
    rows = ["| variable | default | accepts | meaning |", "|---|---|---|---|"]
    for entry in entries(Settings, part_services(parts)):
        if entry.variable is None:
            continue
        computed, default = entry.variable.computed, entry.default()
        if computed is not None:
            shown = computed.says
        elif default is MISSING:
            shown = "none: must be set"
        else:
            shown = _default(entry.kind.display(default))
        rows.append(f"| `{entry.name}` | {shown} | {entry.kind.accepts} | {entry.doc} |")
    return "\n".join(rows) + "\n"


def refusals_list() -> str:
    return "".join(f"- {rule.says}\n" for rule in RULES)


def _default(shown: Any) -> str:
    if shown is None or shown == []:
        return "none"
    if isinstance(shown, list):
        return ", ".join(f"`{item}`" for item in shown)
    if isinstance(shown, float):
        return f"`{figure(shown)}`"
    return f"`{shown}`"


if __name__ == "__main__":
    print(variables_table())
    print(refusals_list())
