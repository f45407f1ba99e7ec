"""Limits that keep one client from hurting the server or the others: memcached's
``-o idle_timeout``, slowloris (hundreds of half-sent lines) and a client that never reads its
replies; in each case server memory stays bounded and other clients are served."""

from __future__ import annotations

import socket
import time

import pytest

from loadtest.memory import tree_pss_bytes
from tests.servers import start_server
from kvshard.routing import owner_of


def _stats(sock: socket.socket, args: bytes = b"") -> dict[str, str]:
    sock.sendall(b"stats" + args + b"\r\n")
    data = b""
    while not data.endswith(b"END\r\n"):
        data += sock.recv(65536)
    return {p[1]: p[2] for p in (line.split(" ") for line in data.decode().splitlines()) if len(p) == 3}


def _served(sock: socket.socket) -> float:
    """Seconds a set and get take (the server is serving others)."""
    started = time.monotonic()
    sock.sendall(b"set probe 0 0 2\r\nok\r\nget probe\r\n")
    data = b""
    while not data.endswith(b"END\r\n"):
        chunk = sock.recv(1000)
        assert chunk
        data += chunk
    assert data == b"STORED\r\nVALUE probe 0 2\r\nok\r\nEND\r\n"
    return time.monotonic() - started


def test_idle_timeout_kicks_idle_connections_only() -> None:
    with start_server("kvshard", "-o", "idle_timeout=1") as server:
        idle, busy, admin = server.connect(), server.connect(), server.connect()
        with idle, busy, admin:
            assert _stats(admin, b" settings")["idle_timeout"] == "1"
            idle.settimeout(6)
            started = time.monotonic()
            deadline = started + 6
            closed_after = None
            while time.monotonic() < deadline:
                _served(busy)  # a command every 0.2 s keeps it
                _served(admin)
                idle.setblocking(False)
                try:
                    if idle.recv(100) == b"":
                        closed_after = time.monotonic() - started
                        break
                except BlockingIOError:
                    pass
                time.sleep(0.2)
            assert closed_after is not None and 1.0 <= closed_after < 4.0, closed_after
            _served(busy)
            assert _stats(admin)["idle_kicks"] == "1"


def test_slowloris_keeps_memory_bounded_and_others_served() -> None:
    """300 connections each trickle a command line a byte at a time and never finish it."""
    with start_server("kvshard") as server:
        before = tree_pss_bytes(server.proc.pid)
        slow = [server.connect() for _ in range(300)]
        try:
            worst = 0.0
            with server.connect() as client:
                for step in range(20):
                    for sock in slow:
                        sock.sendall(b"get " if step == 0 else b"k")
                    worst = max(worst, _served(client))
                    time.sleep(0.05)
            growth = tree_pss_bytes(server.proc.pid) - before
        finally:
            for sock in slow:
                sock.close()
    assert worst < 1.0, worst
    assert growth < 32 * 2**20, growth  # 300 connections: well under 100 KiB each


def _shard_of(admin: socket.socket, client: socket.socket, shards: int = 2) -> int:
    """Which shard serves ``client`` (``stats conns`` numbers a connection fd * shards + shard)."""
    port = client.getsockname()[1]
    client.sendall(b"version\r\n")  # answered: the shard has taken the connection
    assert client.recv(100).startswith(b"VERSION ")
    admin.sendall(b"stats conns\r\n")
    data = b""
    while not data.endswith(b"END\r\n"):
        data += admin.recv(65536)
    for line in data.decode().splitlines():
        if line.endswith(f":addr tcp:127.0.0.1:{port}"):
            return int(line.split()[1].split(":")[0]) % shards
    raise AssertionError(f"connection from port {port} not in stats conns")


@pytest.mark.parametrize("where", ["owner", "other"])
def test_a_client_that_never_reads_cannot_grow_server_memory(where: str) -> None:
    """A client asks for a 512 KiB value 4000 times (2 GiB of replies) and reads nothing, on
    the shard that owns the key (replies built locally) or on the other one (replies come back
    from the owner): the server stops taking its requests once its replies back up, so memory
    stays bounded and other clients are served."""
    with start_server("kvshard", "-m", "64") as server:
        value = b"x" * 512 * 1024
        owner = owner_of(b"big", 2)
        with server.connect() as admin:
            admin.sendall(b"set big 0 0 %d\r\n%s\r\n" % (len(value), value))
            assert admin.recv(100) == b"STORED\r\n"
            before = tree_pss_bytes(server.proc.pid)
            spare = []
            while True:  # a connection on the wanted shard (the kernel picks by address hash)
                hog = server.connect()
                if (_shard_of(admin, hog) == owner) == (where == "owner"):
                    break
                spare.append(hog)
            for sock in spare:
                sock.close()
        hog.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        hog.setblocking(False)
        request = b"get big\r\n" * 4000
        sent = 0
        deadline = time.monotonic() + 4
        while sent < len(request) and time.monotonic() < deadline:
            try:
                sent += hog.send(request[sent : sent + 65536])
            except BlockingIOError:
                time.sleep(0.01)
        time.sleep(1.0)
        growth = tree_pss_bytes(server.proc.pid) - before
        with server.connect() as client:
            assert _served(client) < 1.0
        hog.close()
    assert growth < 96 * 2**20, growth  # not the 2 GiB it asked for
