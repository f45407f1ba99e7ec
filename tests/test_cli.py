"""The kvshard command line: version, bad flags, clean start and stop."""

from __future__ import annotations

import os
import signal
import subprocess

import pytest
import sys
import time

from framework import extensions
from kvshard import __version__, core
from tests.servers import free_port


def kvshard(*args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kvshard.cli", *args], capture_output=True, text=True, timeout=timeout
    )


def test_version() -> None:
    """-V names the version and, on a second line, the core this install runs; in CI the
    compiled core must have been built (no silent fallback to the interpreted one)."""
    r = kvshard("-V")
    assert r.returncode == 0 and r.stdout.splitlines() == [f"kvshard {__version__}", f"core: {core.mode()}"]
    if os.environ.get("CI") and not extensions.extensions_disabled():
        assert core.mode() == "compiled", extensions.interpreted_modules(core.HOT_MODULES)


def test_version_says_interpreted_when_extensions_are_off() -> None:
    r = subprocess.run([sys.executable, "-m", "kvshard.cli", "-V"], capture_output=True, text=True, timeout=30,
                       env={**os.environ, extensions.NO_EXTENSIONS_ENV: "1"})
    assert r.returncode == 0 and r.stdout.splitlines()[1] == "core: interpreted"


def test_unknown_flag_is_a_one_line_usage_error() -> None:
    r = kvshard("--no-such-flag")
    assert r.returncode == 64
    assert r.stderr.count("\n") == 1 and r.stderr.startswith("kvshard: ")


def test_bad_thread_count() -> None:
    r = kvshard("-t", "0")
    assert r.returncode == 64 and "threads" in r.stderr


def test_starts_and_stops_on_sigterm() -> None:
    port = str(free_port())
    proc = subprocess.Popen(
        # no metrics port: another server on this machine may hold the default 9150
        [sys.executable, "-m", "kvshard.cli", "-t", "2", "-v", "-p", port, "--metrics-port", "0"], stderr=subprocess.PIPE, text=True
    )
    deadline = time.monotonic() + 20
    assert proc.stderr is not None
    seen = ""
    while "all 2 shards running" not in seen:
        assert time.monotonic() < deadline, seen
        seen += proc.stderr.readline()
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(10) == 0


def test_start_says_which_core_runs() -> None:
    """-v logs the core at start; the interpreted core adds one warning line, shown even
    without -v."""
    for env, verbose in (({}, ["-v"]), ({extensions.NO_EXTENSIONS_ENV: "1"}, [])):
        port = str(free_port())
        proc = subprocess.Popen([sys.executable, "-m", "kvshard.cli", "-t", "1", *verbose, "-p", port, "--metrics-port", "0"],
                                stderr=subprocess.PIPE, text=True, env={**os.environ, **env})
        assert proc.stderr is not None
        try:
            first = proc.stderr.readline()
        finally:
            proc.send_signal(signal.SIGTERM)
            rest = proc.communicate(timeout=10)[1]
        lines = (first + rest).splitlines()
        if verbose:
            assert f"kvshard {__version__}, core: {core.mode()}" in lines[0]
        else:
            warnings = [line for line in lines if "WARNING" in line]
            assert len(warnings) == 1 and "core: interpreted, several times slower" in warnings[0], lines
            assert "KVSHARD_NO_EXTENSIONS is set" in warnings[0]


def test_bad_item_size() -> None:
    for bad in ("abc", "100", "2g", "40m"):
        r = kvshard("-I", bad)
        assert r.returncode == 64, (bad, r.stderr)
        assert r.stderr.startswith("kvshard: -I") and r.stderr.count("\n") == 1


def test_port_in_use_exits_71() -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        r = kvshard("-p", str(taken.getsockname()[1]), "-t", "1")
    assert r.returncode == 71 and "failed to listen" in r.stderr


def test_udp_port_in_use_exits_71() -> None:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", 0))
        r = kvshard("-U", str(taken.getsockname()[1]), "-t", "1")
    assert r.returncode == 71 and "failed to listen on 127.0.0.1 UDP port" in r.stderr


def test_connection_limit_counts_all_shards() -> None:
    """-c is for the whole server: however the kernel spreads connections over the shards,
    exactly that many are served and the next is refused as memcached refuses it."""
    import time

    from tests.servers import start_server

    with start_server("kvshard", "-c", "6", threads=2) as srv:
        time.sleep(0.3)  # let the server see the readiness probe's connection close
        kept = []
        for _ in range(5):  # the readiness probe's connection is closed by now
            s = srv.connect()
            s.sendall(b"version\r\n")
            assert s.recv(100).startswith(b"VERSION ")
            kept.append(s)
        sixth = srv.connect()
        sixth.sendall(b"version\r\n")
        assert sixth.recv(100).startswith(b"VERSION ")
        refused = srv.connect()
        assert refused.recv(100) == b"ERROR Too many open connections\r\n"
        assert refused.recv(100) == b""
        refused.close()
        sixth.close()
        for s in kept:
            s.close()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--network-stack", "native"], "needs --tap-device"),
        (["--network-stack", "native", "--tap-device", "t0"], "needs --host-ipv4-addr"),
        (["--network-stack", "native", "--tap-device", "t" * 16, "--host-ipv4-addr", "10.0.0.2"], "longer than 15 bytes"),
        (["--network-stack", "native", "--tap-device", "t0", "--host-ipv4-addr", "10.0.0.300"], "native stack address"),
        (["--network-stack", "native", "--tap-device", "t0", "--host-ipv4-addr", "10.0.0.2", "--gw-ipv4-addr", "10.9.0.1"], "is not on 10.0.0.0/24"),
    ],
)
def test_native_stack_option_errors(args: list[str], message: str) -> None:
    r = kvshard(*args)
    assert r.returncode == 64 and message in r.stderr and r.stderr.count("\n") == 1, r.stderr
