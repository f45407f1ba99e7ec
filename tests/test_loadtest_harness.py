"""The memaslap A/B harness without servers: its output parser, /proc CPU accounting, medians.

The canned memaslap outputs are real ones, captured from memcaslap (libmemcached-tools 1.1.4)
against memcached 1.6.18 and against a stub server that answers ERROR to everything.
"""

from __future__ import annotations

import math
import os
import re
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import loadtest.memaslap_ab as ab
from loadtest.memaslap_ab import (
    CpuTimes,
    MemaslapOutputError,
    MemaslapRun,
    RunRecord,
    descendants,
    free_port,
    memaslap_command,
    parse_memaslap,
    parse_proc_stat,
    read_proc_stat,
    slot_order,
    start_server,
    stop_server,
    summarize,
    tree_cpu_seconds,
    tree_cpu_times,
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
    assert (st.user_ticks, st.sys_ticks) == (11 + 33, 22 + 44)


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
    # the same tree split by mode: user = utime + cutime, system = stime + cstime
    times = tree_cpu_times(100, tmp_path)
    tick = os.sysconf("SC_CLK_TCK")
    assert times.user == pytest.approx((100 + 7 + 300 + 10 + 200) / tick)
    assert times.system == pytest.approx((50 + 3 + 100 + 10 + 200) / tick)
    assert times.total == pytest.approx(tree_cpu_seconds(100, tmp_path))
    with pytest.raises(ProcessLookupError):
        tree_cpu_times(999, tmp_path)


def test_cpu_times_difference() -> None:
    used = CpuTimes(user=5.5, system=2.0) - CpuTimes(user=1.5, system=0.5)
    assert (used.user, used.system, used.total) == (4.0, 1.5, 5.5)


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


# a child that waits for a line, then runs ``body`` until it has used 0.4 s of CPU, then says
# "done"; it reads its CPU clock (a system call) only every 200 iterations
BURN_LOOP = (
    "import os, sys, time\n"
    "zero = os.open('/dev/zero', os.O_RDONLY)\n"
    "print('ready', flush=True)\n"
    "sys.stdin.readline()\n"
    "end = time.process_time() + 0.4\n"
    "while time.process_time() < end:\n"
    "    for _ in range(200):\n"
    "        {body}\n"
    "print('done', flush=True)\n"
    "sys.stdin.read()\n"
)


def burn(body: str) -> CpuTimes:
    """The CPU a child spent running ``body`` for 0.4 s of CPU time, split by mode."""
    proc = subprocess.Popen([sys.executable, "-c", BURN_LOOP.format(body=body)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdin is not None and proc.stdout is not None
    try:
        assert proc.stdout.readline() == "ready\n"
        before = tree_cpu_times(proc.pid)
        proc.stdin.write("go\n")
        proc.stdin.flush()
        assert proc.stdout.readline() == "done\n"
        return tree_cpu_times(proc.pid) - before
    finally:
        proc.stdin.close()
        proc.wait(10)


def test_tree_cpu_times_splits_user_from_system() -> None:
    spin = burn("sum(range(100))")  # pure interpreter work: user time
    syscalls = burn("os.pread(zero, 1 << 16, 0)")  # mostly the kernel clearing 64 KiB: system time
    assert spin.total >= 0.35 and syscalls.total >= 0.35, (spin, syscalls)
    assert spin.user > 3 * spin.system, spin
    assert syscalls.system > syscalls.user, syscalls


# ----- servers ---------------------------------------------------------------------------------

ECHO_ENV_SERVER = """\
import os, socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1])))
s.listen()
while True:
    c, _ = s.accept()
    c.recv(100)
    c.sendall(("VERSION " + os.environ.get("KVSHARD_NO_EXTENSIONS", "unset") + " "
               + ("path" if os.environ.get("PATH") else "nopath") + "\\r\\n").encode())
    c.close()
"""


def _ask_version(port: int) -> bytes:
    import socket

    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(b"version\r\n")
        return s.recv(100)


@pytest.mark.parametrize("env, expected", [(None, b"VERSION unset path\r\n"),
                                           ({"KVSHARD_NO_EXTENSIONS": "1"}, b"VERSION 1 path\r\n")])
def test_start_server_adds_env_to_the_inherited_environment(env: dict[str, str] | None, expected: bytes) -> None:
    port = free_port()
    argv = [sys.executable, "-c", ECHO_ENV_SERVER, str(port)]
    server = start_server("echo-env", argv, port, env=env) if env is not None else start_server("echo-env", argv, port)
    try:
        assert _ask_version(port) == expected
    finally:
        stop_server(server)


# ----- medians ---------------------------------------------------------------------------------


def rec(rnd: int, slot: str, server: str, tps: float, cpu_s: float, ops: int = 1_000_000,
        user_s: float | None = None) -> RunRecord:
    # by default 3/4 of the CPU is user time
    user = cpu_s * 0.75 if user_s is None else user_s
    return RunRecord(rnd, slot, server, tps, ops, 10.0, cpu_s, 0, user, cpu_s - user)


def test_run_record_per_op() -> None:
    r = RunRecord(1, "A", "kvshard", 100_000, 2_000_000, 20.0, 10.0, 0, 6.0, 4.0)
    assert (r.cpu_us_per_op, r.user_us_per_op, r.sys_us_per_op) == (5.0, 3.0, 2.0)
    old_style = RunRecord(1, "A", "kvshard", 100_000, 2_000_000, 20.0, 10.0, 0)  # user/sys not measured
    assert old_style.cpu_us_per_op == 5.0 and math.isnan(old_style.user_us_per_op)


def test_slot_order_is_balanced() -> None:
    assert slot_order(False) == ("A", "B", "B", "A")
    order = slot_order(True)
    assert order == ("A", "B", "C", "C", "B", "A") and order == order[::-1]
    assert all(order.count(slot) == 2 for slot in "ABC")


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
    assert s.kvshard_user_us_per_op == pytest.approx(7.875) and s.kvshard_sys_us_per_op == pytest.approx(2.625)
    assert s.memcached_user_us_per_op == pytest.approx(3.0) and s.memcached_sys_us_per_op == pytest.approx(1.0)
    assert s.interp_tps is None and s.interp_round_ratios == []
    assert s.line() == (
        "summary: tps_ratio=0.600 kvshard_tps=60000 memcached_tps=100000 "
        "kvshard_cpu_us_per_op=10.50 memcached_cpu_us_per_op=4.00 "
        "kvshard_user_us_per_op=7.88 kvshard_sys_us_per_op=2.62 "
        "memcached_user_us_per_op=3.00 memcached_sys_us_per_op=1.00"
    )


def test_summary_line_keeps_the_fields_other_tools_parse() -> None:
    runs = [rec(1, "A", "kvshard", 50_000, 10.0), rec(1, "B", "memcached", 100_000, 4.0)]
    fields = dict(f.split("=") for f in summarize(runs).line().removeprefix("summary: ").split())
    assert list(fields)[:5] == ["tps_ratio", "kvshard_tps", "memcached_tps", "kvshard_cpu_us_per_op",
                                "memcached_cpu_us_per_op"]
    assert (fields["tps_ratio"], fields["kvshard_cpu_us_per_op"]) == ("0.500", "10.00")


def test_summarize_user_and_system_medians_are_taken_separately() -> None:
    # the median user and the median system time need not come from the same run
    runs = [
        rec(1, "A", "kvshard", 50_000, 10.0, user_s=9.0), rec(1, "B", "memcached", 100_000, 4.0, user_s=1.0),
        rec(1, "B", "memcached", 100_000, 4.0, user_s=3.0), rec(1, "A", "kvshard", 50_000, 10.0, user_s=5.0),
        rec(2, "A", "kvshard", 50_000, 10.0, user_s=6.0), rec(2, "B", "memcached", 100_000, 4.0, user_s=2.0),
    ]
    s = summarize(runs)
    assert s.kvshard_user_us_per_op == pytest.approx(6.0) and s.kvshard_sys_us_per_op == pytest.approx(4.0)
    assert s.memcached_user_us_per_op == pytest.approx(2.0) and s.memcached_sys_us_per_op == pytest.approx(2.0)


def interp_rounds() -> list[RunRecord]:
    runs = []
    tps = [(60_000, 100_000, 30_000), (40_000, 80_000, 24_000), (90_000, 100_000, 45_000)]  # A, B, C
    for rnd, (a, b, c) in enumerate(tps, 1):
        for slot in slot_order(True):
            tps, cpu = {"A": (a, 10.0), "B": (b, 4.0), "C": (c, 20.0 + rnd)}[slot]
            runs.append(rec(rnd, slot, {"A": "kvshard", "B": "memcached", "C": "kvshard-interp"}[slot], tps, cpu))
    return runs


def test_summarize_interpreted_slot() -> None:
    s = summarize(interp_rounds())
    # A/B as before: 0.6, 0.5, 0.9; C/B: 0.3, 0.3, 0.45; A/C: 2, 5/3, 2
    assert s.round_ratios == pytest.approx([0.6, 0.5, 0.9]) and s.tps_ratio == pytest.approx(0.6)
    assert s.interp_round_ratios == pytest.approx([0.3, 0.3, 0.45]) and s.interp_tps_ratio == pytest.approx(0.3)
    assert s.compiled_interp_round_ratios == pytest.approx([2.0, 5 / 3, 2.0])
    assert s.compiled_interp_ratio == pytest.approx(2.0)
    assert s.interp_tps == 30_000 and s.kvshard_tps == 60_000 and s.memcached_tps == 100_000
    assert s.interp_cpu_us_per_op == pytest.approx(22.0)
    assert s.interp_user_us_per_op == pytest.approx(16.5) and s.interp_sys_us_per_op == pytest.approx(5.5)
    assert s.line() == (
        "summary: tps_ratio=0.600 kvshard_tps=60000 memcached_tps=100000 "
        "kvshard_cpu_us_per_op=10.00 memcached_cpu_us_per_op=4.00 "
        "kvshard_user_us_per_op=7.50 kvshard_sys_us_per_op=2.50 "
        "memcached_user_us_per_op=3.00 memcached_sys_us_per_op=1.00 "
        "interp_tps=30000 interp_tps_ratio=0.300 interp_cpu_us_per_op=22.00 "
        "interp_user_us_per_op=16.50 interp_sys_us_per_op=5.50"
    )
    without_c = summarize(r for r in interp_rounds() if r.slot != "C")
    assert "interp" not in without_c.line() and without_c.tps_ratio == s.tps_ratio


# ----- main, with the runs faked -----------------------------------------------------------------


@pytest.fixture
def fake_runs(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, object]]:
    """Replaces the real runs (servers, memaslap) by canned records; returns what main asked for."""
    calls: list[dict[str, object]] = []
    tps = {"A": 60_000.0, "B": 100_000.0, "C": 30_000.0}

    def one_run(rnd: int, slot: str, name: str, argv_for: ab._ArgvFor, memaslap: str, seconds: int,
                threads: int, concurrency: int, value_size: int, extra: list[str] = [],
                scrape_url: str | None = None, scrape_every: float = 0) -> RunRecord:
        calls.append({"round": rnd, "slot": slot, "name": name, "argv": argv_for(4242), "env": dict(argv_for.env),
                      "extra": list(extra), "cwd": argv_for.cwd})
        return rec(rnd, slot, name, tps[slot], {"A": 10.0, "B": 4.0, "C": 20.0}[slot])

    monkeypatch.setattr(ab, "_one_run", one_run)
    return calls


def run_main(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    # --memcached: any executable will do, nothing is started; -V is asked for the header
    assert ab.main(["--memcached", sys.executable, "--memaslap", "memcaslap", "--seconds", "1", *args]) == 0
    return capsys.readouterr().out


def test_main_default_is_a_b_b_a_without_interp_fields(fake_runs: list[dict[str, object]],
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    out = run_main(capsys, "--rounds", "2")
    assert [c["slot"] for c in fake_runs] == list("ABBA") * 2
    assert all(c["env"] == {} and c["extra"] == [] for c in fake_runs)
    assert " -d " not in out and "kvshard-interp" not in out and "interp_" not in out
    assert "user_us_per_op=   7.50 sys_us_per_op=   2.50" in out
    assert "median user us/op: kvshard=7.50 memcached=3.00\n" in out
    assert "median sys us/op: kvshard=2.50 memcached=1.00\n" in out
    assert out.splitlines()[-1] == (
        "summary: tps_ratio=0.600 kvshard_tps=60000 memcached_tps=100000 kvshard_cpu_us_per_op=10.00 "
        "memcached_cpu_us_per_op=4.00 kvshard_user_us_per_op=7.50 kvshard_sys_us_per_op=2.50 "
        "memcached_user_us_per_op=3.00 memcached_sys_us_per_op=1.00"
    )


def test_main_interpreted_and_multiget(fake_runs: list[dict[str, object]], capsys: pytest.CaptureFixture[str]) -> None:
    out = run_main(capsys, "--rounds", "2", "--interpreted", "--multiget", "10", "--kvshard-args", "-m 128")
    assert [c["slot"] for c in fake_runs] == list("ABCCBA") * 2
    by_slot = {c["slot"]: c for c in fake_runs}
    assert by_slot["C"]["env"] == {"KVSHARD_NO_EXTENSIONS": "1"}
    assert by_slot["A"]["env"] == {} and by_slot["B"]["env"] == {}
    assert by_slot["C"]["argv"] == by_slot["A"]["argv"] and by_slot["C"]["argv"][-2:] == ["-m", "128"]
    assert all(c["extra"] == ["-d", "10"] for c in fake_runs)
    assert re.search(r"^# memaslap: .* -t 1s -d 10$", out, re.M), out
    assert re.search(r"^# C kvshard-interp: KVSHARD_NO_EXTENSIONS=1 \S+ -m kvshard\.cli .* -p PORT ", out, re.M), out
    assert "# 2 rounds of A B C C B A" in out
    assert "median tps: kvshard=60000 memcached=100000 kvshard-interp=30000\n" in out
    assert "median ratio kvshard-interp/memcached over rounds: 0.300 (per round: 0.300 0.300)" in out
    assert "median ratio kvshard/kvshard-interp over rounds: 2.000" in out
    assert "median sys us/op: kvshard=2.50 memcached=1.00 kvshard-interp=5.00\n" in out
    summary = out.splitlines()[-1]
    assert summary.startswith("summary: tps_ratio=0.600 kvshard_tps=60000 memcached_tps=100000 ")
    assert summary.endswith(" interp_tps=30000 interp_tps_ratio=0.300 interp_cpu_us_per_op=20.00 "
                            "interp_user_us_per_op=15.00 interp_sys_us_per_op=5.00")


def test_main_interpreted_with_a_kvshard_baseline(fake_runs: list[dict[str, object]],
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    out = run_main(capsys, "--rounds", "1", "--interpreted", "--baseline-kvshard-args", "--metrics-port 0")
    names = {c["slot"]: (c["name"], c["argv"]) for c in fake_runs}
    assert names["B"][0] == "kvshard-B" and names["B"][1][-2:] == ["--metrics-port", "0"]
    assert names["C"][0] == "kvshard-interp" and "--metrics-port" not in names["C"][1]
    assert "# BASELINE" in out and "interp_tps_ratio=0.300" in out


def test_main_baseline_tree_runs_kvshard_from_that_directory(fake_runs: list[dict[str, object]],
                                                             capsys: pytest.CaptureFixture[str],
                                                             tmp_path: Path) -> None:
    out = run_main(capsys, "--rounds", "1", "--interpreted", "--baseline-tree", str(tmp_path))
    by_slot = {c["slot"]: c for c in fake_runs}
    assert by_slot["B"]["name"] == "kvshard-B" and by_slot["B"]["cwd"] == str(tmp_path)
    assert by_slot["B"]["argv"][1:3] == ["-m", "kvshard.cli"]
    assert by_slot["A"]["cwd"] is None and by_slot["C"]["cwd"] is None
    assert f"# B kvshard-B: (cd {tmp_path}) " in out and "# BASELINE" in out


def test_start_server_runs_in_the_directory_given(tmp_path: Path) -> None:
    """``cwd`` reaches the server process (a tiny server that answers version with its cwd)."""
    port = ab.free_port()
    code = ("import os, socket\n"
            f"s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(('127.0.0.1', {port})); s.listen()\n"
            "while True:\n"
            "    c, _ = s.accept(); c.recv(100); c.sendall(b'VERSION ' + os.getcwd().encode() + b'\\r\\n'); c.close()\n")
    server = ab.start_server("cwd-echo", [sys.executable, "-c", code], port, timeout=10, cwd=str(tmp_path))
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            sock.sendall(b"version\r\n")
            assert sock.recv(4096) == b"VERSION " + str(tmp_path).encode() + b"\r\n"
    finally:
        ab.stop_server(server)


def test_main_rejects_a_multiget_below_one(fake_runs: list[dict[str, object]]) -> None:
    assert ab.main(["--memcached", sys.executable, "--memaslap", "memcaslap", "--multiget", "0"]) == 2
    assert fake_runs == []


def test_main_reference_is_slot_c(fake_runs: list[dict[str, object]], capsys: pytest.CaptureFixture[str]) -> None:
    out = run_main(capsys, "--rounds", "1", "--reference")
    assert [c["slot"] for c in fake_runs] == list("ABCCBA")
    by_slot = {c["slot"]: c for c in fake_runs}
    assert by_slot["C"]["name"] == "reference"
    assert by_slot["C"]["argv"][1:3] == ["-m", "loadtest.reference_server"]
    assert "median ratio reference/memcached over rounds: 0.300" in out
    assert out.splitlines()[-1].endswith(" reference_tps=30000 reference_tps_ratio=0.300 reference_cpu_us_per_op=20.00 "
                                         "reference_user_us_per_op=15.00 reference_sys_us_per_op=5.00")
    assert ab.main(["--memcached", sys.executable, "--reference", "--interpreted"]) == 2


@pytest.mark.parametrize("mode", ["--interpreted", "compiled"])
def test_reference_server_answers_get_set_and_version(mode: str) -> None:
    """The reference server of ``--reference``, both as plain Python and compiled by Cython."""
    port = ab.free_port()
    argv = ab.reference_argv(port, 2, [mode] if mode.startswith("--") else [])
    server = ab.start_server("reference", argv, port, timeout=120)
    try:
        assert f"reference server: {mode.strip('-')}".encode() in server.log_tail().encode()
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            sock.sendall(b"set k 5 0 3\r\nabc\r\nget k nope\r\n")
            got = b""
            while not got.endswith(b"END\r\n"):
                got += sock.recv(4096)
            assert got == b"STORED\r\nVALUE k 5 3\r\nabc\r\nEND\r\n"
    finally:
        ab.stop_server(server)
