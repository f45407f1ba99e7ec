"""Instructions per request on kvshard's request path, counted by callgrind (exact and
repeatable, unlike time on a shared machine).

    valgrind --tool=callgrind --callgrind-out-file=/dev/null python scripts/count_instructions.py get 2000
    python scripts/count_instructions.py --callgrind [get|set|get_forwarded|...]   # runs valgrind twice, prints Ir/op

Method: one :class:`~kvshard.connection.ClientConnection` of shard 0 of two, on a transport
that only keeps the bytes written, serves ``N`` reads of one request each (as memaslap sends
them). A forwarded request goes to a messenger that runs the owner's handler at once and
answers in the same call (no channel: that is framework.bench's job), so these counts are the
connection, codec and item store alone. Callgrind counts the whole process, start-up
included; running N and 2N requests and dividing the difference by N leaves the requests.
``PYTHONHASHSEED=0`` makes the dicts probe alike in every run (a random seed moves a count by
a hundred or so).

``--server [--multiget M] [--binary]`` counts the whole server instead (take the median of three runs): ``kvshard -t 2`` runs
under callgrind (every process: supervisor and shards), memaslap sends it exactly N and then, on
a fresh server, 2N operations (``-x``; 16 connections, 100-byte values, its default 9:1 get/set
mix with 64-byte keys), and the difference of the two totals over N is what one memaslap
operation costs the server's processes in user space: sockets and uvloop, parsing, routing,
the channel and the other shard's work, the cache. Timing under valgrind differs from a real
run (fewer requests arrive per read, so per-read costs weigh more), and batching makes it vary
by a few percent between runs, but it moves with the code and not with the machine's noise.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections import deque
from typing import Any, Callable

from framework.channel import Messenger
from kvshard.cache import Cache
from kvshard.connection import ClientConnection
from kvshard.context import ShardContext
from kvshard.service import KVService
from kvshard.routing import owner_of

__all__ = ["main"]

SCENARIOS = ("get", "get_miss", "set", "get_forwarded", "set_forwarded", "mget10", "set10", "bget", "bset")


class _Transport:
    """Keeps the last write only; ``write`` is a C function, as uvloop's is."""

    def __init__(self) -> None:
        self.last: deque[bytes] = deque(maxlen=1)
        self.write = self.last.append

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return default

    def close(self) -> None:
        pass


class _Messenger(Messenger):
    """Shard 1, answering every call at once (a Messenger, as the shard context's field is
    typed, whose calling methods are all replaced)."""

    def __init__(self, remote: KVService) -> None:
        self._remote = remote
        self._fixed = remote.fixed_handlers()

    def call(self, shard: int, name: str, args: tuple[Any, ...], on_reply: Callable[[Any, Any], None]) -> None:
        on_reply(getattr(self._remote, name[3:])(*args), None)

    def send(self, shard: int, name: str, *args: Any) -> bool:
        getattr(self._remote, name[3:])(*args)
        return True

    def call_fixed(self, shard: int, handler_id: int, key: bytes, value: Any, a: int, b: int, c: int,
                   on_reply: Callable[[Any, Any], None]) -> None:
        on_reply(self._fixed[handler_id](key, value, a, b, c), None)

    def send_fixed(self, shard: int, handler_id: int, key: bytes, value: Any, a: int, b: int, c: int) -> bool:
        self._fixed[handler_id](key, value, a, b, c)
        return True


def _key(owner: int, n: int = 0) -> bytes:
    i = n
    while True:
        key = b"key:%08d" % i
        if owner_of(key, 2) == owner:
            return key
        i += 1


def _requests(scenario: str) -> bytes:
    value = b"x" * 100
    owner = 1 if scenario.endswith("forwarded") else 0
    key = _key(owner)
    if scenario in ("bget", "bset"):  # binary GET / SET, as memaslap -B sends them
        from kvshard.protocol.binary import HEADER

        extras = b"" if scenario == "bget" else bytes(8)
        body = extras + key + (b"" if scenario == "bget" else value)
        return HEADER.pack(0x80, 0 if scenario == "bget" else 1, len(key), len(extras), 0, 0, len(body), 7, 0) + body
    if scenario.startswith("get"):
        return b"get " + (key if scenario != "get_miss" else b"missing:" + key) + b"\r\n"
    if scenario == "mget10":
        return b"get " + b" ".join(_key(i % 2, i * 7) for i in range(10)) + b"\r\n"
    if scenario == "set10":  # ten pipelined sets in one read: the parser's path (a "request" is the read)
        return b"".join(b"set %b 0 0 %d\r\n%b\r\n" % (_key(i % 2, i * 7), len(value), value) for i in range(10))
    return b"set %b 0 0 %d\r\n%b\r\n" % (key, len(value), value)


def serve(scenario: str, count: int) -> bytes:
    loop = asyncio.new_event_loop()
    local, remote = KVService(Cache(64 << 20, 0, 2), loop), KVService(Cache(64 << 20, 1, 2), loop)
    ctx = ShardContext(shard_id=0, shards=2, service=local, messenger=_Messenger(remote), local=local.handlers(),
                       handler=lambda name: getattr(local, name[3:]), max_item_size=1 << 20, max_connections=100,
                       version="count", info=None)
    conn = ClientConnection(ctx)
    transport = _Transport()
    conn.connection_made(transport)
    value = b"x" * 100
    for i in range(20):  # every key the scenarios read exists
        for owner, service in ((0, local), (1, remote)):
            key = _key(owner, i * 7) if i else _key(owner)
            service.store(b"set", key, 0, 0, value, 0)
            service.store(b"set", _key(owner), 0, 0, value, 0)
    request = _requests(scenario)
    feed = conn.data_received
    for _ in range(count):
        feed(request)
    return transport.last[0]


def _callgrind(scenario: str, count: int) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "cg.out")
        subprocess.run(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", sys.executable, __file__,
                        scenario, str(count)], check=True, capture_output=True,
                       env={**os.environ, "PYTHONHASHSEED": "0"})  # the same dict probes every run
        with open(out) as f:
            return int(re.search(r"^summary: (\d+)", f.read(), re.M)[1])  # type: ignore[index]


def _server_total(ops: int, extra: list[str], server_args: list[str], keep: str | None = None) -> int:
    """Instructions of a callgrind-run ``kvshard -t 2 [server_args]`` (all its processes, start
    to stop) that served ``ops`` memaslap operations; ``keep``: a folder to copy callgrind's
    files to (one per process, for callgrind_annotate)."""
    from loadtest.memaslap_ab import find_memaslap, free_port, start_server, stop_server

    memaslap = find_memaslap()
    if memaslap is None:
        raise SystemExit("count_instructions: memaslap/memcaslap not found (apt-get install libmemcached-tools)")
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        argv = ["valgrind", "--tool=callgrind", "--trace-children=yes", f"--callgrind-out-file={tmp}/cg.%p",
                sys.executable, "-m", "kvshard.cli", "-l", "127.0.0.1", "-p", str(port), "-t", "2",
                "--metrics-port", "0", *server_args]
        server = start_server("kvshard-callgrind", argv, port, timeout=300, env={"PYTHONHASHSEED": "0"})
        try:
            subprocess.run([memaslap, "-s", f"127.0.0.1:{port}", "-T", "2", "-c", "16", "-X", "100",
                            "-x", str(ops), *extra], check=True, capture_output=True, timeout=1800)
        finally:
            stop_server(server)
        total = 0
        for name in os.listdir(tmp):
            with open(os.path.join(tmp, name)) as f:
                found = re.search(r"^summary: (\d+)", f.read(), re.M)
            total += int(found[1]) if found else 0
            if keep:
                shutil.copy(os.path.join(tmp, name), os.path.join(keep, f"{name}.x{ops}"))
        return total


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="instructions per request (see the module docstring)")
    p.add_argument("--callgrind", action="store_true", help="run under callgrind at N and 2N and print Ir per op")
    p.add_argument("--server", action="store_true",
                   help="count the whole server under memaslap instead (N = --count, default 20000 here)")
    p.add_argument("--multiget", type=int, default=1, help="--server: memaslap -d M")
    p.add_argument("--binary", action="store_true", help="--server: memaslap -B")
    p.add_argument("--server-args", default="",
                   help='--server: more kvshard flags, e.g. "-o no_lru_maintainer" (its timer work varies under valgrind)')
    p.add_argument("--keep", metavar="DIR", help="--server: keep callgrind's files in DIR")
    p.add_argument("scenarios", nargs="*", default=[])
    p.add_argument("--count", type=int, default=2000)
    args = p.parse_args(argv)
    if args.server:
        from kvshard import core

        count = args.count if args.count != 2000 else 20000
        extra = (["-d", str(args.multiget)] if args.multiget > 1 else []) + (["-B"] if args.binary else [])
        server_args = args.server_args.split()
        if args.keep:
            os.makedirs(args.keep, exist_ok=True)
        small = _server_total(count, extra, server_args, args.keep)
        large = _server_total(2 * count, extra, server_args, args.keep)
        print(f"# core: {core.mode()}; memaslap -x {count} and {2 * count} {' '.join(extra)}".rstrip()
              + (f"; kvshard {' '.join(server_args)}" if server_args else ""))
        print(f"server {(large - small) / count:10.0f} instructions/operation")
        return 0
    if not args.callgrind:
        scenario, count = args.scenarios[0], int(args.scenarios[1])
        serve(scenario, count)
        return 0
    from framework import extensions
    from kvshard import core

    print(f"# core: {core.mode()}{' (KVSHARD_NO_EXTENSIONS)' if extensions.extensions_disabled() else ''}")
    for scenario in args.scenarios or SCENARIOS:
        small, large = _callgrind(scenario, args.count), _callgrind(scenario, 2 * args.count)
        print(f"{scenario:<14} {(large - small) / args.count:10.0f} instructions/request")
    return 0


if __name__ == "__main__":
    sys.exit(main())
