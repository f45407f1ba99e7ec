"""Instructions per operation of one shard's item store with its LRU maintainer, counted by
callgrind: the cache, the arena (index growth, evictions, the segmented LRU's moves) and the
maintainer's wake-ups, without the connection, codecs or routing (scripts/count_instructions.py
counts those).

    python scripts/count_store.py --callgrind [load|mixed|evict|idle] [--count N]

Scenarios (64-byte keys and 100-byte values, as memaslap's; a fake clock and a fake loop, so
every run does the same work):

* ``load``: N sets of new keys into an empty 64 MiB cache, a maintainer wake-up every 5 sets
  (so about every 50 operations of memaslap's 9:1 get/set mix): what a shard pays per new key
  while its index grows;
* ``mixed``: 20000 keys loaded (and the index's growth ended), then N operations, 9:1 get/set
  over them, a wake-up every 50;
* ``evict``: the same mix on a full 4 MiB cache, each set a new key that evicts;
* ``idle``: N wake-ups of a maintainer whose cache holds one item.

Method as count_instructions': callgrind counts the whole process, so N operations and 0 are run
and the difference divided by N. ``PYTHONHASHSEED=0`` makes dicts probe alike in every run. A
checkout without kvshard/lru_maintainer.py (before the segmented LRU) runs without wake-ups,
so the script can be copied into an older worktree to measure a baseline.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import re
import subprocess
import sys
import tempfile
from typing import Any, Callable

import kvshard
from kvshard.cache import Cache

__all__ = ["main", "run"]

SCENARIOS = ("load", "mixed", "evict", "idle")
_START = 1.7e9  # the fake clock's Unix time at the start


class _Loop:
    """Keeps the maintainer's next wake-up; the scenario decides when it runs."""

    def __init__(self) -> None:
        self.pending: Callable[[], None] | None = None

    def call_later(self, delay: float, callback: Callable[[], None]) -> Any:
        self.pending = callback
        return self

    def call_soon(self, callback: Callable[[], None]) -> Any:
        return self.call_later(0.0, callback)

    def cancel(self) -> None:
        pass


def _keys(n: int, seed: int) -> list[bytes]:
    return [hashlib.sha256(b"%d:%d" % (seed, i)).hexdigest().encode() for i in range(n)]


def run(scenario: str, count: int) -> None:
    now = [_START]
    cache = Cache((4 << 20) if scenario == "evict" else (64 << 20), 0, 1, clock=lambda: now[0])
    loop = _Loop()
    if os.path.exists(os.path.join(kvshard.__path__[0], "lru_maintainer.py")):
        from kvshard.lru_maintainer import LruMaintainer

        LruMaintainer(cache, loop, clock=lambda: now[0] - _START).start()  # type: ignore[arg-type]

    def wake() -> None:
        callback, loop.pending = loop.pending, None
        if callback is not None:
            callback()

    value = b"v" * 100
    if scenario == "idle":
        cache.set_item(b"k", 0, 0, value)
        for _ in range(count):
            now[0] += 1e-3
            wake()
        return
    loaded = _keys(count if scenario == "load" else 20000, 1)
    for i, key in enumerate(loaded):
        now[0] += 100e-6
        cache.set_item(key, 0, 0, value)
        if i % 5 == 4:
            wake()
    if scenario == "load":
        return
    for _ in range(200):  # the index's growth ends
        now[0] += 1e-3
        wake()
    rng = random.Random(2)
    fresh = _keys(count, 3)
    for i in range(count):
        now[0] += 20e-6
        if rng.random() < 0.1:
            cache.set_item(fresh[i] if scenario == "evict" else loaded[rng.randrange(20000)], 0, 0, value)
        else:
            cache.get_block(loaded[rng.randrange(20000)])
        if i % 50 == 49:
            wake()


def _callgrind(scenario: str, count: int) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "cg.out")
        subprocess.run(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", sys.executable, __file__,
                        scenario, str(count)], check=True, capture_output=True, env={**os.environ, "PYTHONHASHSEED": "0"})
        with open(out) as f:
            return int(re.search(r"^summary: (\d+)", f.read(), re.M)[1])  # type: ignore[index]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="instructions per item-store operation (see the module docstring)")
    p.add_argument("--callgrind", action="store_true", help="run under callgrind at 0 and N and print Ir per op")
    p.add_argument("--count", type=int, default=10000)
    p.add_argument("scenarios", nargs="*", default=[])
    args = p.parse_args(argv)
    if not args.callgrind:
        run(args.scenarios[0], int(args.scenarios[1]))
        return 0
    print(f"# {'interpreted' if os.environ.get('KVSHARD_NO_EXTENSIONS') else 'compiled (where built)'}")
    for scenario in args.scenarios or SCENARIOS:
        small, large = _callgrind(scenario, 0), _callgrind(scenario, args.count)
        print(f"{scenario:<8} {(large - small) / args.count:10.0f} instructions/operation")
    return 0


if __name__ == "__main__":
    sys.exit(main())
