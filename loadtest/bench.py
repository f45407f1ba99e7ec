"""The throughput suite: kvshard against a stock memcached under memaslap, scenario by scenario,
with a table, JSON/CSV results and plots.

    python -m loadtest.bench [--quick] [--rounds 3] [--seconds 20] [--out DIR]

Scenarios (memaslap ``-T 2``, 100-byte values unless said otherwise):

  default    memaslap's default mix: 90% get, 10% set, single-key gets, ``-c 64``
  multiget   gets of 10 keys at once (``-d 10``)
  binary     the default mix over the binary protocol (``-B``)
  set-only   100% sets, keys 16-20 bytes (a ``-F`` config file)
  c16        the default mix with 16 connections
  c256       the default mix with 256 connections

(``-c 64`` is the default scenario.) Each round runs every scenario as A B B A (kvshard,
memcached, memcached, kvshard), each run on a freshly started server (``-t 2``, default memory)
that is stopped afterwards; ``--quick`` is one round of A B, 4 s per run (about a minute).
Without memcached installed only kvshard runs. Per run we keep memaslap's TPS, the server's CPU
time per operation (its process tree, from /proc) and, from memaslap's ``-S`` statistics, the
mean latency and an approximate 99th percentile (the upper edge of the log2 bucket where it
falls). Written to ``--out`` (default ``results/bench-<time>``): ``results.json`` (settings,
every run, the medians), ``results.csv`` (one row per run) and three plots: ``throughput.png``,
``latency.png``, ``cpu.png``. The table printed at the end gives per scenario the median TPS of
each server and their ratio (the median over rounds of each round's ratio).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Final, Sequence

from .memaslap_ab import (
    find_memaslap, free_port, kvshard_argv, memcached_argv, run_memaslap, start_server, stop_server,
    tree_cpu_seconds,
)

__all__ = ["main", "SCENARIOS", "BenchRun", "parse_latency"]

SET_ONLY_CONFIG: Final = "key\n16 20 1\nvalue\n100 100 1\ncmd\n0 1.0\n1 0.0\n"


@dataclass(frozen=True)
class Scenario:
    name: str
    concurrency: int
    extra: tuple[str, ...]
    about: str


SCENARIOS: Final = (
    Scenario("default", 64, (), "90% get / 10% set, -c 64"),
    Scenario("multiget", 64, ("-d", "10"), "10-key gets (-d 10)"),
    Scenario("binary", 64, ("-B",), "binary protocol (-B)"),
    Scenario("set-only", 64, ("-F", "{set_only}"), "100% sets"),
    Scenario("c16", 16, (), "default mix, -c 16"),
    Scenario("c256", 256, (), "default mix, -c 256"),
)
SERVERS: Final = ("kvshard", "memcached")


@dataclass(frozen=True)
class BenchRun:
    round: int
    scenario: str
    server: str
    tps: float
    ops: int
    cpu_us_per_op: float
    latency_avg_us: float | None
    latency_p99_us: float | None
    errors: int


_TOTAL_RE: Final = re.compile(r"^Total Statistics \(\d+ events\)\n(?P<body>(?:[ \t].*\n?)+)", re.M)


def parse_latency(stdout: str) -> tuple[float, float] | None:
    """(mean, approximate p99) latency in microseconds from memaslap's last ``Total Statistics
    (N events)`` block (printed with ``-S``), or None. The p99 is the upper edge of the log2
    bucket it falls in (row ``k:`` lists the counts of [2**k, 2**(k+1)) and the next three)."""
    blocks = list(_TOTAL_RE.finditer(stdout))
    if not blocks:
        return None
    body = blocks[-1]["body"]
    avg = re.search(r"Avg:\s+(\d+(?:\.\d+)?)", body)
    buckets: list[tuple[int, int]] = []
    for row in re.finditer(r"^\s+(\d+):((?:\s+\d+)+)\s*$", body, re.M):
        first = int(row[1])
        buckets += [(first + i, int(n)) for i, n in enumerate(row[2].split())]
    if avg is None or not buckets:
        return None
    total = sum(n for _, n in buckets)
    seen = 0
    p99 = float(2 ** (buckets[-1][0] + 1))
    for power, n in buckets:
        seen += n
        if seen >= 0.99 * total:
            p99 = float(2 ** (power + 1))
            break
    return float(avg[1]), p99


def _one(scenario: Scenario, server: str, rnd: int, seconds: int, memaslap: str, memcached: str | None,
         set_only: str) -> BenchRun:
    port = free_port()
    argv = kvshard_argv(port, 2, ["--metrics-port", "0"]) if server == "kvshard" else memcached_argv(memcached or "memcached", port, 2, [])
    running = start_server(server, argv, port)
    try:
        cpu0 = tree_cpu_seconds(running.proc.pid)
        extra = [a.replace("{set_only}", set_only) for a in scenario.extra] + ["-S", f"{seconds}s"]
        run = run_memaslap(port, seconds, concurrency=scenario.concurrency, extra=extra, binary=memaslap)
        cpu1 = tree_cpu_seconds(running.proc.pid)
    finally:
        stop_server(running)
    if run.result is None or run.returncode != 0:
        raise RuntimeError(f"memaslap failed ({scenario.name} against {server}): {'; '.join(run.problems())}")
    latency = parse_latency(run.stdout)
    return BenchRun(rnd, scenario.name, server, run.result.tps, run.result.ops,
                    (cpu1 - cpu0) * 1e6 / max(1, run.result.ops),
                    latency[0] if latency else None, latency[1] if latency else None, run.result.error_count)


def _median(values: Sequence[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return statistics.median(known) if known else None


def summarize(runs: Sequence[BenchRun], servers: Sequence[str]) -> list[dict[str, object]]:
    """Per scenario: each server's median TPS, CPU/op and latencies, and the ratio kvshard /
    memcached (median over rounds of the per-round ratio of mean TPS)."""
    rows: list[dict[str, object]] = []
    for scenario in dict.fromkeys(r.scenario for r in runs):
        row: dict[str, object] = {"scenario": scenario}
        mine = [r for r in runs if r.scenario == scenario]
        for server in servers:
            theirs = [r for r in mine if r.server == server]
            row[f"{server}_tps"] = _median([r.tps for r in theirs])
            row[f"{server}_cpu_us_per_op"] = _median([r.cpu_us_per_op for r in theirs])
            row[f"{server}_latency_avg_us"] = _median([r.latency_avg_us for r in theirs])
            row[f"{server}_latency_p99_us"] = _median([r.latency_p99_us for r in theirs])
        if len(servers) == 2:
            ratios = []
            for rnd in sorted({r.round for r in mine}):
                a = [r.tps for r in mine if r.round == rnd and r.server == servers[0]]
                b = [r.tps for r in mine if r.round == rnd and r.server == servers[1]]
                if a and b:
                    ratios.append(statistics.fmean(a) / statistics.fmean(b))
            row["ratio"] = statistics.median(ratios) if ratios else None
        rows.append(row)
    return rows


def _plots(rows: list[dict[str, object]], servers: Sequence[str], out: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scenarios = [str(r["scenario"]) for r in rows]
    made = []
    charts = (
        ("throughput.png", "Throughput (memaslap TPS, median)", "operations per second", ("{}_tps",)),
        ("latency.png", "Latency (memaslap, median of runs): bars mean, ticks ~p99", "microseconds",
         ("{}_latency_avg_us", "{}_latency_p99_us")),
        ("cpu.png", "Server CPU per operation (median)", "microseconds of CPU per op", ("{}_cpu_us_per_op",)),
    )
    colours = {"kvshard": "tab:blue", "memcached": "tab:orange"}
    for filename, title, ylabel, fields in charts:
        fig, ax = plt.subplots(figsize=(9, 4.8))
        width = 0.8 / len(servers)
        for i, server in enumerate(servers):
            xs = [j + (i - (len(servers) - 1) / 2) * width for j in range(len(scenarios))]
            values = [float(r.get(fields[0].format(server)) or 0) for r in rows]  # type: ignore[arg-type]
            bars = ax.bar(xs, values, width, label=server, color=colours.get(server))
            if len(fields) > 1:
                tops = [float(r.get(fields[1].format(server)) or 0) for r in rows]  # type: ignore[arg-type]
                ax.scatter(xs, tops, marker="_", s=400, color="black", zorder=3,
                           label="~p99" if i == 0 else None)
                ax.set_yscale("log")
            else:
                ax.bar_label(bars, fmt="%.0f" if "tps" in fields[0] else "%.1f", fontsize=7)
        ax.set_xticks(range(len(scenarios)), scenarios)
        ax.set_title(title)
        ax.set_ylabel(ylabel)
        ax.legend()
        fig.tight_layout()
        path = out / filename
        fig.savefig(path, dpi=110)
        plt.close(fig)
        made.append(path)
    return made


def _table(rows: list[dict[str, object]], servers: Sequence[str]) -> str:
    def num(value: object, fmt: str) -> str:
        return format(value, fmt) if isinstance(value, (int, float)) else "-"

    head = f"{'scenario':<10}" + "".join(f"{s + ' TPS':>15}{s[:4] + ' us/op':>12}" for s in servers)
    head += f"{'ratio':>8}" if len(servers) == 2 else ""
    lines = [head]
    for r in rows:
        line = f"{r['scenario']!s:<10}" + "".join(
            f"{num(r[f'{s}_tps'], ',.0f'):>15}{num(r[f'{s}_cpu_us_per_op'], '.2f'):>12}" for s in servers)
        if len(servers) == 2:
            line += f"{num(r.get('ratio'), '.3f'):>8}"
        lines.append(line)
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m loadtest.bench", description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="one round of A B, 4 s per run (about a minute)")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--seconds", type=int, default=20)
    p.add_argument("--scenarios", default=",".join(s.name for s in SCENARIOS), help="comma-separated subset")
    p.add_argument("--out", default=None, help="output directory (results/bench-<time>)")
    args = p.parse_args(argv)
    rounds, seconds = (1, 4) if args.quick else (args.rounds, args.seconds)
    chosen = [s for s in SCENARIOS if s.name in args.scenarios.split(",")]
    memaslap = find_memaslap()
    if memaslap is None:
        print("bench: memaslap/memcaslap not found (Debian: apt-get install libmemcached-tools)", file=sys.stderr)
        return 2
    if rounds < 1 or seconds < 1 or not chosen:
        print("bench: --rounds and --seconds must be at least 1, and --scenarios must name some", file=sys.stderr)
        return 2
    memcached = shutil.which("memcached")
    servers = SERVERS if memcached else SERVERS[:1]
    out = Path(args.out or f"results/bench-{time.strftime('%Y%m%d-%H%M%S')}")
    out.mkdir(parents=True, exist_ok=True)
    order = list(servers) if args.quick else list(servers) + list(servers)[::-1]
    total = rounds * len(chosen) * len(order)
    print(f"# bench: {len(chosen)} scenarios x {len(order)} runs x {rounds} rounds, {seconds} s each; "
          f"servers: {', '.join(servers)}; results in {out}", flush=True)
    runs: list[BenchRun] = []
    with tempfile.NamedTemporaryFile("w", suffix=".cfg", delete=False) as cfg:
        cfg.write(SET_ONLY_CONFIG)
    try:
        for rnd in range(1, rounds + 1):
            for scenario in chosen:
                for server in order:
                    run = _one(scenario, server, rnd, seconds, memaslap, memcached, cfg.name)
                    runs.append(run)
                    latency = f"{run.latency_avg_us:.0f} us" if run.latency_avg_us is not None else "-"
                    print(f"[{len(runs)}/{total}] round {rnd} {scenario.name:<9} {server:<9} {run.tps:>9,.0f} TPS "
                          f"{run.cpu_us_per_op:6.2f} us/op CPU  latency avg {latency}", flush=True)
    finally:
        os.unlink(cfg.name)
    rows = summarize(runs, servers)
    settings = {"rounds": rounds, "seconds": seconds, "servers": list(servers), "cpus": os.cpu_count(),
                "scenarios": {s.name: s.about for s in chosen}, "python": sys.version.split()[0], "time": time.time()}
    (out / "results.json").write_text(json.dumps({"settings": settings, "runs": [asdict(r) for r in runs],
                                                  "summary": rows}, indent=2))
    with open(out / "results.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(asdict(runs[0])))
        writer.writeheader()
        writer.writerows(asdict(r) for r in runs)
    plots = _plots(rows, servers, out)
    print(_table(rows, servers))
    print(f"# wrote {out / 'results.json'}, {out / 'results.csv'}, " + ", ".join(str(p) for p in plots))
    return 0


if __name__ == "__main__":
    sys.exit(main())
