"""Start a memcached-compatible server for a test: kvshard, or a real memcached to compare.

``start_server(kind, *extra_args)`` is a context manager yielding a :class:`Server` whose
``port`` answers ``version`` once the block starts. Kinds:

* ``kvshard``: ``python -m kvshard.cli -l 127.0.0.1 -p PORT -t 2 --metrics-port 0`` plus extra args
  (a test that wants the metrics endpoint passes its own ``--metrics-port``);
* ``memcached``: the Debian ``memcached`` binary with the same flags (``-U 0``, as root ``-u root``).

``server_kinds()`` lists the kinds to parametrize over: memcached only where it is installed;
under CI (CI=true) a missing memcached is an error, not a skip.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import IO, Callable, Iterator

import pytest

from loadtest.memaslap_ab import stop_tree

__all__ = [
    "Server", "start_server", "server_kinds", "free_port", "in_ci", "require_tool",
    "answers_version", "answers_unauthenticated", "answers_binary_version",
]


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def require_tool(name: str) -> str:
    """Path of an external tool; skip the test without it (fail under CI)."""
    path = shutil.which(name)
    if path is None:
        message = f"{name} is not installed (scripts/setup.sh installs it)"
        if in_ci():
            pytest.fail(message)
        pytest.skip(message)
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    kind: str
    port: int
    proc: subprocess.Popen[bytes]
    host: str = "127.0.0.1"

    @property
    def address(self) -> tuple[str, int]:
        return (self.host, self.port)

    def connect(self, timeout: float = 5.0) -> socket.socket:
        return socket.create_connection(self.address, timeout=timeout)


def _command(kind: str, port: int, threads: int, extra: tuple[str, ...]) -> list[str]:
    if kind == "kvshard":
        # the metrics port is off unless a test asks for it: servers run side by side here
        metrics = () if "--metrics-port" in extra else ("--metrics-port", "0")
        return [sys.executable, "-m", "kvshard.cli", "-l", "127.0.0.1", "-p", str(port), "-t", str(threads), *metrics, *extra]
    if kind == "memcached":
        binary = require_tool("memcached")
        user = ["-u", "root"] if os.geteuid() == 0 else []
        return [binary, *user, "-l", "127.0.0.1", "-p", str(port), "-U", "0", "-t", str(threads), *extra]
    raise ValueError(f"unknown server kind {kind!r}")


def answers_version(server: Server) -> bool:
    with server.connect(timeout=1.0) as s:
        s.sendall(b"version\r\n")
        return s.recv(100).startswith(b"VERSION ")


def answers_unauthenticated(server: Server) -> bool:
    """Ready, for a server with -Y: a client that has not logged in is refused."""
    with server.connect(timeout=1.0) as s:
        s.sendall(b"version\r\n")
        return s.recv(100) == b"CLIENT_ERROR unauthenticated\r\n"


def answers_binary_version(server: Server) -> bool:
    """Ready, for a binary-only server (-S): a binary VERSION is answered."""
    from kvshard.protocol import binary as b

    with server.connect(timeout=1.0) as s:
        s.sendall(b.HEADER.pack(b.REQUEST_MAGIC, b.OP_VERSION, 0, 0, 0, 0, 0, 0, 0))
        return s.recv(24)[:2] == bytes((b.RESPONSE_MAGIC, b.OP_VERSION))


def _wait_ready(server: Server, deadline: float, ready: Callable[[Server], bool] = answers_version) -> None:
    while True:
        if server.proc.poll() is not None:
            raise RuntimeError(f"{server.kind} exited with status {server.proc.returncode} at start")
        try:
            if ready(server):
                return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{server.kind} did not answer on port {server.port}")
        time.sleep(0.05)


@contextlib.contextmanager
def start_server(
    kind: str, *extra: str, threads: int = 2, port: int | None = None,
    ready: Callable[[Server], bool] = answers_version, env: dict[str, str] | None = None,
    stderr: IO[bytes] | None = None,
) -> Iterator[Server]:
    """A fresh server on a free port, stopped afterwards; ``ready`` says when it serves (by
    default: it answers ``version`` in the clear); ``env``: variables added to its environment;
    ``stderr``: a file its standard error goes to (else the test's)."""
    port = port or free_port()
    environment = {**os.environ, **env} if env else None
    proc = subprocess.Popen(_command(kind, port, threads, extra), stdin=subprocess.DEVNULL, env=environment,
                            stderr=stderr)
    server = Server(kind, port, proc)
    try:
        _wait_ready(server, time.monotonic() + 30, ready)
        yield server
    finally:
        stop_process(proc)


def stop_process(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL if it is still there 10 s later (and any child left behind)."""
    stop_tree(proc)


def server_kinds() -> list[str]:
    kinds = ["kvshard"]
    if shutil.which("memcached") or in_ci():
        kinds.append("memcached")
    return kinds
