"""The memaslap A/B harness without servers: its output parser, /proc CPU accounting, medians.

The canned memaslap outputs are real ones, captured from memcaslap (libmemcached-tools 1.1.4)
against memcached 1.6.18 and against a stub server that answers ERROR to everything.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from loadtest.memaslap_ab import (
    MemaslapOutputError,
    MemaslapRun,
    RunRecord,
    descendants,
    memaslap_command,
    parse_memaslap,
    parse_proc_stat,
    read_proc_stat,
    summarize,
    tree_cpu_seconds,
)

__all__: list[str] = []

SINGLE_GET = """\
servers: 127.0.0.1:46279
threads count: 2
concurrency: 32
run time: 10s
windows size: 10k
set proportion: set_prop=0.10
get proportion: get_prop=0.90
cmd_get: 1063798
cmd_set: 118217
get_misses: 0
verify_misses: 0
verify_failed: 0
written_bytes: 95742570
read_bytes: 197742623
object_bytes: 19387588

Run time: 10.0s Ops: 1182015 TPS: 118177 Net_rate: 28.0M/s
"""

MULTI_GET = """\
servers: 127.0.0.1:46279
threads count: 2
concurrency: 32
run time: 10s
windows size: 10k
set proportion: set_prop=0.10
get proportion: get_prop=0.90
cmd_get: 3247320
cmd_set: 360842
get_misses: 103197
verify_misses: 10308
verify_failed: 0
written_bytes: 277638610
read_bytes: 570450342
object_bytes: 59178088

Run time: 10.0s Ops: 3608162 TPS: 360784 Net_rate: 80.9M/s
"""

# against a stub answering ERROR to everything but version (tens of thousands of <FD ERROR
# lines, cut down here); note that TPS and verify_failed look healthy
ERROR_SERVER = """\
servers: 127.0.0.1:38165
threads count: 2
concurrency: 4
run time: 3s
windows size: 10k
set proportion: set_prop=0.10
get proportion: get_prop=0.90
<12 ERROR
<9 ERROR
<11 ERROR
<12 ERROR
<13 SERVER_ERROR out of memory storing object
cmd_get: 172607
cmd_set: 19181
get_misses: 172603
verify_misses: 17262
verify_failed: 0
written_bytes: 15534790
read_bytes: 1361669
object_bytes: 3145684

Run time: 3.0s Ops: 191788 TPS: 63923 Net_rate: 5.4M/s
"""

# memcaslap against a closed port: the header, then exit status 1 and nothing else
REFUSED = """\
servers: 127.0.0.1:45847
threads count: 2
concurrency: 4
run time: 3s
windows size: 10k
set proportion: set_prop=0.10
get proportion: get_prop=0.90
"""


def test_parse_single_get() -> None:
    r = parse_memaslap(SINGLE_GET)
    assert (r.run_time_s, r.ops, r.tps, r.net_rate_mb_s) == (10.0, 1182015, 118177.0, 28.0)
    assert r.stats == {
        "cmd_get": 1063798, "cmd_set": 118217, "get_misses": 0, "verify_misses": 0, "verify_failed": 0,
        "written_bytes": 95742570, "read_bytes": 197742623, "object_bytes": 19387588,
    }
    assert r.ops == r.stats["cmd_get"] + r.stats["cmd_set"]
    assert r.errors == {} and r.error_count == 0 and r.verify_failed == 0
    assert r.settings["concurrency"] == "32" and r.settings["servers"] == "127.0.0.1:46279"
    assert r.settings["run time"] == "10s"


def test_parse_multi_get_counts_misses_but_they_are_not_errors() -> None:
    r = parse_memaslap(MULTI_GET)
    assert r.tps == 360784 and r.stats["get_misses"] == 103197 and r.stats["verify_misses"] == 10308
    run = MemaslapRun(["memcaslap"], 0, MULTI_GET, "", False, 11.2, r)
    assert run.problems() == []


def test_parse_error_replies() -> None:
    r = parse_memaslap(ERROR_SERVER)
    assert r.errors == {"ERROR": 4, "SERVER_ERROR out of memory storing object": 1}
    assert r.error_count == 5 and r.verify_failed == 0 and r.tps == 63923
    run = MemaslapRun(["memcaslap"], 0, ERROR_SERVER, "", False, 4.2, r)
    (problem,) = run.problems()
    assert "5 error replies" in problem and "4x 'ERROR'" in problem


def test_parse_verify_failed_and_stderr_are_problems() -> None:
    text = SINGLE_GET.replace("verify_failed: 0", "verify_failed: 7")
    r = parse_memaslap(text)
    assert r.verify_failed == 7
    run = MemaslapRun(["memcaslap"], 0, text, "Server 127.0.0.1:1 disconnect\n", False, 11.0, r)
    problems = run.problems()
    assert any("verify_failed=7" in p for p in problems)
    assert any("stderr" in p and "disconnect" in p for p in problems)


def test_parse_refused_has_no_statistics() -> None:
    with pytest.raises(MemaslapOutputError):
        parse_memaslap(REFUSED)
    run = MemaslapRun(["memcaslap"], 1, REFUSED, "", False, 0.2, None, "no Run time line")
    assert any("status 1" in p for p in run.problems())
    assert any("no final statistics" in p for p in run.problems())


def test_parse_takes_the_final_block_after_periodic_ones() -> None:
    # with -S memaslap prints periodic tables first; only the final block counts
    text = "cmd_get: 1\ncmd_set: 1\n\nGet Statistics\n" + SINGLE_GET
    assert parse_memaslap(text).stats["cmd_get"] == 1063798


def test_memaslap_command_uses_loopback_and_seconds() -> None:
    argv = memaslap_command("memcaslap", 4242, 10, threads=2, concurrency=32, extra=["--verify=0.1"])
    assert argv == ["memcaslap", "-s", "127.0.0.1:4242", "-T", "2", "-c", "32", "-X", "100", "-t", "10s", "--verify=0.1"]


# ----- /proc ------------------------------------------------------------------------------------

STAT_FIELDS_AFTER_COMM = "S 1 100 100 0 -1 4194560 500 0 0 0 {u} {s} {cu} {cs} 20 0 3 0 {start} 1000 100"


def stat_line(pid: int, comm: str, ppid: int, u: int, s: int, cu: int = 0, cs: int = 0, start: int = 5) -> str:
    rest = STAT_FIELDS_AFTER_COMM.format(u=u, s=s, cu=cu, cs=cs, start=start).split()
    rest[1] = str(ppid)
    return f"{pid} ({comm}) {' '.join(rest)}\n"


def test_parse_proc_stat_with_awkward_comm() -> None:
    st = parse_proc_stat(stat_line(4321, "a) (b c)", 77, u=11, s=22, cu=33, cs=44, start=999))
    assert (st.pid, st.comm, st.state, st.ppid) == (4321, "a) (b c)", "S", 77)
    assert (st.utime, st.stime, st.cutime, st.cstime, st.starttime) == (11, 22, 33, 44, 999)
    assert st.cpu_ticks == 110


def test_parse_proc_stat_of_this_process() -> None:
    st = read_proc_stat(os.getpid())
    assert st is not None and st.pid == os.getpid() and st.ppid == os.getppid()
    assert read_proc_stat(2**22 + 12345) is None  # above pid_max: never exists


def test_tree_cpu_on_a_canned_proc(tmp_path: Path) -> None:
    # 100 -> 101 -> 102, 100 -> 103; 200 is unrelated; 104 is a child of the unrelated 200
    tree = {
        100: stat_line(100, "server", 1, u=100, s=50, cu=7, cs=3),
        101: stat_line(101, "shard 0", 100, u=300, s=100),
        102: stat_line(102, "helper", 101, u=10, s=10),
        103: stat_line(103, "shard 1", 100, u=200, s=200),
        200: stat_line(200, "other", 1, u=9999, s=9999),
        104: stat_line(104, "other child", 200, u=9999, s=9999),
    }
    for pid, line in tree.items():
        (tmp_path / str(pid)).mkdir()
        (tmp_path / str(pid) / "stat").write_text(line)
    (tmp_path / "self").mkdir()  # non-numeric entries are ignored
    assert sorted(st.pid for st in descendants(100, tmp_path)) == [101, 102, 103]
    ticks = (100 + 50 + 7 + 3) + (300 + 100) + (10 + 10) + (200 + 200)
    assert tree_cpu_seconds(100, tmp_path) == pytest.approx(ticks / os.sysconf("SC_CLK_TCK"))
    with pytest.raises(ProcessLookupError):
        tree_cpu_seconds(999, tmp_path)


BURNER = textwrap.dedent(
    """
    import subprocess, sys, time

    def burn(seconds):
        end = time.process_time() + seconds
        while time.process_time() < end:
            pass

    child = "import time\\nend = time.process_time() + {s}\\nwhile time.process_time() < end: pass\\n"
    # one child burns and exits (we wait for it: its CPU moves to our cutime) ...
    subprocess.run([sys.executable, "-c", child.format(s=0.3)], check=True)
    # ... one burns and stays alive (its CPU is in its own utime/stime)
    alive = subprocess.Popen([sys.executable, "-c", child.format(s=0.3) + "print('done', flush=True)\\ninput()\\n"],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    burn(0.2)
    assert alive.stdout.readline() == "done\\n"
    print(alive.pid, flush=True)
    sys.stdin.readline()
    alive.stdin.close()
    alive.wait()
    """
)


def test_tree_cpu_counts_live_and_reaped_children() -> None:
    proc = subprocess.Popen([sys.executable, "-c", BURNER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        before = tree_cpu_seconds(proc.pid)
        assert proc.stdout is not None and proc.stdin is not None
        alive_pid = int(proc.stdout.readline())
        tree = descendants(proc.pid)
        after = tree_cpu_seconds(proc.pid)
        own = read_proc_stat(proc.pid)
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        proc.wait(10)
    assert [st.pid for st in tree] == [alive_pid]
    assert own is not None and own.cutime + own.cstime >= 0.2 * os.sysconf("SC_CLK_TCK")  # the reaped child
    # 0.3 (reaped child) + 0.3 (live child) + 0.2 (parent) burnt, plus three interpreter start-ups
    assert 0.7 <= after - before <= 3.0, (before, after)


# ----- medians ---------------------------------------------------------------------------------


def rec(rnd: int, slot: str, server: str, tps: float, cpu_s: float, ops: int = 1_000_000) -> RunRecord:
    return RunRecord(rnd, slot, server, tps, ops, 10.0, cpu_s, 0)


def test_summarize_medians_and_per_round_ratio() -> None:
    runs = [
        rec(1, "A", "kvshard", 50_000, 10.0), rec(1, "B", "memcached", 100_000, 4.0),
        rec(1, "B", "memcached", 100_000, 4.0), rec(1, "A", "kvshard", 70_000, 12.0),  # round 1: 0.6
        rec(2, "A", "kvshard", 40_000, 11.0), rec(2, "B", "memcached", 80_000, 5.0),
        rec(2, "B", "memcached", 120_000, 5.0), rec(2, "A", "kvshard", 40_000, 11.0),  # round 2: 0.4
        rec(3, "A", "kvshard", 90_000, 9.0), rec(3, "B", "memcached", 100_000, 3.0),
        rec(3, "B", "memcached", 100_000, 3.0), rec(3, "A", "kvshard", 90_000, 9.0),  # round 3: 0.9
    ]
    s = summarize(runs)
    assert s.round_ratios == pytest.approx([0.6, 0.4, 0.9])
    assert s.tps_ratio == pytest.approx(0.6)
    assert s.kvshard_tps == 60_000 and s.memcached_tps == 100_000
    assert s.kvshard_cpu_us_per_op == pytest.approx(10.5) and s.memcached_cpu_us_per_op == pytest.approx(4.0)
    assert s.line() == (
        "summary: tps_ratio=0.600 kvshard_tps=60000 memcached_tps=100000 "
        "kvshard_cpu_us_per_op=10.50 memcached_cpu_us_per_op=4.00"
    )
