"""``python -m framework.bench`` runs end to end: every workload delivers all its messages (the
bench asserts the receiver's counts) and the summary line carries every rate."""

from __future__ import annotations

import os
import re
import subprocess
import sys

from framework import extensions


def test_bench_runs_and_reports_every_rate() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "framework.bench", "--rounds", "1", "--messages", "20000",
         "--baseline-messages", "1000", "--roundtrips", "64"],
        capture_output=True, text=True, timeout=120, env=os.environ.copy(),
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    expected_core = "interpreted" if extensions.extensions_disabled() else "compiled"
    assert lines[0] == f"core: {expected_core}"
    summary = lines[-1]
    rates = dict(re.findall(r"(\w+)=([\d.]+)", summary))
    assert summary.startswith("summary: ")
    assert set(rates) == {
        "one_way_msgs_per_s", "roundtrips_per_s", "ratio_vs_mp_queue",
        "pipelined_roundtrips_per_s", "one_way_fixed_msgs_per_s",
    }
    assert all(float(rate) > 0 for rate in rates.values())
