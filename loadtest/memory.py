"""Bytes per item: load N items (keys of 16-20 bytes, 100-byte values unless told) into kvshard
and into a stock memcached and see what memory each took, and how long loading took.

    python -m loadtest.memory [--items 1000000] [--threads 2] [--value-size 100]

Both servers get ``-m 2048`` (more for big values: nothing is evicted) and ``-t THREADS``. The items go in as pipelined
``noreply`` sets over one connection; loading is done when ``stats`` says ``curr_items`` is N.
Two measures per server, each divided by N:

* **resident**: the growth of the server's memory from before loading to after, as the sum of
  Pss over its process tree (/proc/PID/smaps_rollup; for kvshard's shard processes, which share
  the interpreter's pages, Pss counts each shared page once; for memcached, one process, it is
  its RSS);
* **stats bytes**: what the server itself counts as item memory (``stats``'s ``bytes``).

Loading time is from the first set sent to ``curr_items`` reaching N. The last line is
``summary: items=N value_size=V kvshard_resident_per_item=... memcached_resident_per_item=...
resident_ratio=... kvshard_stats_bytes_per_item=... memcached_stats_bytes_per_item=...
kvshard_load_seconds=... memcached_load_seconds=... load_ratio=...``.
"""

from __future__ import annotations

import argparse
import shutil
import socket
import sys
import time
from pathlib import Path
from typing import Callable

from .memaslap_ab import descendants, free_port, kvshard_argv, memcached_argv, start_server, stop_server

__all__ = ["main", "tree_pss_bytes", "process_pss_bytes", "load_items"]

VALUE_SIZE = 100


def key_for(i: int) -> bytes:
    """16 to 20 bytes: ``item:`` and 11 digits, and 0-4 more characters."""
    return b"item:%011d" % i + b"xyzw"[: i % 5]


def process_pss_bytes(pid: int) -> int:
    """Proportional set size of one process, in bytes (0 once it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) * 1024
    except FileNotFoundError:
        pass
    return 0


def tree_pss_bytes(pid: int) -> int:
    """Proportional set size of a process and its descendants, in bytes."""
    return sum(process_pss_bytes(member) for member in [pid, *(st.pid for st in descendants(pid))])


def _stats(sock: socket.socket) -> dict[str, str]:
    sock.sendall(b"stats\r\n")
    data = b""
    while not data.endswith(b"END\r\n"):
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("the server closed the connection")
        data += chunk
    return {parts[1]: parts[2] for parts in (line.split(" ") for line in data.decode().splitlines()) if len(parts) == 3}


def load_items(port: int, items: int, batch: int = 2000, value_size: int = VALUE_SIZE) -> None:
    value = b"v" * value_size
    with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
        for start in range(0, items, batch):
            sock.sendall(b"".join(b"set %s 0 0 %d noreply\r\n%s\r\n" % (key_for(i), len(value), value)
                                  for i in range(start, min(items, start + batch))))
        deadline = time.monotonic() + 300
        while int(_stats(sock).get("curr_items", 0)) < items:
            if time.monotonic() > deadline:
                raise RuntimeError(f"the server holds fewer than {items} items after 300 s")
            time.sleep(0.2)


def measure(name: str, argv_for_port: Callable[[int], list[str]], items: int,
            value_size: int = VALUE_SIZE) -> tuple[float, float, float]:
    """(resident bytes per item, stats bytes per item, seconds to load) of a fresh server
    loaded with ``items``."""
    port = free_port()
    server = start_server(name, argv_for_port(port), port)
    try:
        time.sleep(0.5)
        before = tree_pss_bytes(server.proc.pid)
        started = time.monotonic()
        load_items(port, items, value_size=value_size)
        loaded_in = time.monotonic() - started
        time.sleep(0.5)
        after = tree_pss_bytes(server.proc.pid)
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            stats = _stats(sock)
    finally:
        stop_server(server)
    resident = (after - before) / items
    counted = int(stats["bytes"]) / items
    print(f"{name:<10} {items} items in {loaded_in:5.1f} s: resident {resident:7.1f} B/item "
          f"(Pss {before / 2**20:.1f} -> {after / 2**20:.1f} MiB), stats bytes {counted:7.1f} B/item", flush=True)
    return resident, counted, loaded_in


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m loadtest.memory", description=__doc__.splitlines()[0])
    p.add_argument("--items", type=int, default=1_000_000)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--value-size", type=int, default=VALUE_SIZE, help="bytes per value (default 100)")
    args = p.parse_args(argv)
    memory = ["-m", str(max(2048, 2 * args.items * (args.value_size + 100) >> 20))]  # nothing evicted
    results = {"kvshard": measure("kvshard", lambda port: kvshard_argv(port, args.threads, [*memory, "--metrics-port", "0"]),
                                  args.items, args.value_size)}
    memcached = shutil.which("memcached")
    if memcached:
        results["memcached"] = measure("memcached", lambda port: memcached_argv(memcached, port, args.threads, memory),
                                       args.items, args.value_size)
    line = f"summary: items={args.items} value_size={args.value_size} kvshard_resident_per_item={results['kvshard'][0]:.1f}"
    if "memcached" in results:
        line += (f" memcached_resident_per_item={results['memcached'][0]:.1f}"
                 f" resident_ratio={results['kvshard'][0] / results['memcached'][0]:.2f}")
    line += f" kvshard_stats_bytes_per_item={results['kvshard'][1]:.1f}"
    if "memcached" in results:
        line += f" memcached_stats_bytes_per_item={results['memcached'][1]:.1f}"
    line += f" kvshard_load_seconds={results['kvshard'][2]:.2f}"
    if "memcached" in results:
        line += (f" memcached_load_seconds={results['memcached'][2]:.2f}"
                 f" load_ratio={results['kvshard'][2] / results['memcached'][2]:.2f}")
    print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
