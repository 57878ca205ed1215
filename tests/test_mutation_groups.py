"""`make mutate`'s table (tools/mutate.py, GROUPS) stays true of the tree: every module of
bff/ is mutated by exactly one group, and every test a group names exists. The mutation run
itself takes tens of minutes and is not part of the suite; a test file moved or renamed
would otherwise be dropped from its group without a word (the run keeps only the paths it
finds), and a new module would never be mutated."""

from __future__ import annotations

import ast
from fnmatch import fnmatch
from pathlib import Path

from tools import mutate

ROOT = Path(__file__).resolve().parents[1]


def modules() -> list[str]:
    return sorted(str(p.relative_to(ROOT)) for p in (ROOT / "bff").rglob("*.py"))


def test_every_module_is_in_exactly_one_group() -> None:
    owners = {
        module: [g.slug for g in mutate.GROUPS if any(fnmatch(module, m) for m in g.modules)]
        for module in modules()
    }
    assert {m: groups for m, groups in owners.items() if len(groups) != 1} == {}
    assert "bff/client.py" in owners  # the walk found the package


def test_every_module_pattern_matches_a_module() -> None:
    found = modules()
    for group in mutate.GROUPS:
        for pattern in group.modules:
            assert any(fnmatch(m, pattern) for m in found), (group.slug, pattern)


def test_every_test_a_group_names_exists() -> None:
    for group in mutate.GROUPS:
        for test in group.tests:
            path, _, node = test.partition("::")
            assert (ROOT / path).exists(), (group.slug, path)
            if node:
                tree = ast.parse((ROOT / path).read_text())
                names = {n.name for n in tree.body if isinstance(n, ast.ClassDef | ast.FunctionDef)}
                names |= {n.name for n in tree.body if isinstance(n, ast.AsyncFunctionDef)}
                assert node.split("::")[0] in names, (group.slug, test)


def test_every_survivor_set_aside_names_a_module_of_today() -> None:
    # A module renamed or merged renumbers its mutants: its old verdicts would set aside
    # mutants nobody has read.
    set_aside = [*mutate.EQUIVALENT, *mutate.KILLED_BY_SLOW_TESTS]
    existing = {m.removesuffix(".py").replace("/", ".") for m in modules()}
    assert [n for n in set_aside if mutate.module_of(n) not in existing] == []


def test_a_run_goes_on_top_of_the_page_and_keeps_the_earlier_runs() -> None:
    page = "# Mutation testing\n\nHow to read it.\n\n## Run of 2026-11-25\n\nold figures\n"
    updated = mutate.on_top(page, "## Run of 2026-12-06\n\nnew figures\n")
    assert updated == (
        "# Mutation testing\n\nHow to read it.\n\n## Run of 2026-12-06\n\nnew figures\n"
        "\n## Run of 2026-11-25\n\nold figures\n"
    )
    assert mutate.on_top("", "## Run\n") == "# Mutation testing\n\n## Run\n"
