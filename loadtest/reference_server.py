"""The ceiling of the design: a minimal uvloop memcached server, compiled by Cython.

Run: ``python -m loadtest.reference_server -p PORT [-l 127.0.0.1] [-t 2] [--interpreted]``

It is not kvshard and serves nobody: it answers ``get`` (one or more keys), ``set`` and
``version`` of the ASCII protocol and nothing else, keeps each worker's items in a plain dict
of rendered ``VALUE`` blocks, never expires or evicts, and never forwards: each of its ``-t``
worker processes (one uvloop each, sharing the port by ``SO_REUSEPORT``) owns a separate dict,
so a key set through one worker misses through another. It is what the same runtime (CPython,
uvloop, kernel sockets) costs per request with almost no work of our own: the floor under
kvshard's request path, measured by ``python -m loadtest.memaslap_ab --reference`` in the same
run as kvshard and memcached.

Unless ``--interpreted`` is given, the first run compiles this file with Cython
(``cythonize -i``) into ``~/.cache/kvshard-reference/<hash of this file>/`` and imports the
compiled module from there, so :class:`Session` is a C extension type as kvshard's sessions
are. The start-up line says which (``compiled`` or ``interpreted``).
"""
from __future__ import annotations

import argparse
import hashlib
import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import cython

__all__ = ["Session", "serve", "main", "compiled_module"]

_CRLF = b"\r\n"
COMPILED: bool = cython.compiled
"""True in the Cython-built module."""


@cython.cclass
class Session:
    """One client connection: parse whole requests out of the bytes received, answer them in
    one write."""

    transport: object
    store: dict
    pending: bytes

    def __init__(self, store: dict) -> None:
        self.store = store
        self.pending = b""
        self.transport = None

    def connection_made(self, transport: object) -> None:
        self.transport = transport

    def connection_lost(self, exc: object) -> None:
        self.transport = None

    def eof_received(self) -> bool:
        return False

    def pause_writing(self) -> None:
        pass

    def resume_writing(self) -> None:
        pass

    def data_received(self, data: bytes) -> None:
        buf: bytes = self.pending + data if self.pending else data
        store: dict = self.store
        out: list = []
        pos: cython.Py_ssize_t = 0
        size: cython.Py_ssize_t = len(buf)
        eol: cython.Py_ssize_t
        end: cython.Py_ssize_t
        while pos < size:
            eol = buf.find(_CRLF, pos)
            if eol < 0:
                break
            line: bytes = buf[pos:eol]
            if line.startswith(b"get "):
                for key in line[4:].split():
                    block = store.get(key)
                    if block is not None:
                        out.append(block)
                out.append(b"END\r\n")
                pos = eol + 2
            elif line.startswith(b"set "):
                parts: list = line.split()
                end = eol + 2 + int(parts[4]) + 2
                if end > size:
                    break
                store[parts[1]] = b"VALUE %s %s %s\r\n%s" % (parts[1], parts[2], parts[4], buf[eol + 2:end])
                out.append(b"STORED\r\n")
                pos = end
            elif line == b"version":
                out.append(b"VERSION reference\r\n")
                pos = eol + 2
            else:
                out.append(b"ERROR\r\n")
                pos = eol + 2
        self.pending = buf[pos:]
        if out:
            self.transport.write(b"".join(out))


def serve(host: str, port: int) -> None:
    """One worker: its own uvloop and dict, on a SO_REUSEPORT socket."""
    import asyncio

    import uvloop

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(1024)
    store: dict = {}
    loop = uvloop.new_event_loop()
    asyncio.set_event_loop(loop)
    loop.run_until_complete(loop.create_server(lambda: Session(store), sock=sock))
    loop.run_forever()


def compiled_module() -> object:
    """This file compiled by Cython (built on first use into a cache folder), imported."""
    source = Path(__file__).resolve()
    digest = hashlib.sha256(source.read_bytes()).hexdigest()[:16]
    folder = Path.home() / ".cache" / "kvshard-reference" / digest
    name = "reference_core"
    built = sorted(folder.glob(f"{name}.*.so")) if folder.is_dir() else []
    if not built:
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, folder / f"{name}.py")
        subprocess.run([sys.executable, "-m", "Cython.Build.Cythonize", "-i", "-3", "-q", f"{name}.py"],
                       cwd=folder, check=True, stdout=subprocess.DEVNULL)
        built = sorted(folder.glob(f"{name}.*.so"))
    spec = importlib.util.spec_from_file_location(name, built[0])
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m loadtest.reference_server")
    p.add_argument("-p", "--port", type=int, required=True)
    p.add_argument("-l", "--listen", default="127.0.0.1")
    p.add_argument("-t", "--threads", type=int, default=2, help="worker processes")
    p.add_argument("--interpreted", action="store_true", help="run this file as plain Python")
    args = p.parse_args(argv)
    module = sys.modules[__name__] if args.interpreted else compiled_module()
    print(f"reference server: {'compiled' if getattr(module, 'COMPILED') else 'interpreted'}, "
          f"{args.threads} workers on {args.listen}:{args.port}", flush=True)
    children = []
    for _ in range(args.threads):
        pid = os.fork()
        if pid == 0:
            try:
                module.serve(args.listen, args.port)  # type: ignore[attr-defined]
            finally:
                os._exit(0)
        children.append(pid)
    def stop(signum: int, frame: object) -> None:
        for pid in children:
            os.kill(pid, signal.SIGKILL)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    for pid in children:
        os.waitpid(pid, 0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
