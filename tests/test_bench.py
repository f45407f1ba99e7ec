"""The load-test suite's commands: ``loadtest.bench --quick`` writes its table, JSON, CSV and
plots; ``loadtest.memory`` measures bytes per item; memaslap's latency block is parsed."""

from __future__ import annotations

import csv
import json
import re
import subprocess
import sys
from pathlib import Path

from loadtest.bench import parse_latency
from tests.servers import require_tool

MEMASLAP_TOTALS = """\
Total Statistics (183581 events)
   Min:        16
   Max:     13578
   Avg:       261
   Geo:    180.24
   Std:    294.45
   Log2 Dist:
       4:        1     3964    25480    34072
       8:    47331    54051    16219     2116
      12:      259       59       29

cmd_get: 0
"""


def test_latency_from_memaslap_totals() -> None:
    avg, p99 = parse_latency(MEMASLAP_TOTALS)  # type: ignore[misc]
    # 183581 events, 99% of them 181745: the buckets below 2048 us hold 181118, those below
    # 4096 us 183234, so the 99th percentile is in [2048, 4096) and reported as 4096
    assert avg == 261.0 and p99 == 4096.0
    assert parse_latency("no statistics here") is None


def test_bench_quick_writes_table_json_csv_and_plots(tmp_path: Path) -> None:
    require_tool("memcaslap")
    out = tmp_path / "bench"
    result = subprocess.run(
        [sys.executable, "-m", "loadtest.bench", "--quick", "--scenarios", "default,set-only", "--out", str(out)],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    table = result.stdout.split("scenario", 1)[1]
    assert re.search(r"^default\s+[\d,]+\s+[\d.]+", table, re.M) and re.search(r"^set-only\s", table, re.M), result.stdout
    data = json.loads((out / "results.json").read_text())
    servers = data["settings"]["servers"]
    assert {(r["scenario"], r["server"]) for r in data["runs"]} == {(s, v) for s in ("default", "set-only") for v in servers}
    assert all(r["tps"] > 0 and r["cpu_us_per_op"] > 0 and r["latency_avg_us"] > 0 for r in data["runs"])
    if len(servers) == 2:
        assert all(row["ratio"] > 0 for row in data["summary"]) and re.search(r"ratio", result.stdout)
    with open(out / "results.csv", newline="") as f:
        assert len(list(csv.DictReader(f))) == len(data["runs"])
    for name in ("throughput.png", "latency.png", "cpu.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name


def test_memory_per_item() -> None:
    result = subprocess.run([sys.executable, "-m", "loadtest.memory", "--items", "30000"], capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    summary = dict(re.findall(r"(\w+)=([\d.]+)", result.stdout.splitlines()[-1]))
    assert int(summary["items"]) == 30000
    # a 100-byte value and a 16-20 byte key cannot take fewer than ~116 bytes anywhere
    assert float(summary["kvshard_resident_per_item"]) > 116 and float(summary["kvshard_stats_bytes_per_item"]) > 116
