"""A shard killed under a running server: its peers never hang on its keys (they answer
SERVER_ERROR while it is down; tests/test_connection.py pins that reply) and serve them again
once the supervisor has restarted it."""

from __future__ import annotations

import os
import signal
import socket
import time
import zlib
from pathlib import Path

from tests.servers import start_server


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
        owned_by_1 = [k for k in keys if zlib.crc32(k) % 2 == 1]
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
