"""Run every benchmark once and write infra/bench/RESULTS.md (`infra/bench/run [--quick]`).

Each benchmark runs in its own process, one after the other (they would skew each other on 2 cores), with a
time limit. RESULTS.md gets the machine, the date, the commit, how busy the machine was, a table of the
headline figures with their ratio to the baseline measured in the same run (the raw `websockets` ceiling,
the seed article's design), and every benchmark's whole output. `--quick` shrinks every benchmark to a
smoke run: its figures say the scripts work, not how fast anything is.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "infra" / "bench"


@dataclass
class Step:
    name: str
    script: str
    full: list[str]
    quick: list[str]
    timeout: int
    output: str = ""
    status: str = "not run"
    seconds: float = 0.0
    figures: list[tuple[str, str, str]] = field(default_factory=list)  # (figure, value, ratio)


def steps() -> list[Step]:
    found = [
        Step("provisioning", "provision.py", [], ["--samples", "3", "--sizes", "10"], 1800),
        Step("sign-up", "signup.py", [], ["--samples", "3"], 1800),
        Step("ingest", "ingest.py", ["--seconds", "5"], ["--seconds", "1"], 1800),
        Step(
            "real time",
            "realtime.py",
            [],
            ["--targets", "herald,seed,raw", "--broadcast-sockets", "200", "--bursts", "3"],
            3600,
        ),
        Step(
            "tenant schemas",
            "schemas.py",
            ["--counts", "100,500,1000,2000", "--migrate-at", "500"],
            ["--counts", "5,10", "--migrate-at", "5", "--samples", "3"],
            3600,
        ),
    ]
    soak = BENCH / "soak.py"
    if soak.exists():  # the reliability work's soak test, when it is there
        source = soak.read_text()
        quick = ["--quick"] if "--quick" in source else ["--seconds", "10"] if "--seconds" in source else []
        full: list[str] = []  # its own default: the 10 minutes
        found.append(Step("soak", "soak.py", full, quick, 1800))
    return found


def machine() -> list[str]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        memory = int(Path("/proc/meminfo").read_text().split()[1]) / 2**20
        memory_text = f"{memory:.0f} GiB"
    except (OSError, ValueError, IndexError):
        memory_text = "unknown"
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT)
    return [
        f"- machine: {platform.node()}, {platform.system()} {platform.release()}, {os.cpu_count()} cores ({cpu}), "
        f"{memory_text} memory",
        f"- Python {platform.python_version()}; commit {commit.stdout.strip() or 'unknown'}",
        f"- load average before the run: {' '.join(f'{x:.2f}' for x in os.getloadavg())}",
    ]


def _number(pattern: str, text: str, group: int = 1) -> float | None:
    match = re.search(pattern, text, re.M)
    return float(match.group(group)) if match else None


def _ratio(value: float | None, base: float | None, what: str) -> str:
    if value is None or not base:
        return ""
    return f"{value / base:.2f}x {what}"


def _targets(step: Step, text: str) -> None:
    """Each `name: value: MET` / `: not met` line a benchmark printed under its "Targets" heading."""
    for m in re.finditer(r"^\s{4}(\S.*?): (.*?): (MET|not met)\b.*$", text, re.M):
        step.figures.append((f"target: {m.group(1)}", m.group(2), m.group(3)))


def extract(step: Step) -> None:
    """The headline figures of a benchmark's output, with ratios to the baselines it measured itself."""
    text = step.output
    if step.script == "realtime.py":
        sections: dict[str, list[list[str]]] = {}
        current = None
        for line in text.splitlines():
            head = re.match(r"^\(([a-g])\) ", line)
            if head:
                current = sections.setdefault(head.group(1), [])
            elif current is not None and line.startswith("    ") and not line.strip().startswith(("note", "target")):
                current.append(line.split())

        def row(section: str, name: str, how: str | None = None) -> list[str] | None:
            for cells in sections.get(section, []):
                if cells and cells[0] == name and (how is None or (len(cells) > 1 and cells[1] == how)):
                    return cells
            return None

        def figure(label: str, section: str, index: int, herald_how: str | None, base_how: str | None) -> None:
            mine = row(section, "herald", herald_how)
            if mine is None:
                return
            value = float(mine[index])
            ratios = []
            for base, how in (("raw", base_how), ("seed", "group_send" if base_how else None)):
                other = row(section, base, how)
                if other is not None:
                    ratios.append(_ratio(value, float(other[index]), f"of {base}"))
            step.figures.append((label, f"{value:g}", ", ".join(r for r in ratios if r)))

        figure("(a) API-to-socket p50 ms, 200 sends/s", "a", 2, "API", "publish")
        figure("(a) API-to-socket p99 ms, 200 sends/s", "a", 3, "API", "publish")
        figure("(b) broadcast p99 ms (API)", "b", 3, "API", "publish")
        figure("(c) fan-out deliveries/s", "c", 1, None, None)
        figure("(d) RSS per idle socket KiB", "d", 1, None, None)

        # (f) connect + auth: `name first ratio... again ratio...`; the figures are the cells that are numbers.
        def numbers(cells: list[str] | None) -> list[float]:
            found = []
            for cell in (cells or [])[1:]:
                try:
                    found.append(float(cell))
                except ValueError:
                    pass
            return found

        mine_f, raw_f = numbers(row("f", "herald")), numbers(row("f", "raw"))
        for index, label in ((0, "first"), (1, "again, subscribers known")):
            if len(mine_f) > index:
                base = raw_f[index] if len(raw_f) > index else None
                step.figures.append(
                    (
                        f"(f) connect + auth sockets/s, {label}",
                        f"{mine_f[index]:g}",
                        _ratio(mine_f[index], base, "of raw"),
                    )
                )
        sends = row("g", "herald")
        if sends is not None and len(sends) >= 4:
            step.figures.append(
                ("(g) single sends with the sockets open, req/s (p99 ms)", f"{sends[1]} ({sends[3]})", "")
            )
        lost = row("e", "herald")
        if lost is not None:
            step.figures.append(("(e) messages lost", lost[1], ""))
        _targets(step, text)
    elif step.script == "ingest.py":
        # The bare ASGI floor (same uvicorn settings, concurrency 32) is the baseline ingest measures itself.
        floor = _number(r"Bare ASGI floor \(same uvicorn settings, concurrency 32\):\s+(\d+) req/s", text)
        for concurrency in (1, 16, 64):
            value = _number(rf"concurrency\s+{concurrency}:\s+(\d+) req/s", text)
            if value is not None:
                ratio = _ratio(value, floor, "of the floor at 32") if concurrency == 64 else ""
                step.figures.append((f"single sends at concurrency {concurrency}, req/s", f"{value:.0f}", ratio))
        if floor is not None:
            step.figures.append(("bare ASGI floor at concurrency 32, req/s (the baseline)", f"{floor:.0f}", ""))
        for m in re.finditer(r"^(PUT|POST) (/v1/subscribers/\S+) at concurrency 32:\s+(\d+) req/s", text, re.M):
            value = float(m.group(3))
            step.figures.append((f"{m.group(1)} {m.group(2)} at concurrency 32, req/s", m.group(3), _ratio(value, floor, "of floor")))  # noqa: E501  # fmt: skip
        batch = _number(r"batch \(100 each, concurrency 4\):\s+(\d+) notifications/s", text)
        if batch is not None:
            step.figures.append(("batch notifications/s", f"{batch:.0f}", ""))
        for label, pattern in (
            ("subscriber upsert, c32, p99 ms", r"PUT /v1/subscribers/\{id\} at c\w+ 32:.+?p99\s+([\d.]+) ms"),
            ("token issue at concurrency 32, p99 ms", r"/tokens at concurrency 32:.*?p99\s+([\d.]+) ms"),
            ("bulk import, subscribers/s", r"POST /v1/subscribers/bulk .*?:\s+(\d+) subscribers/s"),
        ):
            value = _number(pattern, text)
            if value is not None:
                step.figures.append((label, f"{value:g}", ""))
        # The isolation cases: the quiet organisation Q's p99 under each flood, against its p99 alone measured just
        # before that case (the bench prints the ratio itself).
        for m in re.finditer(
            r"^\s+Q (\w+), (.+?)\s+p50\s+[\d.]+ ms\s+p99\s+([\d.]+) ms.*?= ([\d.]+)x alone", text, re.M
        ):
            step.figures.append((f"isolation: Q {m.group(1)} p99 ms while {m.group(2).strip()}", m.group(3), f"{m.group(4)}x its p99 alone"))  # noqa: E501  # fmt: skip
        worst = re.search(r"worst refusal flood: ([\d.]+)x .*?target (.+?): (MET|not met)", text)
        if worst:
            step.figures.append((f"target: {worst.group(2)}", f"worst {worst.group(1)}x", worst.group(3)))
    elif step.script == "soak.py":
        for label, pattern in (
            ("sends accepted (202)", r"^sends accepted \(202\): (\d+)"),
            ("notifications delivered", r"^notifications delivered: (\d+)"),
            ("lost", r"^lost: (\d+)"),
            ("duplicates shown", r"^duplicates shown[^:]*: (\d+)"),
            ("latency POST -> frame p50 ms", r"latency POST -> frame.*?p50 ([\d.]+) ms"),
            ("latency POST -> frame p99 ms", r"latency POST -> frame.*?p99 ([\d.]+) ms"),
        ):
            value = _number(pattern, text)
            if value is not None:
                step.figures.append((label, f"{value:g}", ""))
        memory = re.search(r"server memory \(RSS\): start ([\d.]+) MiB, end ([\d.]+) MiB", text)
        if memory:
            step.figures.append(("server RSS start -> end MiB", f"{memory.group(1)} -> {memory.group(2)}", ""))
    elif step.script == "signup.py":
        for m in re.finditer(r"^\s+(signup|confirm|organization|total)\s+p50\s+([\d.]+)\s+p99\s+([\d.]+)", text, re.M):
            step.figures.append((f"sign-up step {m.group(1)}, p50 ms (p99)", f"{m.group(2)} ({m.group(3)})", ""))
    elif step.script == "provision.py":
        for m in re.finditer(
            r"^\s+(\d+)\s+([\d.]+)\s+[\d.]+\s+([\d.]+)\s+[\d.]+\s+([\d.]+)\s+[\d.]+\s+([\d.]+)x", text, re.M
        ):
            step.figures.append((f"organisation created (claim) at {m.group(1)} orgs, p50 ms", m.group(2), f"{m.group(5)}x faster than migrating"))  # noqa: E501  # fmt: skip
    elif step.script == "schemas.py":
        rows = re.findall(
            r"^\s+(\d+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+(\d+)$", text, re.M
        )
        if rows:
            first, last = rows[0], rows[-1]
            step.figures.append((f"tenant read p50 ms at {last[0]} schemas", last[3], _ratio(float(last[3]), float(first[3]), f"of {first[0]} schemas")))  # noqa: E501  # fmt: skip
            step.figures.append((f"catalog MiB at {last[0]} schemas", last[5], ""))
        for m in re.finditer(r"^\s+(nothing to apply.*|one migration.*)$", text, re.M):
            step.figures.append(("migrate_schemas", m.group(1).strip(), ""))
    if step.status != "ok":
        step.figures.append(("status", step.status, ""))


def run(step: Step, quick: bool) -> None:
    command = [sys.executable, str(BENCH / step.script), *(step.quick if quick else step.full)]
    print(f"== {step.name}: {' '.join(command[1:])}", flush=True)
    started = time.monotonic()
    try:
        done = subprocess.run(
            command,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=step.timeout,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        step.output = done.stdout + (f"\n[stderr]\n{done.stderr[-4000:]}" if done.stderr.strip() else "")
        step.status = "ok" if done.returncode == 0 else f"exit {done.returncode}"
    except subprocess.TimeoutExpired as expired:
        out = expired.stdout.decode() if isinstance(expired.stdout, bytes) else expired.stdout or ""
        step.output = out + f"\n[timed out after {step.timeout} s]"
        step.status = "timed out"
    step.seconds = time.monotonic() - started
    try:
        extract(step)
    except (ValueError, IndexError) as error:  # an output this parser does not know: keep the run's other results
        step.figures.append(("(figures not read)", f"{type(error).__name__}: {error}", ""))
    print(f"   {step.status} in {step.seconds:.0f} s", flush=True)


def write(results: list[Step], quick: bool, path: Path) -> None:
    lines = [
        "# Benchmark results",
        "",
        f"Produced by `infra/bench/run{' --quick' if quick else ''}` on "
        f"{datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}. Every figure below comes from this run.",
        "",
        *machine(),
        "",
    ]
    if quick:
        lines += ["**Quick mode**: every benchmark shrunk to a smoke run. These figures say nothing about speed.", ""]
    lines += [
        "Absolute figures move with the machine and with whatever else runs on it; read the ratios against the "
        "baselines measured in the same run.",
        "",
        "| benchmark | figure | value | ratio |",
        "|---|---|---|---|",
    ]
    for step in results:
        for figure, value, ratio in step.figures or [("(no figure recognised)", step.status, "")]:
            lines.append(f"| {step.name} | {figure} | {value} | {ratio} |")
    for step in results:
        args = " ".join(step.quick if quick else step.full)
        lines += [
            "",
            f"## {step.name}",
            "",
            f"`.venv/bin/python infra/bench/{step.script}{(' ' + args) if args else ''}`: {step.status}, "
            f"{step.seconds:.0f} s",
            "",
            "```",
            step.output.rstrip(),
            "```",
        ]
    path.write_text("\n".join(lines) + "\n")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="a short smoke run of every benchmark")
    parser.add_argument("--only", default="", help="comma-separated benchmark scripts to run (e.g. schemas.py)")
    parser.add_argument("--output", default=str(BENCH / "RESULTS.md"))
    args = parser.parse_args()
    chosen = [s for s in steps() if not args.only or s.script in args.only.split(",")]
    for step in chosen:
        run(step, args.quick)
    write(chosen, args.quick, Path(args.output))
    print(f"wrote {args.output}")
    return 0 if all(step.status == "ok" for step in chosen) else 1


if __name__ == "__main__":
    sys.exit(main())
