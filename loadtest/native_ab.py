"""A/B/C benchmark of kvshard's own TCP/IP stack (over TAP, and over DPDK) against the kernel's,
over the same kind of link.

Run (root): ``python -m loadtest.native_ab [--rounds 3] [--seconds 20] [--no-dpdk]``

Method
------
All servers are ``kvshard -t 2 -m 256 --metrics-port 0`` and all are loaded by memaslap's
default mix (``-T 2 -c 64 -X 100``) running in the kernel of another network namespace, so all
pay for one link hop and the client runs on the same kernel:

* native: in namespace ``kvabN-<tag>`` the server runs ``--network-stack native --tap-device
  <tap> --host-ipv4-addr 10.79.0.2``; its shards open the TAP's queues; the kernel's side of the
  TAP is 10.79.0.1/24 in the same namespace, and memaslap runs there.
* dpdk: the same with ``--dpdk-pmd``: the shards reach the same kind of tap through DPDK's
  net_tap driver.
* posix: a veth pair between namespace ``kvabS-<tag>`` (10.79.1.2, the server, on the
  kernel's stack, ``-l 10.79.1.2``) and ``kvabC-<tag>`` (10.79.1.1, memaslap).

Each round runs native posix dpdk dpdk posix native; every run gets a fresh server and fresh
namespaces, torn down after. CPU is the server's process tree (user + system, /proc) over the
run, per operation. Reported: every run, the median over rounds of the per-round ratios
(native / posix, dpdk / posix), and per side the median TPS and CPU us/op. The last line is
``summary: native_posix_ratio=<r> dpdk_posix_ratio=<r> native_tps=<n> native_cpu_us_per_op=<x>
posix_tps=... dpdk_tps=...``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import subprocess
import sys
import time
import uuid
from typing import Callable, Iterator

from .memaslap_ab import find_memaslap, run_memaslap, stop_tree, tree_cpu_seconds

__all__ = ["main"]

PORT = 11211


def _ip(*args: str, check: bool = True) -> None:
    subprocess.run(["ip", *args], check=check, capture_output=True, timeout=15)


def _server_argv(ns: str, *extra: str) -> list[str]:
    return ["ip", "netns", "exec", ns, sys.executable, "-m", "kvshard.cli", "-t", "2", "-m", "256",
            "--metrics-port", "0", "-p", str(PORT), *extra]


def _answers(ns: str, host: str) -> bool:
    probe = (
        "import socket\ntry:\n"
        f"    s = socket.create_connection(('{host}', {PORT}), timeout=1); s.sendall(b'version\\r\\n')\n"
        "    print(s.recv(100).decode().strip())\nexcept OSError:\n    pass\n"
    )
    out = subprocess.run(["ip", "netns", "exec", ns, "python3", "-c", probe], capture_output=True, text=True, timeout=10)
    return out.stdout.startswith("VERSION ")


def _wait(proc: subprocess.Popen[bytes], ready: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 30
    while not ready():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not come up")
        time.sleep(0.1)


@contextlib.contextmanager
def native_setup(*extra: str) -> Iterator[tuple[subprocess.Popen[bytes], str, str]]:
    """(server, client namespace, server address); ``extra``: more server flags (--dpdk-pmd)."""
    tag = uuid.uuid4().hex[:6]
    ns, tap = f"kvabN{tag}", f"kvabN{tag}"
    _ip("netns", "add", ns)
    # the tap first, with its address: the shards (and the CLI's DPDK probe) attach queues to it
    _ip("-n", ns, "tuntap", "add", "dev", tap, "mode", "tap", "multi_queue")
    _ip("-n", ns, "addr", "add", "10.79.0.1/24", "dev", tap)
    _ip("-n", ns, "link", "set", tap, "up")
    proc = subprocess.Popen(_server_argv(ns, "--network-stack", "native", "--tap-device", tap,
                                         "--host-ipv4-addr", "10.79.0.2", "-l", "10.79.0.2", *extra),
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    try:
        _wait(proc, lambda: _answers(ns, "10.79.0.2"), "kvshard on the native stack")
        yield proc, ns, "10.79.0.2"
    finally:
        stop_tree(proc)
        _ip("netns", "del", ns, check=False)


@contextlib.contextmanager
def posix_setup() -> Iterator[tuple[subprocess.Popen[bytes], str, str]]:
    tag = uuid.uuid4().hex[:6]
    srv, cli = f"kvabS{tag}", f"kvabC{tag}"
    _ip("netns", "add", srv)
    _ip("netns", "add", cli)
    proc = None
    try:
        _ip("link", "add", f"kvS{tag}", "netns", srv, "type", "veth", "peer", "name", f"kvC{tag}", "netns", cli)
        _ip("-n", srv, "addr", "add", "10.79.1.2/24", "dev", f"kvS{tag}")
        _ip("-n", cli, "addr", "add", "10.79.1.1/24", "dev", f"kvC{tag}")
        for ns, dev in ((srv, f"kvS{tag}"), (cli, f"kvC{tag}")):
            _ip("-n", ns, "link", "set", dev, "up")
            _ip("-n", ns, "link", "set", "lo", "up")
        proc = subprocess.Popen(_server_argv(srv, "-l", "10.79.1.2"), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
        _wait(proc, lambda: _answers(cli, "10.79.1.2"), "kvshard on the kernel's stack")
        yield proc, cli, "10.79.1.2"
    finally:
        if proc is not None:
            stop_tree(proc)
        _ip("netns", "del", srv, check=False)
        _ip("netns", "del", cli, check=False)


def _one(kind: str, seconds: int, memaslap: str) -> tuple[float, float]:
    """(TPS, server CPU us per op) of one run."""
    setup = {"native": native_setup, "dpdk": lambda: native_setup("--dpdk-pmd"), "posix": posix_setup}[kind]
    with setup() as (proc, client_ns, host):
        cpu0 = tree_cpu_seconds(proc.pid)
        run = run_memaslap(PORT, seconds, binary=memaslap, host=host, prefix=["ip", "netns", "exec", client_ns])
        cpu1 = tree_cpu_seconds(proc.pid)
    if run.result is None or run.returncode != 0:
        raise RuntimeError(f"memaslap failed against {kind}: {run.stderr[-500:]}")
    return run.result.tps, (cpu1 - cpu0) * 1e6 / max(1, run.result.ops)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m loadtest.native_ab", description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--seconds", type=int, default=20)
    p.add_argument("--no-dpdk", action="store_true", help="leave out the DPDK column")
    args = p.parse_args(argv)
    memaslap = find_memaslap()
    if os.geteuid() != 0 or memaslap is None:
        print("native_ab: needs root (namespaces, TAP) and memaslap (libmemcached-tools)", file=sys.stderr)
        return 2
    kinds = ["native", "posix"] if args.no_dpdk else ["native", "posix", "dpdk"]
    tps: dict[str, list[float]] = {kind: [] for kind in kinds}
    cpu: dict[str, list[float]] = {kind: [] for kind in kinds}
    ratios: dict[str, list[float]] = {kind: [] for kind in kinds if kind != "posix"}
    n = 0
    for rnd in range(1, args.rounds + 1):
        round_tps: dict[str, list[float]] = {kind: [] for kind in kinds}
        for kind in kinds + kinds[::-1]:  # A B C C B A
            t, c = _one(kind, args.seconds, memaslap)
            n += 1
            tps[kind].append(t)
            cpu[kind].append(c)
            round_tps[kind].append(t)
            print(f"run {n:2d} round {rnd} {kind:<6} tps={t:9.0f} cpu_us_per_op={c:7.2f}", flush=True)
        for kind in ratios:
            ratios[kind].append(statistics.fmean(round_tps[kind]) / statistics.fmean(round_tps["posix"]))
    summary = []
    for kind, per_round in ratios.items():
        ratio = statistics.median(per_round)
        print(f"median ratio {kind}/posix over rounds: {ratio:.3f} (per round: {' '.join(f'{r:.3f}' for r in per_round)})")
        summary.append(f"{kind}_posix_ratio={ratio:.3f}")
    for kind in kinds:
        summary.append(f"{kind}_tps={statistics.median(tps[kind]):.0f} {kind}_cpu_us_per_op={statistics.median(cpu[kind]):.2f}")
    print("summary: " + " ".join(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
