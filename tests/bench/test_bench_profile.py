"""Top functions by own time from py-spy's raw collapsed stacks (bench/profile.py)."""

from __future__ import annotations

from bench.profile import top_functions

P1 = 'process 10:"python -m bff";process 11:"python -c spawn";thread (11): MainThread'
P2 = 'process 10:"python -m bff";process 12:"python -c spawn"'
RAW = "\n".join(
    [
        f"{P1};run (bff/server.py:20);encode (msgspec/json.py:5) 30",
        f"{P1};run (bff/server.py:20);encode (msgspec/json.py:9) 10",
        f"{P2};thread (12): MainThread;run (bff/server.py:20) 20",
        f"{P2};thread (13): Thread-1 (worker);wait (threading.py:320) 15",
        'process 10:"python -m bff";thread (10): MainThread 25',
        "not a stack line",
    ]
)


def test_own_time_is_the_leaf_frames_added_up_over_lines_and_processes() -> None:
    top = top_functions(RAW)
    assert top == [
        {"function": "encode (msgspec/json.py)", "samples": 40, "share": 0.4},
        {"function": "run (bff/server.py)", "samples": 20, "share": 0.2},
        {"function": "wait (threading.py)", "samples": 15, "share": 0.15},
    ]


def test_only_the_top_n() -> None:
    assert [t["function"] for t in top_functions(RAW, top=1)] == ["encode (msgspec/json.py)"]
    assert top_functions("") == []
