"""A shard killed under a running server: its peers never hang on its keys (they answer
SERVER_ERROR while it is down; tests/test_connection.py pins that reply) and serve them again
once the supervisor has restarted it."""

from __future__ import annotations

import os
import re
import signal
import socket
import time
from pathlib import Path

from tests.servers import start_server
from kvshard.routing import owner_of


def _children(pid: int) -> list[int]:
    return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def _ask(sock: socket.socket, request: bytes) -> bytes:
    sock.sendall(request)
    buf = b""
    # a get's reply ends with END; every other reply here is a single line
    while not (buf.endswith(b"END\r\n") or (buf.endswith(b"\r\n") and not buf.startswith(b"VALUE "))):
        chunk = sock.recv(65536)
        assert chunk, "connection closed"
        buf += chunk
    return buf


def test_keys_of_a_dead_shard_fail_fast_then_recover() -> None:
    with start_server("kvshard", threads=2) as srv:
        shards = _children(srv.proc.pid)
        keys = [b"res:%d" % i for i in range(40)]
        owned_by_1 = [k for k in keys if owner_of(k, 2) == 1]
        with srv.connect() as s:
            for k in keys:
                s.sendall(b"set %b 0 0 1 noreply\r\nx\r\n" % k)
            assert _ask(s, b"get " + b" ".join(keys) + b"\r\n").count(b"VALUE ") == len(keys)
        os.kill(shards[1], signal.SIGKILL)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                with srv.connect(timeout=5) as s:
                    reply = _ask(s, b"get " + owned_by_1[0] + b"\r\n")
            except (ConnectionError, AssertionError):
                continue  # this connection had landed on the dead shard (a hang would raise)
            if reply.startswith(b"SERVER_ERROR"):
                assert reply == b"SERVER_ERROR shard unavailable\r\n"  # while it is down
            elif reply == b"END\r\n":
                break  # restarted: the shard is empty (a cache loses what a dead shard held)
            time.sleep(0.01)
        else:
            raise AssertionError("the killed shard never came back")
        restarted = _children(srv.proc.pid)
        assert len(restarted) == 2 and shards[1] not in restarted
        with srv.connect() as s:
            for k in owned_by_1:
                assert _ask(s, b"set %b 0 0 1\r\ny\r\n" % k) == b"STORED\r\n"
            got = _ask(s, b"get " + b" ".join(keys) + b"\r\n")
        assert got.count(b"VALUE ") == len(keys)  # shard 0's items survived, shard 1's are new


def test_kill_9_under_load_restarts_within_2s_counted_and_logged(tmp_path: Path) -> None:
    """kill -9 of a shard while memaslap loads the server: the supervisor logs it and starts
    the shard again; its keys answer SERVER_ERROR (never a hang) until it is back, which takes
    under 2 s; the other shard serves all along; /metrics counts the restart."""
    import subprocess
    import urllib.request

    from loadtest.memaslap_ab import find_memaslap
    from tests.servers import free_port, require_tool

    memaslap = find_memaslap() or require_tool("memcaslap")
    metrics_port = free_port()
    log = tmp_path / "kvshard.log"
    with start_server("kvshard", "--metrics-port", str(metrics_port), "-v", "--log-file", str(log), threads=2) as srv:
        shards = _children(srv.proc.pid)
        keys = [b"load:%d" % i for i in range(40)]
        owned_by_1 = next(k for k in keys if owner_of(k, 2) == 1)
        owned_by_0 = next(k for k in keys if owner_of(k, 2) == 0)
        load = subprocess.Popen([memaslap, "-s", f"127.0.0.1:{srv.port}", "-T", "2", "-c", "16", "-t", "15s"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            time.sleep(1.0)
            with srv.connect() as s:
                assert _ask(s, b"set %b 0 0 1\r\nx\r\n" % owned_by_0) == b"STORED\r\n"
            killed = time.monotonic()
            os.kill(shards[1], signal.SIGKILL)
            back = None
            errors = 0
            while time.monotonic() - killed < 10:
                try:
                    with srv.connect(timeout=5) as s:
                        reply = _ask(s, b"get " + owned_by_1 + b"\r\n")
                        other = _ask(s, b"get " + owned_by_0 + b"\r\n")
                except (ConnectionError, AssertionError):
                    continue  # this connection had landed on the dead shard
                assert other == b"VALUE %s 0 1\r\nx\r\nEND\r\n" % owned_by_0  # the other shard serves all along
                if reply == b"SERVER_ERROR shard unavailable\r\n":
                    errors += 1
                elif reply.endswith(b"END\r\n"):
                    back = time.monotonic() - killed
                    break
                time.sleep(0.01)
        finally:
            load.kill()
            load.wait()
        assert back is not None and back < 2.0, back
        with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5) as response:
            metrics = response.read().decode()
    assert re.search(r'^kvshard_shard_restarts_total\{shard="1"\} 1(\.0)?$', metrics, re.M), metrics[:3000]
    assert re.search(r'^kvshard_shard_restarts_total\{shard="0"\} 0(\.0)?$', metrics, re.M)
    assert re.search(r"\[main\] .*shard 1 killed by signal 9 .*restarting it", log.read_text()), log.read_text()[-2000:]
