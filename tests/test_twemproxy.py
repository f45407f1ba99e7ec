"""kvshard behind twemproxy (nutcracker) with deploy/nutcracker.yml's settings: keys spread over
three servers by ketama, multi-gets fanned out and merged, pipelined replies in order, and a
killed server ejected while the proxy goes on serving with the other two."""

from __future__ import annotations

import contextlib
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import pytest

from tests.servers import Server, answers_version, free_port, require_tool, stop_process

CONFIG = Path(__file__).resolve().parent.parent / "deploy" / "nutcracker.yml"


def _exchange(sock: socket.socket, request: bytes, end: bytes, count: int = 1) -> bytes:
    sock.sendall(request)
    data = b""
    while data.count(end) < count:
        chunk = sock.recv(1 << 16)
        if not chunk:
            raise ConnectionError(f"closed after {data[-200:]!r}")
        data += chunk
    return data


@contextlib.contextmanager
def _proxy(tmp_path: Path, servers: list[Server]) -> Iterator[int]:
    binary = require_tool("nutcracker")
    port = free_port()
    text = CONFIG.read_text().replace("127.0.0.1:22121", f"127.0.0.1:{port}")
    for i, server in enumerate(servers):
        text = text.replace(f"127.0.0.1:{11211 + i}:1", f"127.0.0.1:{server.port}:1")
    conf = tmp_path / "nutcracker.yml"
    conf.write_text(text)
    proc = subprocess.Popen([binary, "-c", str(conf), "-s", str(free_port()), "-a", "127.0.0.1",
                             "-o", str(tmp_path / "nutcracker.log"), "-p", str(tmp_path / "nutcracker.pid")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                    if _exchange(s, b"set probe 0 0 1\r\nx\r\n", b"\r\n") == b"STORED\r\n":
                        break
            except OSError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, (tmp_path / "nutcracker.log").read_text()[-2000:]
            time.sleep(0.1)
        yield port
    finally:
        proc.terminate()
        proc.wait(10)


@contextlib.contextmanager
def _kvshard_on(port: int) -> Iterator[Server]:
    """``kvshard -l 127.0.0.1 -p PORT -t 2`` and nothing else: servers on one host that differ
    only in -p (the metrics port left at its default) all serve."""
    proc = subprocess.Popen([sys.executable, "-m", "kvshard.cli", "-l", "127.0.0.1", "-p", str(port), "-t", "2"],
                            stdin=subprocess.DEVNULL)
    server = Server("kvshard", port, proc)
    try:
        deadline = time.monotonic() + 30
        while not _answers(server):
            assert proc.poll() is None and time.monotonic() < deadline, f"kvshard on port {port} did not start"
            time.sleep(0.05)
        yield server
    finally:
        stop_process(proc)


def _answers(server: Server) -> bool:
    try:
        return answers_version(server)
    except OSError:
        return False


@pytest.fixture
def three_servers() -> Iterator[list[Server]]:
    with _kvshard_on(free_port()) as a, _kvshard_on(free_port()) as b, _kvshard_on(free_port()) as c:
        yield [a, b, c]


def _keys_on(server: Server, keys: list[bytes]) -> int:
    with server.connect() as sock:
        reply = _exchange(sock, b"get " + b" ".join(keys) + b"\r\n", b"END\r\n")
    return reply.count(b"VALUE ")


def test_keys_spread_multiget_fans_out_and_pipelining_keeps_order(tmp_path: Path, three_servers: list[Server]) -> None:
    keys = [b"user:%d" % i for i in range(300)]
    with _proxy(tmp_path, three_servers) as port, socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        replies = _exchange(sock, b"".join(b"set %s 0 0 %d\r\n%s\r\n" % (k, len(k), k) for k in keys), b"\r\n", len(keys))
        assert replies == b"STORED\r\n" * len(keys)
        # every server holds a share, and together exactly the keys set (the probe aside)
        shares = [_keys_on(server, keys) for server in three_servers]
        assert sum(shares) == len(keys) and all(share > 30 for share in shares), shares
        # one multi-get through the proxy: split by server, merged in the order asked
        reply = _exchange(sock, b"get " + b" ".join(keys) + b"\r\n", b"END\r\n")
        assert re.findall(rb"VALUE (\S+) 0 \d+\r\n", reply) == keys
        # a pipeline of mixed commands answered in order
        request = b"".join(
            b"get %s\r\nincr n%d 1\r\nset n%d 0 0 1\r\n5\r\nincr n%d 2\r\ndelete %s\r\nget %s\r\n" % (k, i, i, i, k, k)
            for i, k in enumerate(keys[:50]))
        expected = b"".join(b"VALUE %s 0 %d\r\n%s\r\nEND\r\nNOT_FOUND\r\nSTORED\r\n7\r\nDELETED\r\nEND\r\n" % (k, len(k), k)
                            for k in keys[:50])
        assert _exchange(sock, request, b"END\r\n", 100) == expected


def test_a_killed_server_is_ejected_and_the_rest_serve(tmp_path: Path, three_servers: list[Server]) -> None:
    with _proxy(tmp_path, three_servers) as port:
        three_servers[1].proc.send_signal(signal.SIGKILL)
        three_servers[1].proc.wait(10)
        # until the proxy has ejected it, requests for its keys fail (SERVER_ERROR); after, all
        # keys hash to the two left
        deadline = time.monotonic() + 10
        stored = 0
        while time.monotonic() < deadline and stored < 200:
            with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
                stored = 0
                for i in range(200):
                    reply = _exchange(sock, b"set after:%d 0 0 2\r\nok\r\n" % i, b"\r\n")
                    if reply != b"STORED\r\n":
                        assert reply.startswith(b"SERVER_ERROR"), reply
                        break
                    stored += 1
            if stored < 200:
                time.sleep(0.2)
        assert stored == 200, "the proxy did not eject the dead server"
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            keys = [b"after:%d" % i for i in range(200)]
            reply = _exchange(sock, b"get " + b" ".join(keys) + b"\r\n", b"END\r\n")
        assert reply.count(b"VALUE ") == 200
        alive = [three_servers[0], three_servers[2]]
        assert [_keys_on(s, keys) > 0 for s in alive] == [True, True]
