"""SIGTERM under load is a graceful stop: kvshard exits 0 within 5 s, and no client sees a
truncated reply (each gets whole replies, then the connection closes between replies)."""

from __future__ import annotations

import signal
import socket
import subprocess
import threading
import time

from loadtest.memaslap_ab import find_memaslap
from tests.servers import require_tool, start_server

BIG = 900_000  # values so large, and so many asked for at once, that when the stop comes
DEPTH = 10  # part of the replies are still in the server's own buffers, beyond the kernel's


def _client(port: int, key: bytes, value: bytes, counts: dict[str, int], lock: threading.Lock) -> None:
    """Get ``key`` over and over (pipelining two requests) until the server closes; count whole
    replies and truncated ones (the connection closing in the middle of a reply)."""
    expected = b"VALUE %s 0 %d\r\n%s\r\nEND\r\n" % (key, len(value), value)
    whole = truncated = 0
    try:
        sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    except OSError:
        return
    with sock:
        pending = b""
        try:
            sock.sendall(b"get %s\r\n" % key * DEPTH)
            while True:
                chunk = sock.recv(1 << 16)
                if not chunk:
                    truncated += bool(pending)  # closed in the middle of a reply
                    break
                time.sleep(0.0005)  # a reader a little slower than the server
                pending += chunk
                while len(pending) >= len(expected):
                    if not pending.startswith(expected):
                        truncated += 1
                        pending = b""
                        break
                    pending = pending[len(expected):]
                    whole += 1
                    try:
                        sock.sendall(b"get %s\r\n" % key)  # keep DEPTH replies owed
                    except OSError:
                        pass
        except OSError:
            truncated += bool(pending)
    with lock:
        counts["whole"] += whole
        counts["truncated"] += truncated
        counts["clients"] += 1


def test_sigterm_under_load_drains_and_exits_0() -> None:
    memaslap = find_memaslap() or require_tool("memcaslap")
    with start_server("kvshard", "-m", "256") as server:
        values = {b"big:%d" % i: bytes([65 + i % 26]) * BIG for i in range(8)}  # 8 clients, one key each
        with server.connect() as sock:
            for key, value in values.items():
                sock.sendall(b"set %s 0 0 %d\r\n%s\r\n" % (key, len(value), value))
                assert sock.recv(100) == b"STORED\r\n"
        load = subprocess.Popen([memaslap, "-s", f"127.0.0.1:{server.port}", "-T", "2", "-c", "32", "-t", "20s"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        counts = {"whole": 0, "truncated": 0, "clients": 0}
        lock = threading.Lock()
        clients = [threading.Thread(target=_client, args=(server.port, key, value, counts, lock))
                   for key, value in values.items()]
        try:
            for thread in clients:
                thread.start()
            time.sleep(2.0)
            started = time.monotonic()
            server.proc.send_signal(signal.SIGTERM)
            code = server.proc.wait(10)
            took = time.monotonic() - started
        finally:
            load.kill()
            load.wait()
        for thread in clients:
            thread.join(15)
    assert code == 0 and took < 5.0, (code, took)
    assert counts["clients"] == 8 and counts["whole"] > 8, counts
    assert counts["truncated"] == 0, counts
