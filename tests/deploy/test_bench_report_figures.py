"""infra/bench/report.py reads each benchmark's own output into RESULTS.md's table of headline figures.

The samples are lines the benchmarks print (copied from a run of `infra/bench/run`), so a change to a
benchmark's wording that the report no longer recognises fails here, not silently in RESULTS.md.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _report():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("bench_report", ROOT / "infra" / "bench" / "report.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_report"] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


def _figures(script: str, output: str) -> dict[str, tuple[str, str]]:
    report = _report()
    step = report.Step(script, script, [], [], 1, output=output, status="ok")
    report.extract(step)
    return {label: (value, ratio) for label, value, ratio in step.figures}


REALTIME = """\
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


def test_real_time_figures_carry_their_ratio_to_the_raw_ceiling() -> None:
    figures = _figures("realtime.py", REALTIME)
    assert figures["(a) API-to-socket p99 ms, 200 sends/s"] == ("76.6", "12.77x of raw")
    assert figures["(c) fan-out deliveries/s"] == ("43850", "1.73x of raw")
    assert figures["(d) RSS per idle socket KiB"] == ("21.1", "1.39x of raw")
    assert figures["(e) messages lost"] == ("0", "")
    assert figures["(f) connect + auth sockets/s, first"] == ("284", "0.28x of raw")
    assert figures["(f) connect + auth sockets/s, again, subscribers known"] == ("600", "0.73x of raw")
    assert figures["(g) single sends with the sockets open, req/s (p99 ms)"] == ("729 (81.1)", "")
    assert figures["target: connect + auth (first) >= 1,000 sockets/s and >= 0.75x raw"] == (
        "284/s, 0.28x raw",
        "not met",
    )
    assert figures["target: single sends with the sockets open >= 1,500/s, p99 <= 100 ms"][1] == "not met"
    assert figures["target: lost 0"] == ("0", "MET")


INGEST = """\
  concurrency 16:     1699 req/s   p50    8.4 ms   p99   29.7 ms   server CPU 0.45 ms/request
POST /v1/notifications/batch (100 each, concurrency 4):    13340 notifications/s   p50   27.5 ms per batch
PUT /v1/subscribers/{id} at concurrency 32:     1439 req/s (0.03x floor)   p50   19.2 ms   p99   60.9 ms   server
POST /v1/subscribers/{id}/tokens at concurrency 32:     1651 req/s (0.04x floor)   p50    8.7 ms   p99  114.7 ms
POST /v1/subscribers/bulk (1,000 new each, concurrency 4):    30200 subscribers/s   server CPU 0.01 ms/subscriber
  Q sends, alone                                     p50    5.1 ms   p99   21.9 ms   (755 sends)
  Q sends, N sends on Free (50/s) at c64, ~all 429   p50   32.3 ms   p99  270.1 ms   (96 sends)
"""


def test_ingest_figures_include_the_subscriber_routes_and_the_isolation_ratio() -> None:
    figures = _figures("ingest.py", INGEST)
    assert figures["single sends at concurrency 16, req/s"] == ("1699", "")
    assert figures["batch notifications/s"] == ("13340", "")
    assert figures["PUT /v1/subscribers/{id} at concurrency 32, req/s"] == ("1439", "")
    assert figures["subscriber upsert, c32, p99 ms"] == ("60.9", "")
    assert figures["token issue at concurrency 32, p99 ms"] == ("114.7", "")
    assert figures["bulk import, subscribers/s"] == ("30200", "")
    assert figures["another organisation's send p99 ms under a flood of 429s"] == ("270.1", "12.33x of its p99 alone")


SOAK = """\
soak: 120 s, 1000 sockets across 20 organisations
sends accepted (202): 8065; refused: none
notifications delivered: 16209
lost: 0
duplicates shown (an id twice on one socket): 0
latency POST -> frame (live): p50 5849.0 ms, p99 21805.4 ms
server memory (RSS): start 170.6 MiB, end 222.6 MiB
"""


def test_soak_figures_are_read() -> None:
    figures = _figures("soak.py", SOAK)
    assert figures["sends accepted (202)"] == ("8065", "")
    assert figures["lost"] == ("0", "")
    assert figures["duplicates shown"] == ("0", "")
    assert figures["latency POST -> frame p99 ms"] == ("21805.4", "")
    assert figures["server RSS start -> end MiB"] == ("170.6 -> 222.6", "")


def test_unrecognised_output_gives_no_figure_rather_than_a_wrong_one() -> None:
    assert _figures("realtime.py", "nothing here\n") == {}
    assert _figures("soak.py", "lost: many\n") == {}
