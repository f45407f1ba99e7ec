"""A/B benchmark of kvshard against a stock memcached, driven by memaslap.

Run: ``python -m loadtest.memaslap_ab [--rounds 3] [--seconds 20] [--kvshard-args "-m 256"]
[--multiget N] [--interpreted]``

``--baseline-kvshard-args "FLAGS"`` puts kvshard with FLAGS in slot B instead of memcached, to
measure what a kvshard feature costs (``--baseline-kvshard-args "--metrics-port 0"``: the
metrics endpoint, which slot A has on its default port 9150). ``--baseline-tree DIR`` puts in
slot B kvshard run from another source tree (``python -m kvshard.cli`` with DIR as its working
directory, so DIR's packages are imported, with this Python's dependencies): an older commit
against the current code in one run, e.g. ``git worktree add /tmp/old HEAD~3`` then
``--baseline-tree /tmp/old`` (add ``--kvshard-args`` / ``--baseline-kvshard-args`` as needed,
and ``--interpreted`` with ``KVSHARD_NO_EXTENSIONS=1`` to compare interpreted cores).

Method
------
``--reference`` makes slot C ``python -m loadtest.reference_server``: a minimal uvloop server,
compiled by Cython, that answers get/set/version from a dict per worker process and never
forwards (see its docstring). It is the floor of this runtime: how close kvshard's request path
is to what CPython, uvloop and the kernel's sockets cost with almost nothing of ours.

Two servers (three with ``--interpreted`` or ``--reference``), all with two workers and listening on 127.0.0.1
only, on free ports:

* A, kvshard: ``python -m kvshard.cli -l 127.0.0.1 -p PORT -t 2`` (``sys.executable``, plus
  ``--kvshard-args``);
* B, memcached: ``memcached -l 127.0.0.1 -p PORT -U 0 -t 2`` (``-u root`` when run as root, plus
  ``--memcached-args``). Neither gets ``-m``, so both use their default memory limit (64 MB for
  memcached; with 100-byte values memcached starts evicting after ~15 s of this load, which
  shows as ``get_misses`` and is part of the measurement);
* C, kvshard-interp (only with ``--interpreted``): A's command, unchanged, with
  ``KVSHARD_NO_EXTENSIONS=1`` added to its environment, so kvshard (and every shard process it
  starts, which inherit the environment) runs its interpreted ``.py`` modules instead of the
  Cython-compiled ones. It measures what compiling the hot modules buys. The harness prints how
  many compiled extension modules it finds in kvshard's packages (on disk, nothing imported):
  with none, A runs interpreted too and A/C should come out near 1.

Each round runs the servers in the order A B B A, or A B C C B A with ``--interpreted`` (every
server twice per round, placed symmetrically), so a trend over time (thermal, a noisy
neighbour) hurts all alike; ``--rounds`` rounds (default 3). **Every run starts its server
fresh** (empty cache, new process) and stops it afterwards (SIGTERM, then SIGKILL after 10 s),
so no run inherits another's data or evictions.

One run: start the server and wait until it answers ``version``; read the server's CPU time;
run ``memaslap -s 127.0.0.1:PORT -T 2 -c 64 -X 100 -t Ns [-d M]`` (Debian calls the binary
``memcaslap``; its default workload is 90% get, 10% set, single-key gets, 64 connections over
2 client threads, 100-byte values); read the server's CPU time again. memaslap stops by itself
after N seconds (``--seconds``, default 20); we kill it only if it has not exited 30 s later.
``--multiget M`` (M > 1) passes memaslap's ``-d M`` ("division"): it gathers up to M of its
gets into one multi-key ``get``. As far as its output shows (``cmd_get``:``cmd_set`` stays 9:1
with ``-d``, and ``Ops`` is their sum), memaslap counts every key as one operation, so TPS and
us/op below are per key, not per request.
``--binary`` passes ``-B``. Both apply to every slot alike.

From memaslap's final statistics we take the line
``Run time: 20.0s Ops: 2363310 TPS: 118163 Net_rate: 28.0M/s`` (TPS = ops / run time) and count
the server error replies it prints (``<FD ERROR``, ``<FD SERVER_ERROR ...`` and the like).

CPU: the server's CPU time is read from ``/proc/PID/stat`` of the server process and all its
live descendants (kvshard runs one process per shard; memcached's threads are counted in its
one process), in one scan before and one after memaslap: user time = utime + cutime, system
time = stime + cstime, total = user + system. Each difference divided by memaslap's ops is the
server's CPU cost in microseconds per operation: total (``cpu_us_per_op``), user
(``user_us_per_op``: the server's own code, the interpreter, libraries) and system
(``sys_us_per_op``: the kernel working on its behalf, in its system calls: socket reads and
writes, polling).
Resolution is one clock tick (usually 10 ms) per reading, per mode, negligible over a run of
seconds.

Reported: every run (TPS, total/user/system CPU us/op); per server, the median TPS over all its
runs and the median total, user and system CPU us/op; the median over rounds of the per-round
ratio (mean kvshard TPS of the round / mean memcached TPS of the round); with
``--interpreted`` also kvshard-interp's medians, the median over rounds of the per-round ratio
kvshard-interp / memcached, and that of kvshard / kvshard-interp (what compiling buys). The
last line is::

    summary: tps_ratio=<r> kvshard_tps=<n> memcached_tps=<n> kvshard_cpu_us_per_op=<x> memcached_cpu_us_per_op=<y>
      kvshard_user_us_per_op=<x> kvshard_sys_us_per_op=<x> memcached_user_us_per_op=<y> memcached_sys_us_per_op=<y>
      [interp_tps=<n> interp_tps_ratio=<r> interp_cpu_us_per_op=<z> interp_user_us_per_op=<z> interp_sys_us_per_op=<z>]

(one line; the ``interp_*`` fields only with ``--interpreted``; ``interp_tps_ratio`` is
kvshard-interp / memcached, median over rounds; with ``--reference`` the same fields are named
``reference_*`` and describe slot C, the reference server). With ``--baseline-kvshard-args`` the
``memcached*`` numbers describe slot B, and so do the denominators of the ratios.

Client and servers share the machine, so TPS is a property of the whole box; CPU us/op is the
fairer comparison of the servers' efficiency. For the numbers to mean anything, run on an
otherwise idle machine. ``--self-test`` (hidden) runs memcached in both slots to check the
harness itself (and in slot C too, with ``--interpreted``): the ratios should come out near 1.
"""
from __future__ import annotations

import argparse
import collections
import importlib.machinery
import importlib.util
import math
import os
import re
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Iterable, Mapping, Sequence

__all__ = [
    "stop_tree",
    "free_port",
    "start_server",
    "stop_server",
    "RunningServer",
    "kvshard_argv",
    "memcached_argv",
    "reference_argv",
    "LOOPBACK",
    "MEMASLAP_STATS",
    "MemaslapOutputError",
    "MemaslapResult",
    "MemaslapRun",
    "ProcStat",
    "CpuTimes",
    "RunRecord",
    "Summary",
    "descendants",
    "find_memaslap",
    "main",
    "memaslap_command",
    "parse_memaslap",
    "parse_proc_stat",
    "read_proc_stat",
    "run_memaslap",
    "slot_order",
    "summarize",
    "tree_cpu_seconds",
    "tree_cpu_times",
    "NO_EXTENSIONS_ENV",
]

LOOPBACK = "127.0.0.1"
"""The only address this harness talks to."""

MEMASLAP_STATS = (
    "cmd_get",
    "cmd_set",
    "get_misses",
    "verify_misses",
    "verify_failed",
    "expired_get",
    "unexpired_unget",
    "written_bytes",
    "read_bytes",
    "object_bytes",
    "packet_disorder",
    "packet_drop",
    "udp_timeout",
)
"""Counters memaslap prints in its final statistics (some only with --verify, -e or UDP)."""

KILL_GRACE_S = 30.0
"""How long after its run time memaslap may take to exit before we kill it."""


# ----- memaslap output -------------------------------------------------------------------------


class MemaslapOutputError(ValueError):
    """memaslap's output has no final statistics (it failed to connect, or was killed early)."""


@dataclass(frozen=True)
class MemaslapResult:
    """memaslap's final statistics.

    ``errors`` maps each error reply memaslap printed (``<FD message``, the FD dropped) to how
    often it was printed; ``settings`` holds the header lines (``servers``, ``concurrency``...).
    """

    run_time_s: float
    ops: int
    tps: float
    net_rate_mb_s: float
    stats: dict[str, int]
    errors: dict[str, int] = field(default_factory=dict)
    settings: dict[str, str] = field(default_factory=dict)

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())

    @property
    def verify_failed(self) -> int:
        return self.stats.get("verify_failed", 0)

    def brief(self) -> str:
        stats = " ".join(f"{k}={v}" for k, v in self.stats.items() if not k.endswith("_bytes"))
        return (
            f"run_time={self.run_time_s:.1f}s ops={self.ops} tps={self.tps:.0f} {stats} "
            f"error_replies={self.error_count}"
        )


_SUMMARY_RE = re.compile(
    r"^Run time: (?P<time>\d+(?:\.\d+)?)s Ops: (?P<ops>\d+) TPS: (?P<tps>\d+(?:\.\d+)?) "
    r"Net_rate: (?P<rate>\d+(?:\.\d+)?)M/s[ \t]*$",
    re.M,
)
_STAT_RE = re.compile(r"^(?P<name>[a-z_]+): (?P<value>\d+)[ \t]*$", re.M)
_ERROR_RE = re.compile(r"^<\d+ (?P<message>.*?)[ \t\r]*$", re.M)
_SETTINGS = ("servers", "threads count", "concurrency", "run time", "execute number", "windows size",
             "set proportion", "get proportion")
_SETTING_RE = re.compile(r"^(?P<name>" + "|".join(_SETTINGS) + r"): (?P<value>.*?)[ \t]*$", re.M)


def parse_memaslap(stdout: str) -> MemaslapResult:
    """Parse memaslap's standard output (libmemcached 1.x ``memaslap``/``memcaslap``).

    Relies on the final block::

        cmd_get: 1063798
        cmd_set: 118217
        get_misses: 0
        verify_misses: 0          (only with --verify)
        verify_failed: 0          (only with --verify)
        written_bytes: 95742570
        read_bytes: 197742623
        object_bytes: 19387588

        Run time: 10.0s Ops: 1182015 TPS: 118177 Net_rate: 28.0M/s

    and on the error replies it prints while running, one per line, ``<FD ERROR``,
    ``<FD SERVER_ERROR ...``, ``<FD CLIENT_ERROR ...``, ``<FD NOT_STORED``, ``<FD EXISTS``.
    Raises :class:`MemaslapOutputError` when the ``Run time:`` line is missing.
    """
    summaries = list(_SUMMARY_RE.finditer(stdout))
    if not summaries:
        raise MemaslapOutputError("memaslap printed no 'Run time: ... TPS: ...' line")
    summary = summaries[-1]
    # The final counters are the last block of "name: number" lines before the summary.
    block_start = stdout.rfind("cmd_get: ", 0, summary.start())
    stats: dict[str, int] = {}
    if block_start >= 0:
        for m in _STAT_RE.finditer(stdout, block_start, summary.start()):
            if m["name"] in MEMASLAP_STATS:
                stats[m["name"]] = int(m["value"])
    errors = collections.Counter(m["message"] for m in _ERROR_RE.finditer(stdout))
    settings = {m["name"]: m["value"] for m in _SETTING_RE.finditer(stdout)}
    return MemaslapResult(
        run_time_s=float(summary["time"]),
        ops=int(summary["ops"]),
        tps=float(summary["tps"]),
        net_rate_mb_s=float(summary["rate"]),
        stats=stats,
        errors=dict(errors),
        settings=settings,
    )


def find_memaslap() -> str | None:
    """memaslap's path: Debian's ``memcaslap`` (libmemcached-tools) or upstream's ``memaslap``."""
    return shutil.which("memcaslap") or shutil.which("memaslap")


def memaslap_command(
    binary: str,
    port: int,
    seconds: int,
    *,
    threads: int = 2,
    concurrency: int = 64,
    value_size: int = 100,
    extra: Sequence[str] = (),
    host: str = LOOPBACK,
    prefix: Sequence[str] = (),
) -> list[str]:
    """``[prefix] memaslap -s HOST:PORT -T threads -c concurrency -X value_size -t Ns [extra]``
    (``prefix`` runs it elsewhere, e.g. ``ip netns exec NS``)."""
    return [
        *prefix, binary, "-s", f"{host}:{port}", "-T", str(threads), "-c", str(concurrency),
        "-X", str(value_size), "-t", f"{seconds}s", *extra,
    ]


@dataclass
class MemaslapRun:
    """One memaslap process: its command, exit, output and parsed result (None if unparsable)."""

    argv: list[str]
    returncode: int | None
    stdout: str
    stderr: str
    timed_out: bool
    wall_s: float
    result: MemaslapResult | None
    parse_error: str | None = None

    def problems(self) -> list[str]:
        """What went wrong, for an assertion message; empty when the run is clean.

        Clean means: exited 0 by itself, printed final statistics, no error replies, nothing on
        stderr, and no failed verification. (get and verify *misses* are not problems: a
        server that evicts, as memcached does at its default 64 MB, has them.)
        """
        found: list[str] = []
        if self.timed_out:
            found.append(f"memaslap did not exit within {KILL_GRACE_S:.0f}s after its run time; killed")
        elif self.returncode != 0:
            found.append(f"memaslap exited with status {self.returncode}")
        if self.result is None:
            found.append(f"no final statistics ({self.parse_error})")
        else:
            if self.result.error_count:
                top = ", ".join(f"{n}x {msg!r}" for msg, n in sorted(
                    self.result.errors.items(), key=lambda kv: -kv[1])[:5])
                found.append(f"{self.result.error_count} error replies: {top}")
            if self.result.verify_failed:
                found.append(f"verify_failed={self.result.verify_failed}")
        if self.stderr.strip():
            lines = self.stderr.strip().splitlines()
            found.append(f"{len(lines)} lines on stderr, first: {lines[:5]!r}")
        return found

    def describe(self) -> str:
        head = " ".join(self.argv)
        body = self.result.brief() if self.result else "(no statistics)"
        tail = self.stdout[-1500:] if self.result is None else ""
        return f"$ {head}\n{body}\n{tail}"


def run_memaslap(
    port: int,
    seconds: int,
    *,
    threads: int = 2,
    concurrency: int = 64,
    value_size: int = 100,
    extra: Sequence[str] = (),
    binary: str | None = None,
    host: str = LOOPBACK,
    prefix: Sequence[str] = (),
) -> MemaslapRun:
    """Run memaslap against 127.0.0.1:PORT for ``seconds`` and parse what it prints.

    memaslap stops by itself after its run time; if it has not exited ``KILL_GRACE_S`` later
    (it can hang in clean-up when a server stops answering) it is killed and the output so far
    is parsed.
    """
    binary = binary or find_memaslap()
    if binary is None:
        raise FileNotFoundError("memaslap/memcaslap is not installed (Debian: libmemcached-tools)")
    argv = memaslap_command(binary, port, seconds, threads=threads, concurrency=concurrency,
                            value_size=value_size, extra=extra, host=host, prefix=prefix)
    t0 = time.monotonic()
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, errors="replace")
    timed_out = False
    try:
        out, err = proc.communicate(timeout=seconds + KILL_GRACE_S)
    except subprocess.TimeoutExpired:
        timed_out = True
        proc.kill()
        out, err = proc.communicate()
    wall = time.monotonic() - t0
    result: MemaslapResult | None = None
    parse_error: str | None = None
    try:
        result = parse_memaslap(out)
    except MemaslapOutputError as exc:
        parse_error = str(exc)
    return MemaslapRun(argv, proc.returncode, out, err, timed_out, wall, result, parse_error)


# ----- CPU accounting from /proc ---------------------------------------------------------------


@dataclass(frozen=True)
class ProcStat:
    """The fields of ``/proc/PID/stat`` we use; times in clock ticks."""

    pid: int
    comm: str
    state: str
    ppid: int
    utime: int
    stime: int
    cutime: int
    cstime: int
    starttime: int

    @property
    def cpu_ticks(self) -> int:
        """CPU of the process (all its threads) plus its waited-for children."""
        return self.utime + self.stime + self.cutime + self.cstime

    @property
    def user_ticks(self) -> int:
        """User-mode CPU of the process plus its waited-for children (utime + cutime)."""
        return self.utime + self.cutime

    @property
    def sys_ticks(self) -> int:
        """Kernel-mode CPU of the process plus its waited-for children (stime + cstime)."""
        return self.stime + self.cstime


def parse_proc_stat(text: str) -> ProcStat:
    """Parse one ``/proc/PID/stat`` line (see proc(5)).

    The command name (field 2) is in parentheses and may itself contain spaces and ``)``, so
    the fields after it are found from the *last* ``)``.
    """
    open_paren = text.index("(")
    close_paren = text.rindex(")")
    pid = int(text[:open_paren])
    comm = text[open_paren + 1 : close_paren]
    rest = text[close_paren + 2 :].split()
    # rest[0] is field 3 (state); field n is rest[n - 3]
    return ProcStat(
        pid=pid,
        comm=comm,
        state=rest[0],
        ppid=int(rest[1]),
        utime=int(rest[11]),
        stime=int(rest[12]),
        cutime=int(rest[13]),
        cstime=int(rest[14]),
        starttime=int(rest[19]),
    )


def read_proc_stat(pid: int, proc_root: Path = Path("/proc")) -> ProcStat | None:
    """``/proc/PID/stat`` parsed, or None if the process is gone."""
    try:
        return parse_proc_stat((proc_root / str(pid) / "stat").read_text())
    except (FileNotFoundError, ProcessLookupError):
        return None


def _all_stats(proc_root: Path) -> dict[int, ProcStat]:
    stats: dict[int, ProcStat] = {}
    for entry in proc_root.iterdir():
        if entry.name.isdigit():
            st = read_proc_stat(int(entry.name), proc_root)
            if st is not None:
                stats[st.pid] = st
    return stats


def descendants(pid: int, proc_root: Path = Path("/proc"), *, _stats: dict[int, ProcStat] | None = None) -> list[ProcStat]:
    """All live descendants of ``pid`` (children, grandchildren...), found by scanning ppids."""
    stats = _stats if _stats is not None else _all_stats(proc_root)
    children: dict[int, list[int]] = collections.defaultdict(list)
    for st in stats.values():
        children[st.ppid].append(st.pid)
    found: list[ProcStat] = []
    todo = list(children.get(pid, ()))
    while todo:
        child = todo.pop()
        if child in stats:
            found.append(stats[child])
            todo.extend(children.get(child, ()))
    return found


def _tree(pid: int, proc_root: Path) -> list[ProcStat]:
    """``pid`` and its live descendants, from one scan of ``proc_root``."""
    stats = _all_stats(proc_root)
    if pid not in stats:
        raise ProcessLookupError(pid)
    return [stats[pid], *descendants(pid, proc_root, _stats=stats)]


def tree_cpu_seconds(pid: int, proc_root: Path = Path("/proc")) -> float:
    """CPU seconds used so far by ``pid`` and all its descendants.

    Sums utime + stime + cutime + cstime over the live process tree: a descendant that exited
    and was waited for is in its parent's cutime/cstime, a live one in its own utime/stime, so
    the sum does not drop when a shard process exits between two readings.
    Raises ProcessLookupError if ``pid`` itself is gone.
    """
    return sum(st.cpu_ticks for st in _tree(pid, proc_root)) / os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class CpuTimes:
    """CPU seconds split by mode: ``user`` (utime + cutime), ``system`` (stime + cstime)."""

    user: float
    system: float

    @property
    def total(self) -> float:
        return self.user + self.system

    def __sub__(self, other: CpuTimes) -> CpuTimes:
        return CpuTimes(self.user - other.user, self.system - other.system)


def tree_cpu_times(pid: int, proc_root: Path = Path("/proc")) -> CpuTimes:
    """:func:`tree_cpu_seconds` split into user and system time (both from one scan, so
    ``total`` equals what :func:`tree_cpu_seconds` would have read at that moment).
    Raises ProcessLookupError if ``pid`` itself is gone."""
    tree = _tree(pid, proc_root)
    tick = os.sysconf("SC_CLK_TCK")
    return CpuTimes(sum(st.user_ticks for st in tree) / tick, sum(st.sys_ticks for st in tree) / tick)


# ----- servers ---------------------------------------------------------------------------------


def free_port() -> int:
    while True:
        with socket.socket() as s:
            s.bind((LOOPBACK, 0))
            port = int(s.getsockname()[1])
        if port != 11211:  # never the port a system memcached may own
            return port


def kvshard_argv(port: int, threads: int, extra: Sequence[str]) -> list[str]:
    return [sys.executable, "-m", "kvshard.cli", "-l", LOOPBACK, "-p", str(port), "-t", str(threads), *extra]


def reference_argv(port: int, threads: int, extra: Sequence[str]) -> list[str]:
    return [sys.executable, "-m", "loadtest.reference_server", "-l", LOOPBACK, "-p", str(port), "-t", str(threads),
            *extra]


def memcached_argv(binary: str, port: int, threads: int, extra: Sequence[str]) -> list[str]:
    user = ["-u", "root"] if os.geteuid() == 0 else []
    return [binary, *user, "-l", LOOPBACK, "-p", str(port), "-U", "0", "-t", str(threads), *extra]


@dataclass
class RunningServer:
    name: str
    argv: list[str]
    port: int
    proc: subprocess.Popen[bytes]
    log: IO[bytes]

    def log_tail(self, chars: int = 2000) -> str:
        self.log.seek(0)
        return self.log.read().decode(errors="replace")[-chars:]


def _answers_version(port: int) -> bool:
    try:
        with socket.create_connection((LOOPBACK, port), timeout=1.0) as s:
            s.sendall(b"version\r\n")
            return s.recv(100).startswith(b"VERSION ")
    except OSError:
        return False


def start_server(name: str, argv: list[str], port: int, timeout: float = 30.0,
                 env: Mapping[str, str] | None = None, cwd: str | None = None) -> RunningServer:
    """Start ``argv`` and wait until it answers ``version`` on ``port``; ``env``: variables
    added to (or overriding) this process's environment for the server and its children;
    ``cwd``: its working directory (``python -m`` imports from there first)."""
    log = tempfile.TemporaryFile()
    environment = {**os.environ, **env} if env else None
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=environment,
                            cwd=cwd)
    server = RunningServer(name, argv, port, proc, log)
    deadline = time.monotonic() + timeout
    while not _answers_version(port):
        if proc.poll() is not None or time.monotonic() > deadline:
            why = f"exited with status {proc.returncode}" if proc.returncode is not None else "did not answer"
            tail = server.log_tail()
            stop_server(server)
            raise RuntimeError(f"{name} {why} on port {port}: {' '.join(argv)}\n{tail}")
        time.sleep(0.05)
    return server


def stop_server(server: RunningServer) -> None:
    stop_tree(server.proc)
    server.log.close()


def stop_tree(proc: subprocess.Popen[Any]) -> None:
    """SIGTERM a server we started, SIGKILL after 10 s; then SIGKILL any of its descendants
    left over.

    Only processes this harness started (the server and what it spawned) are signalled, each by
    PID, and a leftover is killed only if its start time still matches (no PID reuse).
    """
    tree = descendants(proc.pid) if proc.poll() is None else []
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
    for st in tree:
        now = read_proc_stat(st.pid)
        if now is not None and now.starttime == st.starttime and now.state != "Z":
            try:
                os.kill(st.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


# ----- the A/B run -----------------------------------------------------------------------------

NO_EXTENSIONS_ENV = "KVSHARD_NO_EXTENSIONS"
"""Set to 1 in kvshard's environment, it runs its interpreted modules instead of the compiled
ones (``--interpreted``, slot C)."""


@dataclass(frozen=True)
class RunRecord:
    """One memaslap run against one freshly started server.

    ``cpu_s`` is the server tree's CPU time over the run, ``user_s`` and ``sys_s`` its user
    (utime + cutime) and system (stime + cstime) parts (NaN when not measured).
    """

    round: int
    slot: str  # "A", "B" or "C"
    server: str  # "kvshard", "memcached", "kvshard-B", "kvshard-interp"
    tps: float
    ops: int
    run_time_s: float
    cpu_s: float
    errors: int
    user_s: float = math.nan
    sys_s: float = math.nan

    def _per_op(self, seconds: float) -> float:
        return seconds * 1e6 / self.ops if self.ops else float("nan")

    @property
    def cpu_us_per_op(self) -> float:
        return self._per_op(self.cpu_s)

    @property
    def user_us_per_op(self) -> float:
        return self._per_op(self.user_s)

    @property
    def sys_us_per_op(self) -> float:
        return self._per_op(self.sys_s)


@dataclass(frozen=True)
class Summary:
    """Medians over the runs (see the module docstring). ``kvshard_*`` describe slot A,
    ``memcached_*`` slot B, ``interp_*`` slot C (None without ``--interpreted``)."""

    kvshard_tps: float
    memcached_tps: float
    tps_ratio: float
    round_ratios: list[float]
    kvshard_cpu_us_per_op: float
    memcached_cpu_us_per_op: float
    kvshard_user_us_per_op: float = math.nan
    kvshard_sys_us_per_op: float = math.nan
    memcached_user_us_per_op: float = math.nan
    memcached_sys_us_per_op: float = math.nan
    interp_tps: float | None = None
    interp_tps_ratio: float | None = None  # C / B, median over rounds
    interp_round_ratios: list[float] = field(default_factory=list)
    interp_cpu_us_per_op: float | None = None
    interp_user_us_per_op: float | None = None
    interp_sys_us_per_op: float | None = None
    compiled_interp_ratio: float | None = None  # A / C, median over rounds
    compiled_interp_round_ratios: list[float] = field(default_factory=list)

    def line(self, slot_c: str = "interp") -> str:
        """The ``summary:`` line; slot C's fields are named ``<slot_c>_*`` (``reference_*`` with
        ``--reference``)."""
        text = (
            f"summary: tps_ratio={self.tps_ratio:.3f} kvshard_tps={self.kvshard_tps:.0f} "
            f"memcached_tps={self.memcached_tps:.0f} kvshard_cpu_us_per_op={self.kvshard_cpu_us_per_op:.2f} "
            f"memcached_cpu_us_per_op={self.memcached_cpu_us_per_op:.2f} "
            f"kvshard_user_us_per_op={self.kvshard_user_us_per_op:.2f} "
            f"kvshard_sys_us_per_op={self.kvshard_sys_us_per_op:.2f} "
            f"memcached_user_us_per_op={self.memcached_user_us_per_op:.2f} "
            f"memcached_sys_us_per_op={self.memcached_sys_us_per_op:.2f}"
        )
        if self.interp_tps is not None:
            text += (
                f" {slot_c}_tps={self.interp_tps:.0f} {slot_c}_tps_ratio={self.interp_tps_ratio:.3f} "
                f"{slot_c}_cpu_us_per_op={self.interp_cpu_us_per_op:.2f} "
                f"{slot_c}_user_us_per_op={self.interp_user_us_per_op:.2f} "
                f"{slot_c}_sys_us_per_op={self.interp_sys_us_per_op:.2f}"
            )
        return text


def _round_ratios(runs: Sequence[RunRecord], top: str, bottom: str) -> list[float]:
    """Per round that has runs of both slots: mean TPS of slot ``top`` / mean TPS of ``bottom``."""
    ratios = []
    for rnd in sorted({r.round for r in runs}):
        num = [r.tps for r in runs if r.round == rnd and r.slot == top]
        den = [r.tps for r in runs if r.round == rnd and r.slot == bottom]
        if num and den:
            ratios.append(statistics.fmean(num) / statistics.fmean(den))
    return ratios


def summarize(runs: Iterable[RunRecord]) -> Summary:
    """Median TPS and CPU (total, user, system) us/op per slot; median over rounds of the
    per-round TPS ratios A/B and, when there are slot C runs, C/B and A/C."""
    runs = list(runs)

    def of(slot: str) -> list[RunRecord]:
        # A is kvshard, B memcached (or, with --baseline-kvshard-args, kvshard again), C kvshard-interp
        return [r for r in runs if r.slot == slot]

    def med(slot: str, attr: str) -> float:
        return statistics.median(getattr(r, attr) for r in of(slot))

    ratios = _round_ratios(runs, "A", "B")
    if not ratios:
        raise ValueError("no round has runs of both servers")
    interp: dict[str, Any] = {}
    if of("C"):
        interp_ratios = _round_ratios(runs, "C", "B")
        compiled_ratios = _round_ratios(runs, "A", "C")
        if not interp_ratios:
            raise ValueError("no round has runs of both slot C and slot B")
        interp = dict(
            interp_tps=med("C", "tps"),
            interp_tps_ratio=statistics.median(interp_ratios),
            interp_round_ratios=interp_ratios,
            interp_cpu_us_per_op=med("C", "cpu_us_per_op"),
            interp_user_us_per_op=med("C", "user_us_per_op"),
            interp_sys_us_per_op=med("C", "sys_us_per_op"),
            compiled_interp_ratio=statistics.median(compiled_ratios) if compiled_ratios else None,
            compiled_interp_round_ratios=compiled_ratios,
        )
    return Summary(
        kvshard_tps=med("A", "tps"),
        memcached_tps=med("B", "tps"),
        tps_ratio=statistics.median(ratios),
        round_ratios=ratios,
        kvshard_cpu_us_per_op=med("A", "cpu_us_per_op"),
        memcached_cpu_us_per_op=med("B", "cpu_us_per_op"),
        kvshard_user_us_per_op=med("A", "user_us_per_op"),
        kvshard_sys_us_per_op=med("A", "sys_us_per_op"),
        memcached_user_us_per_op=med("B", "user_us_per_op"),
        memcached_sys_us_per_op=med("B", "sys_us_per_op"),
        **interp,
    )


def slot_order(interpreted: bool) -> tuple[str, ...]:
    """The slots of one round: A B B A, or A B C C B A with a slot C (``--interpreted`` or
    ``--reference``)."""
    return ("A", "B", "C", "C", "B", "A") if interpreted else ("A", "B", "B", "A")


class _ArgvFor:
    """A server's command line as a function of its port, and the variables added to its
    environment."""

    def __init__(self, kind: str, threads: int, extra: Sequence[str], memcached: str,
                 env: Mapping[str, str] | None = None, cwd: str | None = None) -> None:
        self.kind, self.threads, self.extra, self.memcached = kind, threads, list(extra), memcached
        self.env = dict(env or {})
        self.cwd = cwd  # run from this directory: ``python -m kvshard.cli`` imports that source tree

    def with_env(self, **env: str) -> _ArgvFor:
        """The same command with ``env`` added to its environment."""
        return _ArgvFor(self.kind, self.threads, self.extra, self.memcached, {**self.env, **env}, self.cwd)

    def __call__(self, port: int) -> list[str]:
        if self.kind == "kvshard":
            return kvshard_argv(port, self.threads, self.extra)
        if self.kind == "reference":
            return reference_argv(port, self.threads, self.extra)
        return memcached_argv(self.memcached, port, self.threads, self.extra)

    def shown(self) -> str:
        """The command as printed: ``[VAR=value ...] argv`` with PORT for the port."""
        prefix = "".join(f"{k}={shlex.quote(v)} " for k, v in self.env.items())
        where = f"(cd {shlex.quote(self.cwd)}) " if self.cwd else ""
        return where + prefix + " ".join(self(0)).replace(" -p 0 ", " -p PORT ")


class _Scraper:
    """Fetches ``url`` every ``every`` seconds from a thread, as Prometheus would, and counts
    the answers (status 200) it got."""

    def __init__(self, url: str, every: float) -> None:
        self.url, self.every, self.ok, self.failed = url, every, 0, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="scraper", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            try:
                with urllib.request.urlopen(self.url, timeout=5) as response:
                    response.read()
                    self.ok += response.status == 200
            except OSError:
                self.failed += 1

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)


def _one_run(rnd: int, slot: str, server_name: str, argv_for_port: _ArgvFor, memaslap: str,
             seconds: int, threads: int, concurrency: int, value_size: int,
             extra: Sequence[str] = (), scrape_url: str | None = None, scrape_every: float = 0) -> RunRecord:
    port = free_port()
    server = start_server(server_name, argv_for_port(port), port, env=argv_for_port.env, cwd=argv_for_port.cwd)
    scraper = _Scraper(scrape_url, scrape_every) if scrape_url and scrape_every > 0 else None
    try:
        cpu0 = tree_cpu_times(server.proc.pid)
        run = run_memaslap(port, seconds, threads=threads, concurrency=concurrency,
                           value_size=value_size, extra=extra, binary=memaslap)
        cpu1 = tree_cpu_times(server.proc.pid)
    except ProcessLookupError:
        raise RuntimeError(f"{server_name} died during the run:\n{server.log_tail()}") from None
    finally:
        if scraper is not None:
            scraper.stop()
            print(f"#   scrapes of {scrape_url}: {scraper.ok} answered, {scraper.failed} failed", flush=True)
        stop_server(server)
    if run.result is None or run.timed_out or run.returncode != 0:
        raise RuntimeError(f"memaslap failed against {server_name}: {'; '.join(run.problems())}\n{run.describe()}")
    res = run.result
    used = cpu1 - cpu0
    return RunRecord(rnd, slot, server_name, res.tps, res.ops, res.run_time_s, used.total, res.error_count,
                     used.user, used.system)


def _version(argv: list[str]) -> str:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=10)
        return (out.stdout or out.stderr).strip().splitlines()[0]
    except (OSError, subprocess.SubprocessError, IndexError):
        return "?"


def _compiled_extensions() -> list[Path]:
    """Extension modules (``.so``) inside kvshard's packages, as ``python -m kvshard.cli`` from
    this directory would find them; located on disk, nothing is imported."""
    found: list[Path] = []
    for package in ("framework", "kvshard", "net_backends"):
        try:
            spec = importlib.util.find_spec(package)
        except (ImportError, ValueError):
            spec = None
        for location in (spec.submodule_search_locations or []) if spec else []:
            found += [f for f in Path(location).rglob("*")
                      if any(f.name.endswith(sfx) for sfx in importlib.machinery.EXTENSION_SUFFIXES)]
    return sorted(found)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m loadtest.memaslap_ab",
                                description="A/B benchmark: kvshard vs memcached under memaslap (see the module docstring)")
    p.add_argument("--rounds", type=int, default=3, help="rounds of A B B A (A B C C B A with --interpreted) (default 3)")
    p.add_argument("--seconds", type=int, default=20, help="memaslap run time per run (default 20)")
    p.add_argument("--kvshard-args", default="", help="extra kvshard flags, one string: --kvshard-args=\"-m 256\"")
    p.add_argument("--memcached-args", default="", help="extra memcached flags, one string: --memcached-args=\"-m 256\"")
    p.add_argument("--memcached", default=shutil.which("memcached") or "memcached", help="memcached binary")
    p.add_argument("--memaslap", default=find_memaslap(), help="memaslap binary (default: memcaslap or memaslap on PATH)")
    p.add_argument("--threads", type=int, default=2, help="server workers (-t) and memaslap threads (-T) (default 2)")
    p.add_argument("--concurrency", type=int, default=64, help="memaslap -c (default 64)")
    p.add_argument("--value-size", type=int, default=100, help="memaslap -X (default 100)")
    p.add_argument("--binary", action="store_true", help="memaslap speaks the binary protocol (-B)")
    p.add_argument("--multiget", type=int, default=1, metavar="N",
                   help="memaslap -d N: up to N keys per multi-get (default 1: single-key gets, -d not passed)")
    p.add_argument(
        "--interpreted", action="store_true",
        help=f"add slot C, kvshard-interp: slot A's kvshard command with {NO_EXTENSIONS_ENV}=1 "
             "(its interpreted modules); rounds become A B C C B A",
    )
    p.add_argument(
        "--reference", action="store_true",
        help="add slot C, reference: python -m loadtest.reference_server, a minimal Cython-compiled uvloop "
             "server with no forwarding (the runtime's floor); rounds become A B C C B A",
    )
    p.add_argument(
        "--baseline-kvshard-args", default=None,
        help="slot B runs kvshard with these flags instead of memcached (e.g. \"--metrics-port 0\" "
             "measures what the metrics endpoint costs); the memcached_* fields then describe B",
    )
    p.add_argument(
        "--baseline-tree", default=None, metavar="DIR",
        help="slot B runs kvshard from the source tree DIR (e.g. a clone of an older commit) with this "
             "Python, instead of memcached: old code against new in one run",
    )
    p.add_argument(
        "--scrape-every", type=float, default=0,
        help="during slot A's runs, GET http://127.0.0.1:9150/metrics (kvshard's default metrics "
             "port) every N seconds, as Prometheus would (default 0: never)",
    )
    p.add_argument("--self-test", action="store_true", help=argparse.SUPPRESS)
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.rounds < 1 or args.seconds < 1 or args.multiget < 1:
        print("memaslap_ab: --rounds, --seconds and --multiget must be at least 1", file=sys.stderr)
        return 2
    if not args.memaslap:
        print("memaslap_ab: memaslap/memcaslap not found (Debian: apt-get install libmemcached-tools)", file=sys.stderr)
        return 2
    if not shutil.which(args.memcached):
        print(f"memaslap_ab: memcached not found ({args.memcached})", file=sys.stderr)
        return 2

    memcached = _ArgvFor("memcached", args.threads, shlex.split(args.memcached_args), args.memcached)
    kvshard = _ArgvFor("kvshard", args.threads, shlex.split(args.kvshard_args), args.memcached)
    if args.self_test:
        kvshard = _ArgvFor("memcached", args.threads, shlex.split(args.memcached_args), args.memcached)
    slots = {"A": ("kvshard", kvshard), "B": ("memcached", memcached)}
    if args.baseline_tree is not None and args.baseline_kvshard_args is None:
        args.baseline_kvshard_args = ""
    if args.baseline_kvshard_args is not None:
        baseline = _ArgvFor("kvshard", args.threads, shlex.split(args.baseline_kvshard_args), args.memcached,
                            cwd=args.baseline_tree)
        slots["B"] = ("kvshard-B", baseline)
        memcached = baseline
    if args.interpreted and args.reference:
        print("memaslap_ab: --interpreted and --reference both want slot C; give one", file=sys.stderr)
        return 2
    if args.interpreted:
        slots["C"] = ("kvshard-interp", kvshard.with_env(**{NO_EXTENSIONS_ENV: "1"}))
    if args.reference:
        slots["C"] = ("reference", _ArgvFor("reference", args.threads, [], args.memcached))
    order = slot_order("C" in slots)
    width = max(len(name) for name, _ in slots.values())

    print(f"# memaslap A/B: {time.strftime('%Y-%m-%d %H:%M:%S %Z')}, {os.cpu_count()} CPUs, python {sys.version.split()[0]}")
    print(f"# {_version([args.memcached, '-V'])}; {args.memaslap}")
    print(f"# A kvshard:   {kvshard.shown()}")
    print(f"# B {slots['B'][0] + ':':<10} {memcached.shown()}")
    if "C" in slots:
        print(f"# C {slots['C'][0]}: {slots['C'][1].shown()}")
        if not args.self_test:
            compiled = _compiled_extensions()
            print(f"# compiled extension modules found: {len(compiled)}"
                  + ("" if compiled else " (none: slots A and C both run the interpreted modules)"))
    if args.baseline_kvshard_args is not None:
        print("# BASELINE: slot B is kvshard too; the memcached_* numbers below are slot B's")
    extra = (["-B"] if args.binary else []) + (["-d", str(args.multiget)] if args.multiget > 1 else [])
    slap = memaslap_command(args.memaslap, 0, args.seconds, threads=args.threads, concurrency=args.concurrency,
                            value_size=args.value_size, extra=extra)
    print(f"# memaslap:    {' '.join(slap).replace(':0 ', ':PORT ')}")
    print(f"# {args.rounds} rounds of {' '.join(order)}, every run on a freshly started server")
    if args.self_test:
        print("# SELF-TEST: slot A runs memcached too (labelled kvshard); expect a ratio near 1")
    if args.rounds < 3:
        print("# note: fewer than 3 rounds, the medians are not robust")

    runs: list[RunRecord] = []
    n = 0
    try:
        for rnd in range(1, args.rounds + 1):
            for slot in order:
                name, argv_for = slots[slot]
                scrape = "http://127.0.0.1:9150/metrics" if slot == "A" else None
                rec = _one_run(rnd, slot, name, argv_for, args.memaslap, args.seconds, args.threads,
                               args.concurrency, args.value_size, extra, scrape, args.scrape_every)
                n += 1
                runs.append(rec)
                print(f"run {n:2d} round {rnd} {slot} {name:<{width}} tps={rec.tps:9.0f} ops={rec.ops:9d} "
                      f"time={rec.run_time_s:5.1f}s cpu={rec.cpu_s:7.2f}s cpu_us_per_op={rec.cpu_us_per_op:7.2f} "
                      f"user_us_per_op={rec.user_us_per_op:7.2f} sys_us_per_op={rec.sys_us_per_op:7.2f} "
                      f"error_replies={rec.errors}", flush=True)
    except (RuntimeError, OSError) as exc:
        print(f"memaslap_ab: {exc}", file=sys.stderr)
        return 1

    s = summarize(runs)
    c = s.interp_tps is not None
    c_name = slots["C"][0] if "C" in slots else ""

    def per_server(metric: str, fmt: str) -> str:
        """``kvshard=X memcached=Y [C=Z]`` from the fields ``{kvshard,memcached,interp}_<metric>``."""
        text = f"kvshard={getattr(s, 'kvshard_' + metric):{fmt}} memcached={getattr(s, 'memcached_' + metric):{fmt}}"
        return text + (f" {c_name}={getattr(s, 'interp_' + metric):{fmt}}" if c else "")

    def rounds(ratios: list[float]) -> str:
        return " ".join(f"{r:.3f}" for r in ratios)

    print(f"median tps: {per_server('tps', '.0f')}")
    print(f"median ratio kvshard/memcached over rounds: {s.tps_ratio:.3f} (per round: {rounds(s.round_ratios)})")
    if c:
        print(f"median ratio {c_name}/memcached over rounds: {s.interp_tps_ratio:.3f} "
              f"(per round: {rounds(s.interp_round_ratios)})")
        if s.compiled_interp_ratio is not None:
            print(f"median ratio kvshard/{c_name} over rounds: {s.compiled_interp_ratio:.3f} "
                  f"(per round: {rounds(s.compiled_interp_round_ratios)})")
    print(f"median cpu us/op: {per_server('cpu_us_per_op', '.2f')}")
    print(f"median user us/op: {per_server('user_us_per_op', '.2f')}")
    print(f"median sys us/op: {per_server('sys_us_per_op', '.2f')}")
    print(s.line("reference" if args.reference else "interp"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
