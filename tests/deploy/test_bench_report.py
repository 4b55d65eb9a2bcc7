"""infra/bench/report.py reads every headline figure (and its ratio to the same run's baseline) from the outputs.

The outputs here follow the benchmarks' print formats (infra/bench/realtime.py, ingest.py, signup.py); no
benchmark is run.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

REPORT = Path(__file__).resolve().parents[2] / "infra" / "bench" / "report.py"

REALTIME = """(a) API-to-socket at 200 sends/s, 1,000 subscribers / 10 organisations: p50 / p99 ms, lost
    herald       API             3.1     12.0   lost 0
    raw          publish         1.0      4.0   lost 0
    seed         group_send      5.0     40.0   lost 0
(b) broadcast to 200 sockets of one organisation, 5 at 1/s: p50 / p99 / mean last ms, lost
    herald       API            10.0     30.0     25.0   lost 0
    raw          publish         8.0     20.0     15.0   lost 0
(c) fan-out, 3 broadcasts back to back to 200 sockets: deliveries/s (delivered/expected)
    target       wall-clock/s  delivered/expected  server CPU us/delivery  per server CPU-second
    herald              50000        600/600                     15.0                  66000
    raw                 60000        600/600                     10.0                  99000
(d) server RSS per idle connection, KiB
    herald           20.1
    raw              15.0
(f) connect + auth, 200 sockets, 100 at a time: sockets/s (ratio to raw in this run)
    target       first (subscribers created)   again (known: a reconnect after a deploy)
    herald            900    0.69x raw              1000    0.77x raw
    raw              1300    1.00x raw              1300    1.00x raw
(g) single sends with 200 idle sockets open, 32 clients: req/s, p50 / p99 ms
    herald           1800     10.0     60.0
(e) messages lost, (a)+(b)+(c)
    herald       0
    raw          0
"""
INGEST = """POST /v1/notifications to one subscriber (uvicorn, 2 workers):
  concurrency  1:      300 req/s   p50    3.0 ms   p99    5.0 ms
  concurrency 16:     1500 req/s   p50   10.0 ms   p99   30.0 ms
  concurrency 64:     2000 req/s   p50   30.0 ms   p99  140.0 ms
POST /v1/notifications/batch (100 each, concurrency 4):    20000 notifications/s   p50   20.0 ms per batch
Bare ASGI floor (same uvicorn settings, concurrency 32):    12000 req/s
PUT /v1/subscribers/{id} at concurrency 32:     1600 req/s (0.13x floor)   p50   10.0 ms   p99   40.0 ms
POST /v1/subscribers/{id}/tokens at concurrency 32:     2500 req/s (0.21x floor)   p50    8.0 ms   p99   30.0 ms
"""
SIGNUP = """sign-up to a working organisation, 3 samples, server time in ms:
  signup        p50   400.0  p99   420.0  max   430.0
  confirm       p50    20.0  p99    22.0  max    23.0
  organization  p50   150.0  p99   160.0  max   170.0
  total         p50   570.0  p99   600.0  max   610.0
"""


@pytest.fixture(scope="module")
def report() -> Iterator[ModuleType]:
    spec = importlib.util.spec_from_file_location("bench_report", REPORT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_report"] = module  # its dataclasses look their module up there
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop("bench_report", None)


def figures(report: ModuleType, script: str, output: str) -> dict[str, tuple[str, str]]:
    step = report.Step(script, script, [], [], 1, output=output, status="ok")
    report.extract(step)
    return {figure: (value, ratio) for figure, value, ratio in step.figures}


def test_real_time_figures_of_every_section_with_their_raw_ratio(report: ModuleType) -> None:
    found = figures(report, "realtime.py", REALTIME)
    assert found["(a) API-to-socket p99 ms, 200 sends/s"] == ("12", "3.00x of raw, 0.30x of seed")
    assert found["(d) RSS per idle socket KiB"] == ("20.1", "1.34x of raw")  # not a later section's herald row
    assert found["(f) connect + auth sockets/s, first"] == ("900", "0.69x of raw")
    assert found["(f) connect + auth sockets/s, again, subscribers known"] == ("1000", "0.77x of raw")
    assert found["(g) single sends with the sockets open, req/s (p99 ms)"] == ("1800 (60.0)", "")
    assert found["(e) messages lost"] == ("0", "")


def test_ingest_figures_against_the_bare_asgi_floor(report: ModuleType) -> None:
    found = figures(report, "ingest.py", INGEST)
    assert found["single sends at concurrency 64, req/s"] == ("2000", "0.17x of the floor at 32")
    assert found["bare ASGI floor at concurrency 32, req/s (the baseline)"] == ("12000", "")
    assert found["PUT /v1/subscribers/{id} at concurrency 32, req/s"] == ("1600", "0.13x of floor")
    assert found["batch notifications/s"] == ("20000", "")


def test_sign_up_is_one_of_the_benchmarks_and_its_steps_are_read(report: ModuleType) -> None:
    assert "signup.py" in [step.script for step in report.steps()]
    found = figures(report, "signup.py", SIGNUP)
    assert found["sign-up step organization, p50 ms (p99)"] == ("150.0 (160.0)", "")


def test_an_output_the_parser_does_not_know_costs_only_its_own_figures(
    report: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A benchmark whose output breaks the parser leaves a note in the table; the other results are still written."""
    import subprocess

    class Done:
        returncode = 0
        stdout = "(a) x\n    herald       API     oops   1.0\n"
        stderr = ""

    monkeypatch.setattr(subprocess, "run", lambda *a, **k: Done())
    step = report.Step("real time", "realtime.py", [], [], 1)
    report.run(step, quick=True)
    assert step.status == "ok"
    assert [f[0] for f in step.figures] == ["(figures not read)"]


# Lines copied from a real run of `infra/bench/run` (16:00 UTC, 2026-12-01).
REALTIME_RUN = """\
(a) API-to-socket at 200 sends/s, 1,000 subscribers / 10 organisations: p50 / p99 ms, lost
    herald       API            14.7     76.6   lost 0
    raw          publish         0.5      6.0   lost 0
(c) fan-out, 40 broadcasts back to back to 5000 sockets: deliveries/s (delivered/expected)
    target       wall-clock/s  delivered/expected  server CPU us/delivery  per server CPU-second
    herald              43850     200000/200000                      10.6                  94340
    raw                 25284     200000/200000                      11.3                  88496
(d) server RSS per idle connection, KiB
    herald           21.1
    raw              15.2
(f) connect + auth, 5000 sockets, 100 at a time: sockets/s (ratio to raw in this run)
    target       first (subscribers created)   again (known: a reconnect after a deploy)
    herald            284    0.28x raw              600    0.73x raw
    raw               997    1.00x raw              822    1.00x raw
(g) single sends with 5000 idle sockets open, 32 clients: req/s, p50 / p99 ms
    herald            729     41.8     81.1
(e) messages lost, (a)+(b)+(c)
    herald       0
Targets (real time; herald against raw in this run):
    connect + auth (first) >= 1,000 sockets/s and >= 0.75x raw: 284/s, 0.28x raw: not met
    single sends with the sockets open >= 1,500/s, p99 <= 100 ms: 729/s, p99 81 ms: not met (raw has no API: no ratio)
    lost 0: 0: MET
"""


def test_real_time_figures_carry_their_ratio_to_the_raw_ceiling(report: ModuleType) -> None:
    found = figures(report, "realtime.py", REALTIME_RUN)
    assert found["(a) API-to-socket p99 ms, 200 sends/s"] == ("76.6", "12.77x of raw")
    assert found["(c) fan-out deliveries/s"] == ("43850", "1.73x of raw")
    assert found["(d) RSS per idle socket KiB"] == ("21.1", "1.39x of raw")
    assert found["(e) messages lost"] == ("0", "")
    assert found["(f) connect + auth sockets/s, first"] == ("284", "0.28x of raw")
    assert found["(f) connect + auth sockets/s, again, subscribers known"] == ("600", "0.73x of raw")
    assert found["(g) single sends with the sockets open, req/s (p99 ms)"] == ("729 (81.1)", "")
    assert found["target: connect + auth (first) >= 1,000 sockets/s and >= 0.75x raw"] == (
        "284/s, 0.28x raw",
        "not met",
    )
    assert found["target: single sends with the sockets open >= 1,500/s, p99 <= 100 ms"][1] == "not met"
    assert found["target: lost 0"] == ("0", "MET")


INGEST_RUN = """\
  concurrency 16:     1699 req/s   p50    8.4 ms   p99   29.7 ms   server CPU 0.45 ms/request
POST /v1/notifications/batch (100 each, concurrency 4):    13340 notifications/s   p50   27.5 ms per batch
PUT /v1/subscribers/{id} at concurrency 32:     1439 req/s (0.03x floor)   p50   19.2 ms   p99   60.9 ms   server
POST /v1/subscribers/{id}/tokens at concurrency 32:     1651 req/s (0.04x floor)   p50    8.7 ms   p99  114.7 ms
POST /v1/subscribers/bulk (1,000 new each, concurrency 4):    30200 subscribers/s   server CPU 0.01 ms/subscriber
 Q sends, N sends on Free (50/s) at c64, ~all 429 p50 1.3 ms p99 3.0 ms (8172 sends) = 1.5x alone (pairs 1.4, 1.5, 1.7;
 Q reads, N lists on Free (50/s) at c64, ~all 429 p50 0.8 ms p99 2.5 ms (12847 reads) = 1.8x alone (pairs 1.8, 2.3, 1.7
"""
INGEST_RUN += (
    "  worst refusal flood: 1.8x Q's p99 alone (Q reads, N lists on Free (50/s) at c64, ~all 429)   target refused"
    " requests cost another organisation <= 2x its p99 alone: MET\n"
)


def test_ingest_figures_include_the_subscriber_routes_and_the_isolation_ratio(report: ModuleType) -> None:
    found = figures(report, "ingest.py", INGEST_RUN)
    assert found["single sends at concurrency 16, req/s"] == ("1699", "")
    assert found["batch notifications/s"] == ("13340", "")
    assert found["PUT /v1/subscribers/{id} at concurrency 32, req/s"] == ("1439", "")
    assert found["subscriber upsert, c32, p99 ms"] == ("60.9", "")
    assert found["token issue at concurrency 32, p99 ms"] == ("114.7", "")
    assert found["bulk import, subscribers/s"] == ("30200", "")
    assert found["isolation: Q sends p99 ms while N sends on Free (50/s) at c64, ~all 429"] == (
        "3.0",
        "1.5x its p99 alone",
    )
    assert found["isolation: Q reads p99 ms while N lists on Free (50/s) at c64, ~all 429"] == (
        "2.5",
        "1.8x its p99 alone",
    )
    assert found["target: refused requests cost another organisation <= 2x its p99 alone"] == ("worst 1.8x", "MET")


SOAK_RUN = """\
soak: 120 s, 1000 sockets across 20 organisations
sends accepted (202): 8065; refused: none
notifications delivered: 16209
lost: 0
duplicates shown (an id twice on one socket): 0
latency POST -> frame (live): p50 5849.0 ms, p99 21805.4 ms
server memory (RSS): start 170.6 MiB, end 222.6 MiB
"""


def test_soak_figures_are_read(report: ModuleType) -> None:
    found = figures(report, "soak.py", SOAK_RUN)
    assert found["sends accepted (202)"] == ("8065", "")
    assert found["lost"] == ("0", "")
    assert found["duplicates shown"] == ("0", "")
    assert found["latency POST -> frame p99 ms"] == ("21805.4", "")
    assert found["server RSS start -> end MiB"] == ("170.6 -> 222.6", "")


def test_unrecognised_output_gives_no_figure_rather_than_a_wrong_one(report: ModuleType) -> None:
    assert figures(report, "realtime.py", "nothing here\n") == {}
    assert figures(report, "soak.py", "lost: many\n") == {}
