"""`make mutate`: mutation testing of the modules that carry the gateway's promises.

Each group below names the modules to mutate and the fast, in-process test files that pin
them. For each group the script copies the working tree (tracked and new files) into
`build/mutate/<group>/`, appends a `[tool.mutmut]` section to that copy's pyproject.toml and
runs mutmut 3 there, so groups never share state and the real tree is never touched. mutmut
first runs the group's tests once to learn which test covers which function, then runs only
those tests against each mutant, each under a timeout derived from the test's own duration.
The report (`docs/mutation.md`) gives the score per module and every surviving mutant, marked
"equivalent" (with the reason, from `EQUIVALENT` below) or "to kill".

    python tools/mutate.py [--groups client,request] [--jobs 2] [--report docs/mutation.md]
    python tools/mutate.py --report-only    # the report again from the last runs' results

To follow a change: edit `GROUPS` (modules and their tests), and move a survivor that cannot
change what a user sees into `EQUIVALENT` with the reason.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / "build" / "mutate"
# Subprocess tests (`python -m bff`) would run the unmutated code: never select them.
_PYTEST_ARGS = ["-p", "no:cacheprovider", "-m", "not slow", "-q"]


@dataclass(frozen=True)
class Group:
    slug: str
    title: str
    modules: tuple[str, ...]  # paths relative to the repository, globs allowed
    tests: tuple[str, ...]  # test files (or node ids) that pin these modules
    pytest_args: tuple[str, ...] = ()  # e.g. a -k that leaves out a slow case


# Every mutant of a function runs all the tests that cover it until one fails, so a group's
# time is about (mutants that survive) x (its tests' duration): the groups keep to the files
# that really exercise their modules, mostly the folder of tests/bff/ that mirrors them
# (tests/README.md). Every module of bff/ is in one group (tests/test_mutation_groups.py
# checks it, and that each test path exists: a missing one would be dropped silently).
_HOSTILE_FAST = ("-k", "not probe_of_a_half_open_breaker")  # 14 s, the breaker group's job
GROUPS: tuple[Group, ...] = (
    Group(
        "client",
        "client: one call, its attempts, retries and hedges",
        ("bff/client.py", "bff/parts.py", "bff/models.py"),
        (
            "tests/bff/client",
            "tests/bff/test_parts.py",
            # A 304 reaches the client only through the cache's revalidation: 0.6 s.
            "tests/bff/cache/test_fetcher.py",
            "tests/bff/observability/test_tracing.py",  # each attempt's client span: 2 s
            # The breaker's hook and the pool's service name, as an operator sees them.
            "tests/bff/observability/test_metrics.py::TestResilienceCounters",
        ),
        _HOSTILE_FAST,
    ),
    Group(
        "request",
        "request path: handler, fan-out, merge and answer",
        (
            "bff/product_details.py",
            "bff/middleware.py",
            "bff/context.py",
            "bff/answer.py",
            "bff/validation.py",
            "bff/problems.py",
            "bff/errors.py",
        ),
        (
            "tests/bff/product_details",
            "tests/bff/test_contract.py",
            "tests/bff/test_answer.py",
            "tests/bff/test_validation.py",
            "tests/bff/test_forwarded_headers.py",
            "tests/bff/test_problems.py",
            "tests/bff/observability/test_logging.py",  # the access line: the one report
            "tests/bff/observability/test_tracing.py",  # the server span the middleware ends
            "tests/bff/client/test_call_records.py",
        ),
    ),
    Group(
        "resilience",
        "breaker, retry budget, instances, discovery, loop lag",
        ("bff/resilience/*.py",),
        (
            "tests/bff/resilience",
            "tests/bff/client/test_retries.py",
            "tests/bff/client/test_hedging.py",
            "tests/bff/client/test_bulkhead.py",
            "tests/bff/observability/test_metrics.py::TestResilienceCounters",
        ),
    ),
    Group(
        "cache",
        "part cache",
        ("bff/cache/*.py",),
        ("tests/bff/cache",),
    ),
    Group(
        "edge",
        "edge: guard, admission, protocol and the protections",
        ("bff/edge/*.py",),
        (
            "tests/bff/edge",
            "tests/bff/test_contract.py",
            "tests/bff/test_compat.py",
            "tests/bff/admin/test_admin.py",
        ),
    ),
    Group(
        "settings",
        "settings and the configuration shown",
        ("bff/settings/*.py", "bff/effective_config.py"),
        (
            "tests/bff/settings",
            "tests/bff/test_effective_config.py",
            "tests/bff/edge/test_auth.py::TestAuthSettings",
            "tests/bff/edge/test_cors.py::TestSettings",
            "tests/bff/edge/test_jwks.py::TestSettings",
            "tests/bff/edge/test_ratelimit.py::TestSettings",
            "tests/bff/observability/test_tracing.py::TestSettings",
            "tests/bff/admin/test_admin.py::TestSettings",
        ),
    ),
    Group(
        "observability",
        "metrics, logs, traces and the admin listener",
        ("bff/observability/*.py", "bff/admin/*.py"),
        ("tests/bff/observability", "tests/bff/admin"),
    ),
    Group(
        "process",
        "the app, its server, workers and start-up",
        (
            "bff/__init__.py",
            "bff/__main__.py",
            "bff/app.py",
            "bff/server.py",
            "bff/supervisor.py",
            "bff/listeners.py",
            "bff/lifecycle.py",
            "bff/keys.py",
            "bff/_compat.py",
        ),
        (
            # Most of these modules run in `python -m bff`, which the slow tests start and
            # mutmut leaves out (they would run the unmutated code): the in-process ones.
            "tests/bff/test_server.py",
            "tests/bff/test_compat.py",
            "tests/bff/test_contract.py",
            "tests/bff/admin/test_admin.py",
            "tests/bff/edge/test_drain.py",
        ),
    ),
)

# Survivors that cannot change anything a user or an operator sees: mutant name -> why.
_HEADER_CASE = "aiohttp's header lookups ignore case"
_FALSY = "only ever tested for truth: None is as false as False"
_NO_OLD_STATE = (
    "pybreaker notifies listeners only on a transition, always with the state it leaves: "
    "the 'none' branch is never taken"
)
_CLEARED_MARK = (
    "a cleared bucket's second only has to differ from every real second of "
    "int(time.monotonic()): +1 and -2 do as well as -1 (and the sweep skips only -1, which "
    "costs a no-op emptying)"
)
_SET_ON_OPENING = "read only while open, and set by the transition to open before that"
_PYBREAKER_UNUSED = (
    "nothing ever calls through pybreaker (we move its states with open/half_open/close and "
    "time the opening ourselves), so its own reset timer, error on trip and name are never read"
)
_NO_TEXT = "None is as empty as '' for the `if text` that follows: the class name alone"
_COST_ONLY = (
    "decides only whether the bucket is looked up (or emptied) again, which is then a no-op; "
    "it differs only if a bucket's count equals the clock's second, in the thousands"
)
_DIGITS_ONLY = (
    "the value is all ASCII digits here: stripping 'X' too changes nothing; and past the "
    "leading zeros 8 digits are already beyond the one-hour cap, so are 9"
)
_HTTP_HEADER_CASE = "HTTP header names are case-insensitive (RFC 9110 section 5.1)"
_ZIP_EQUAL = "the parts and their values come from one list: zip's strict check never fires"
_NO_BODY_READ = (
    "a Reply is given a body only for a 200, the one status whose body is read (stored and "
    "decoded): the default is never read"
)
_STATUS_OUTSIDE_4XX = (
    "a failed reply's status is only compared with 400-499 (whether a failure may be shared "
    "with waiters of another view): 1 is outside as 0 is"
)
_IN_A_TASK = "an assert's message, read only when it fails: a race is only ever run in a task"
_FLOAT_EQUAL = "a float equal to its bound to the last bit does not happen (times from the clock)"
_EQUAL_EITHER_WAY = "when the two are equal, both branches give the same value"
# Survivors that a slow test kills (mutmut's runs leave slow tests out: they start
# `python -m bff`, which runs the unmutated code): mutant name -> the test; checked by hand.
KILLED_BY_SLOW_TESTS: dict[str, str] = {}
EQUIVALENT: dict[str, str] = {
    # the resilience group as of 2026-12-06
    "bff.resilience.breaker.xǁ_Listenerǁstate_change__mutmut_6": _NO_OLD_STATE,
    "bff.resilience.breaker.xǁ_Listenerǁstate_change__mutmut_8": _NO_OLD_STATE,
    "bff.resilience.breaker.xǁ_Listenerǁstate_change__mutmut_9": _NO_OLD_STATE,
    "bff.resilience.breaker.xǁServiceBreakerǁ__init____mutmut_3": _SET_ON_OPENING,
    "bff.resilience.breaker.xǁServiceBreakerǁ__init____mutmut_4": _SET_ON_OPENING,
    "bff.resilience.breaker.xǁServiceBreakerǁ__init____mutmut_5": _FALSY,
    "bff.resilience.breaker.xǁServiceBreakerǁ__init____mutmut_23": _PYBREAKER_UNUSED,
    "bff.resilience.breaker.xǁServiceBreakerǁ__init____mutmut_24": _PYBREAKER_UNUSED,
    "bff.resilience.breaker.xǁServiceBreakerǁadmit__mutmut_4": _FALSY,
    "bff.resilience.breaker.xǁPermitǁ__init____mutmut_3": _FALSY,
    "bff.resilience.breaker.xǁPermitǁsuccess__mutmut_4": _FALSY,
    "bff.resilience.breaker.xǁPermitǁsuccess__mutmut_6": _FALSY,
    "bff.resilience.breaker.xǁPermitǁfailure__mutmut_4": _FALSY,
    "bff.resilience.breaker.xǁPermitǁrelease__mutmut_4": _FALSY,
    "bff.resilience.window.xǁSlidingCountsǁclear__mutmut_4": _CLEARED_MARK,
    "bff.resilience.window.xǁSlidingCountsǁclear__mutmut_5": _CLEARED_MARK,
    "bff.resilience.window.xǁSlidingCountsǁadd__mutmut_2": _COST_ONLY,
    # the edge group as of 2026-12-06
    "bff.edge.guard.xǁEdgeGuardǁ_admit__mutmut_7": _HEADER_CASE,
    "bff.edge.guard.xǁEdgeGuardǁ_admit__mutmut_8": _HEADER_CASE,
    "bff.edge.admission.xǁAdmissionǁ_size__mutmut_13": _FLOAT_EQUAL,
    "bff.edge.admission.xǁAdmissionǁ_size__mutmut_33": (
        "at or above the ceiling, min(ceiling, a larger limit) is the ceiling as well"
    ),
    # the client group as of 2026-12-06 (bff/client.py)
    "bff.client.xǁReplyǁ__init____mutmut_1": _NO_BODY_READ,
    "bff.client.xǁReplyǁfailed__mutmut_1": _STATUS_OUTSIDE_4XX,
    "bff.client.x_retry_after__mutmut_13": _DIGITS_ONLY,
    "bff.client.x_retry_after__mutmut_14": _DIGITS_ONLY,
    "bff.client.x_describe__mutmut_3": _NO_TEXT,
    "bff.client.xǁDownstreamClientǁ_attempt__mutmut_2": _FLOAT_EQUAL,
    "bff.client.xǁDownstreamClientǁ_attempt__mutmut_25": _EQUAL_EITHER_WAY,
    "bff.client.xǁDownstreamClientǁstart_hedge__mutmut_28": _EQUAL_EITHER_WAY,
    "bff.client.xǁDownstreamClientǁ_read_capped__mutmut_13": _HEADER_CASE,
    "bff.client.xǁDownstreamClientǁ_read_capped__mutmut_14": _HEADER_CASE,
    "bff.client.xǁ_Raceǁ__init____mutmut_3": _IN_A_TASK,
    "bff.client.xǁ_Raceǁ__init____mutmut_4": _IN_A_TASK,
    "bff.client.xǁ_Raceǁ__init____mutmut_11": _FALSY,
    "bff.client.xǁ_Raceǁstop__mutmut_1": _FALSY,
    # the request group as of 2026-12-06
    **{f"bff.answer.x_stamp__mutmut_{n}": _HTTP_HEADER_CASE for n in (3, 4, 7, 8)},
    **{f"bff.middleware.x_finish_stream__mutmut_{n}": _HTTP_HEADER_CASE for n in (9, 12, 13)},
    **{
        f"bff.product_details.xǁProductDetailsǁ_write_lines__mutmut_{n}": _HTTP_HEADER_CASE
        for n in (38, 39)
    },
    **{
        f"bff.product_details.xǁProductDetailsǁ_write_lines__mutmut_{n}": _ZIP_EQUAL
        for n in (49, 52, 53, 70)
    },
    # the cache group as of 2026-12-06
    **{
        f"bff.cache.redis_tier.xǁRedisTierǁput_later__mutmut_{n}": (
            "a copy with nothing left to keep, written for 1 or 2 ms, has expired before "
            "anybody reads it: as good as not written"
        )
        for n in (1, 8)
    },
    "bff.cache.redis_tier.xǁRedisTierǁ_write__mutmut_1": (
        "the client's own stream and connect timeouts are the same bound (the write's "
        "10 x the lookup's): without the asyncio one, a write still gives up then"
    ),
    "bff.cache.redis_tier.xǁRedisTierǁ__init____mutmut_6": _FALSY,
    "bff.cache.redis_tier.xǁRedisTierǁ__init____mutmut_11": "coredis' default is False too",
}

_TIMING = "mutate-seconds.txt"  # the run's duration and error, for --report-only
_DIFFS = "survivor-diffs.json"  # each survivor's changed lines, for --report-only
_NAME = re.compile(r"^\s*(\S+__mutmut_\d+): (.+)$")
_MODULE = re.compile(r"^(.*?)\.x(?:ǁ|_)")
_KILLED = {"killed", "timeout", "caught by type check", "segfault"}
_NOT_TRIED = {"skipped", "not checked"}


@dataclass(frozen=True)
class Outcome:
    group: Group
    statuses: dict[str, str]  # mutant name -> mutmut status
    diffs: dict[str, str]  # survivor -> its changed lines
    seconds: float
    error: str | None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--groups", default=",".join(g.slug for g in GROUPS))
    parser.add_argument("--jobs", type=int, default=2, help="mutants run at once (2 cores)")
    parser.add_argument("--group-timeout", type=float, default=1800.0, help="seconds per group")
    parser.add_argument("--report", default=str(ROOT / "docs" / "mutation.md"))
    parser.add_argument(
        "--report-only", action="store_true", help="rewrite the report from the last runs"
    )
    args = parser.parse_args()
    groups = [g for g in GROUPS if g.slug in set(args.groups.split(","))]
    if args.report_only:
        outcomes = [collect(g) for g in groups if (WORK / g.slug / _TIMING).exists()]
        total = sum(o.seconds for o in outcomes)
    else:
        outcomes = [run_group(g, args.jobs, args.group_timeout) for g in groups]
        total = sum(o.seconds for o in outcomes)
    report = Path(args.report)
    earlier = report.read_text() if report.exists() else ""
    report.write_text(on_top(earlier, render(outcomes, total, args.jobs)))
    print(f"report: {args.report} (mutmut ran {total:.0f} s)")
    return 1 if any(o.error for o in outcomes) else 0


def run_group(group: Group, jobs: int, timeout: float) -> Outcome:
    workdir = WORK / group.slug
    _copy_tree(workdir)
    _configure(workdir / "pyproject.toml", group)
    mutmut = [sys.executable, "-m", "mutmut"]
    started = time.monotonic()
    print(f"== {group.title}: {', '.join(group.modules)}", flush=True)
    error = None
    # mutmut refuses to start when one clean run of the tests fails; on a loaded machine a
    # timing test can, once. A second run reuses what the first one finished.
    for _ in range(2):
        left = timeout - (time.monotonic() - started)
        try:
            run = subprocess.run(
                [*mutmut, "run", "--max-children", str(jobs)],
                cwd=workdir,
                timeout=max(1.0, left),
                check=False,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
        except subprocess.TimeoutExpired:
            error = f"stopped after {timeout:.0f} s (the statuses below are partial)"
            break
        error = (
            None if run.returncode == 0 else f"mutmut exited {run.returncode}: {run.stdout[-1500:]}"
        )
        if error is None:
            break
    seconds = time.monotonic() - started
    (workdir / _TIMING).write_text(f"{seconds:.0f}\n{error or ''}")
    return collect(group)


def collect(group: Group) -> Outcome:
    """The outcome of the group's last run, read back from its work directory."""
    workdir = WORK / group.slug
    mutmut = [sys.executable, "-m", "mutmut"]
    seconds_text, _, error = (workdir / _TIMING).read_text().partition("\n")
    seconds = float(seconds_text)
    statuses = _statuses(mutmut, workdir)
    survivors = [n for n, s in statuses.items() if s not in _KILLED | _NOT_TRIED]
    # `mutmut show` is a process per mutant (~0.5 s): the diffs of a run are kept beside it,
    # so that --report-only does not pay for them again.
    cache = workdir / _DIFFS
    known: dict[str, str] = json.loads(cache.read_text()) if cache.exists() else {}
    diffs = {n: known[n] if n in known else _diff(mutmut, workdir, n) for n in survivors}
    cache.write_text(json.dumps(diffs))
    print(f"   {len(statuses)} mutants, {len(survivors)} not killed, {seconds:.0f} s", flush=True)
    return Outcome(group, statuses, diffs, seconds, error or None)


def _copy_tree(workdir: Path) -> None:
    if workdir.exists():
        shutil.rmtree(workdir)
    listed = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard"],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.splitlines()
    for rel in listed:
        src = ROOT / rel
        # The docs' text is read by tests (the settings table); their pictures are not.
        if src.is_file() and not rel.startswith(("bench/results/", "docs/images/")):
            dst = workdir / rel
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst)


def _configure(pyproject: Path, group: Group) -> None:
    tests = [t for t in group.tests if (pyproject.parent / t.split("::")[0]).exists()]
    lines = [
        "",
        "[tool.mutmut]",
        'source_paths = ["bff"]',
        f"only_mutate = {_toml_list(group.modules)}",
        'also_copy = ["mock_services", "bench", "docs", "README.md"]',
        f"pytest_add_cli_args_test_selection = {_toml_list(tests)}",
        f"pytest_add_cli_args = {_toml_list([*_PYTEST_ARGS, *group.pytest_args])}",
        # A mutant's tests get 5x their clean duration plus 2 s, then count as a timeout
        # (caught: a mutant that hangs is noticed by the suite too).
        "timeout_multiplier = 5.0",
        "timeout_constant = 2.0",
        "use_git_change_detection = false",
    ]
    pyproject.write_text(pyproject.read_text() + "\n".join(lines) + "\n")


def _toml_list(items: tuple[str, ...] | list[str]) -> str:
    return "[" + ", ".join(f'"{i}"' for i in items) + "]"


def _statuses(mutmut: list[str], workdir: Path) -> dict[str, str]:
    out = subprocess.run(
        [*mutmut, "results", "--all", "true"],
        cwd=workdir,
        check=False,
        capture_output=True,
        text=True,
    ).stdout
    return {m[1]: m[2].strip() for m in map(_NAME.match, out.splitlines()) if m}


def _diff(mutmut: list[str], workdir: Path, name: str) -> str:
    out = subprocess.run(
        [*mutmut, "show", name], cwd=workdir, check=False, capture_output=True, text=True
    ).stdout
    changed = [
        line
        for line in out.splitlines()
        if line[:1] in "+-" and not line.startswith(("+++", "---"))
    ]
    return "\n".join(changed)


def module_of(name: str) -> str:
    match = _MODULE.match(name)
    return match[1] if match else name.rsplit(".", 1)[0]


_TITLE = "# Mutation testing"


def on_top(earlier: str, section: str) -> str:
    """The page with this run's section first, above the earlier runs' sections (the page's
    introduction, up to its first `## `, stays at the top)."""
    if not earlier.startswith(_TITLE):
        return f"{_TITLE}\n\n{section}"
    intro, found, runs = earlier.partition("\n## ")
    below = f"\n## {runs}" if found else ""
    return f"{intro.rstrip()}\n\n{section}{below}"


def render(outcomes: list[Outcome], total: float, jobs: int) -> str:
    today = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    out = [
        f"## Run of {today}",
        "",
        f"`make mutate`: {total / 60:.1f} min in all, {jobs} mutants at a time "
        f"({os.cpu_count()} cores). mutmut changes one operator, constant or call at a time in "
        "the modules below and runs the tests that cover it; a mutant the tests still pass is "
        "a *survivor*. Score = killed / (mutants tried); *without equivalents* sets aside the "
        "survivors that cannot change what a user or an operator sees (the reasons are below "
        "and in `EQUIVALENT`, `tools/mutate.py`). The modules and the tests run against them "
        "are the table `GROUPS` in `tools/mutate.py`.",
        "",
        "| group | module | mutants | killed | survived | of them equivalent | no tests | score "
        "| without equivalents |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for outcome in outcomes:
        per_module: dict[str, Counter[str]] = defaultdict(Counter)
        for name, status in outcome.statuses.items():
            per_module[module_of(name)][status] += 1
            if name in EQUIVALENT and name in outcome.diffs:
                per_module[module_of(name)]["equivalent"] += 1
        for module, counts in sorted(per_module.items()):
            out.append(_row(outcome.group.title, module, counts))
    times = ", ".join(f"{o.group.title} {o.seconds:.0f} s" for o in outcomes)
    out += ["", f"Time per group: {times}."]
    for outcome in outcomes:
        if outcome.error:
            out += ["", f"**{outcome.group.title}: {outcome.error}**"]
    out += ["", f"### Survivors ({today})", ""]
    for outcome in outcomes:
        for name, diff in sorted(outcome.diffs.items()):
            status = outcome.statuses[name]
            if name in EQUIVALENT:
                verdict = f"equivalent: {EQUIVALENT[name]}"
            elif name in KILLED_BY_SLOW_TESTS:
                verdict = f"killed by the slow `{KILLED_BY_SLOW_TESTS[name]}` (checked by hand)"
            else:
                verdict = "to kill"
            out += [f"- `{name}` ({status}) — {verdict}", "", "  ```diff"]
            out += [f"  {line}" for line in diff.splitlines()] + ["  ```", ""]
    return "\n".join(out) + "\n"


def _row(title: str, module: str, counts: Counter[str]) -> str:
    tried = sum(n for s, n in counts.items() if s not in _NOT_TRIED and s != "equivalent")
    killed = sum(counts[s] for s in _KILLED)
    survived = counts["survived"] + counts["suspicious"]
    score = f"{100 * killed / tried:.0f} %" if tried else "-"
    real = tried - counts["equivalent"]
    net = f"{100 * killed / real:.0f} %" if real else "-"
    return (
        f"| {title} | `{module}` | {tried} | {killed} | {survived} | {counts['equivalent']} "
        f"| {counts['no tests']} | {score} | {net} |"
    )


if __name__ == "__main__":
    sys.exit(main())
