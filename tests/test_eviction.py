"""-m is a real bound: writing far more than it holds, from one connection or 64 at once, evicts
old items and RSS stays bounded."""

from __future__ import annotations

import multiprocessing
import socket
import threading
import time
from pathlib import Path

from kvshard.server import FIXED_OVERHEAD_PER_SHARD_MB
from loadtest.memory import process_pss_bytes
from tests.servers import start_server

MEMORY_MB = 64
SHARDS = 2
ITEMS = 400 * 1024  # 400 MiB of 1 KiB values
VALUE = b"v" * 1024


def _tree(pid: int) -> list[int]:
    kids = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [pid, *map(int, kids)]


def _rss_mb(pids: list[int]) -> float:
    """The memory the server's processes really use together: the sum of their PSS (each
    page counted once, shared pages split among the processes sharing them). Summing RSS would
    count the interpreter pages the shards share with the supervisor they were forked from in
    every process (about 15 MB of the 70 MB an idle 2-shard server's RSS adds up to)."""
    return sum(process_pss_bytes(pid) for pid in pids) / 2**20


def _read_until(sock: socket.socket, end: bytes) -> bytes:
    buf = b""
    while not buf.endswith(end):
        chunk = sock.recv(65536)
        assert chunk, "server closed the connection"
        buf += chunk
    return buf


def test_rss_follows_memory_limit_under_eviction() -> None:
    with start_server("kvshard", "-m", str(MEMORY_MB), threads=SHARDS) as srv:
        pids = _tree(srv.proc.pid)
        assert len(pids) == SHARDS + 1
        peak = 0.0
        with srv.connect(timeout=60) as sock:
            batch = []
            for i in range(ITEMS):
                batch.append(b"set evict:%09d 0 0 1024 noreply\r\n%s\r\n" % (i, VALUE))
                if len(batch) == 256:
                    sock.sendall(b"".join(batch))
                    batch.clear()
                if i % 16384 == 0:
                    peak = max(peak, _rss_mb(pids))
            sock.sendall(b"".join(batch))
            newest = [b"evict:%09d" % i for i in range(ITEMS - 50, ITEMS)]
            sock.sendall(b"get " + b" ".join(newest) + b"\r\n")
            reply = _read_until(sock, b"END\r\n")
            peak = max(peak, _rss_mb(pids))
            sock.sendall(b"stats\r\n")
            stats = dict(
                line.split(" ", 2)[1:] for line in _read_until(sock, b"END\r\n").decode().splitlines()
                if line.startswith("STAT ")
            )
    # the newest items are all there
    assert reply.count(b"VALUE ") == len(newest)
    assert int(stats["evictions"]) > ITEMS // 2
    assert int(stats["total_items"]) == ITEMS
    assert int(stats["bytes"]) <= MEMORY_MB * 1024 * 1024
    # and the processes stayed within -m plus the stated fixed overhead per shard
    bound = MEMORY_MB + SHARDS * FIXED_OVERHEAD_PER_SHARD_MB
    assert peak < bound, f"peak RSS {peak:.0f} MiB over {bound} MiB"
    assert FIXED_OVERHEAD_PER_SHARD_MB < 80



def _flood(port: int, first: int, connections: int, per_connection: int) -> None:
    """One client process: ``connections`` threads, each a connection flooding noreply sets."""

    def one(n: int) -> None:
        with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
            for start in range(0, per_connection, 128):
                sock.sendall(b"".join(b"set flood:%d:%d 0 0 1024 noreply\r\n%s\r\n" % (n, i, VALUE)
                                      for i in range(start, min(per_connection, start + 128))))
            sock.sendall(b"version\r\n")
            assert sock.recv(100).startswith(b"VERSION")

    threads = [threading.Thread(target=one, args=(first + k,)) for k in range(connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def test_set_flood_from_64_connections_stays_under_the_limit() -> None:
    """64 connections (from 4 client processes, so the clients outrun the server) flood
    noreply sets of 1 KiB values, 3x the memory limit in all, at once: the server's
    footprint stays under -m plus the fixed per-shard overhead, no set is lost, and it still
    serves. What bounds it: reads of at most 64 KiB (kvshard.connection.READ_SIZE) and what a
    shard holds for its peer (framework.channel.DEFAULT_MAX_QUEUED); the rest of the flood
    waits in the clients' sockets."""
    connections, processes = 64, 4
    per_connection = 3 * MEMORY_MB * 1024 // connections
    with start_server("kvshard", "-m", str(MEMORY_MB), threads=SHARDS) as srv:
        pids = _tree(srv.proc.pid)
        context = multiprocessing.get_context("fork")
        clients = [
            context.Process(target=_flood, args=(srv.port, p * (connections // processes), connections // processes, per_connection))
            for p in range(processes)
        ]
        for client in clients:
            client.start()
        peak = 0.0
        while any(client.is_alive() for client in clients):
            peak = max(peak, _rss_mb(pids))
            time.sleep(0.02)
        peak = max(peak, _rss_mb(pids))
        assert all(client.exitcode == 0 for client in clients)
        with srv.connect() as sock:
            sock.sendall(b"set after 0 0 2\r\nok\r\nget after\r\n")
            assert _read_until(sock, b"END\r\n") == b"STORED\r\nVALUE after 0 2\r\nok\r\nEND\r\n"  # still serving
            sock.sendall(b"stats\r\n")
            stats = dict(line.split(b" ", 2)[1:] for line in _read_until(sock, b"END\r\n").splitlines()
                         if line.startswith(b"STAT "))
    assert int(stats[b"total_items"]) == connections * per_connection + 1  # not one set lost on the way
    assert int(stats[b"evictions"]) > 0
    bound = MEMORY_MB + SHARDS * FIXED_OVERHEAD_PER_SHARD_MB
    print(f"64-connection set flood: peak {peak:.1f} MiB (bound {bound} MiB)")
    assert peak < bound, f"peak {peak:.1f} MiB over {bound} MiB"
