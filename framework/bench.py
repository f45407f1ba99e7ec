"""Benchmark of the shard channels against multiprocessing.Queue and multiprocessing.Pipe.

Run: ``python -m framework.bench [--rounds 3] [--messages 1000000] [--roundtrips 20000]``

Method
------
Three workloads, each measured on three transports, rounds interleaved (kvshard, Queue, Pipe,
then again) so that a noisy neighbour hurts all of them alike; we print every round and the
medians.

* one-way: the sender sends ``--messages`` small messages ``("bench.sink", (i,))`` to the other
  process, which runs a handler for each (it counts them). Timed from the first send until the
  sender learns the receiver handled the last one. kvshard: ``shard.send`` on shard 0, batched
  by the runtime, to shard 1; the end is a ``submit_to`` that is answered after all earlier
  messages (per-pair ordering). Queue/Pipe: ``put``/``send`` per message from the parent to a
  child, which acknowledges the last one.
* sequential round trips: ``--roundtrips`` calls, one at a time, each an echo of a small
  integer; we report calls/s and the latency p50/p99 of single calls.
* pipelined round trips (kvshard only): 64 calls in flight at all times, calls/s, two ways:
  ``pipelined_roundtrips_per_s`` uses the fixed-record path (``call_fixed`` to an echo handler
  with an 8-byte key and a 32-byte value, the reply callback issuing the next call: no future
  per call), ``pipelined_msgpack_roundtrips_per_s`` 64 coroutines awaiting ``submit_to``.
* fixed one-way (kvshard only): as one-way, with ``send_fixed(1, SINK, b"", None, i, 0, 0)``
  in bursts of 1024 between reactor ticks, sent and received by compiled code as a server's
  request path is (:mod:`framework.bench_fixed`: a C loop calling ``send_fixed``, and a
  :class:`FixedTarget` sink the receiving channel runs with a C call).

Both kvshard shards are pinned to CPUs 0 and 1; the Queue/Pipe child is pinned to CPU 1 and the
parent to CPU 0, so every transport crosses the same two cores.

The last line is ``summary: one_way_msgs_per_s=<n> roundtrips_per_s=<n> ratio_vs_mp_queue=<r>
pipelined_roundtrips_per_s=<n> one_way_fixed_msgs_per_s=<n>`` where ``roundtrips_per_s`` is the
*sequential* rate, the ratio is kvshard's one-way rate over Queue's, ``one_way_msgs_per_s`` the
msgpack ``send`` path and ``pipelined_roundtrips_per_s`` the fixed path, all medians. The
``core:`` line says whether the channel ran compiled or interpreted (``KVSHARD_NO_EXTENSIONS=1``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import statistics
import sys
import tempfile
import time
from typing import Any

from . import bench_fixed, channel, ring
from .bench_fixed import CountingSink, send_burst
from .extensions import core_mode
from .shard import Shard, ShardApp, ShardSettings
from .smp import default_cpus, run

__all__ = ["main"]


_SINK, _ECHO = 0, 1  # fixed handler ids
_PIPELINE_DEPTH = 64


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


# ----- kvshard --------------------------------------------------------------------------------


class _BenchApp(ShardApp):
    def __init__(self, out: str, messages: int, roundtrips: int) -> None:
        self.out = out
        self.messages = messages
        self.roundtrips = roundtrips
        self.sink = CountingSink()  # counts both sinks' messages

    async def setup(self, shard: Shard) -> None:
        sink = self.sink

        def count_one(i: int) -> None:
            sink.received += 1

        shard.register("bench.sink", count_one)
        shard.register("bench.count", lambda: sink.received)

        def reset() -> None:
            sink.received = 0

        shard.register("bench.reset", reset)
        shard.register("bench.echo", lambda i: i)
        shard.messenger.register_fixed(_SINK, lambda key, value, a, b, c: sink.run_fixed(_SINK, key, value, a, b, c))
        shard.messenger.register_fixed_target(sink, [_SINK])  # a record reaches it with a C call
        shard.messenger.register_fixed(_ECHO, lambda key, value, a, b, c: value)

    async def start(self, shard: Shard) -> None:
        if shard.id == 0:
            asyncio.ensure_future(self._drive(shard))

    async def _drive(self, shard: Shard) -> None:
        result: dict[str, Any] = {}
        # one way
        send = shard.send
        t0 = time.perf_counter()
        for i in range(self.messages):
            if not send(1, "bench.sink", i):
                await shard.wait_writable(1)
                send(1, "bench.sink", i)
            if i & 1023 == 1023:
                await asyncio.sleep(0)  # let the reactor flush, as a server's loop would
        count = await shard.submit_to(1, "bench.count")
        elapsed = time.perf_counter() - t0
        assert count == self.messages, (count, self.messages)
        result["one_way_msgs_per_s"] = self.messages / elapsed
        # sequential round trips
        latencies = []
        t0 = time.perf_counter()
        for i in range(self.roundtrips):
            s = time.perf_counter()
            await shard.submit_to(1, "bench.echo", i)
            latencies.append(time.perf_counter() - s)
        elapsed = time.perf_counter() - t0
        result["roundtrips_per_s"] = self.roundtrips / elapsed
        result["p50_us"] = _percentile(latencies, 0.50) * 1e6
        result["p99_us"] = _percentile(latencies, 0.99) * 1e6
        # pipelined round trips, msgpack path: 64 coroutines and a future per call
        per_caller = max(1, self.roundtrips // _PIPELINE_DEPTH)

        async def caller() -> None:
            for i in range(per_caller):
                await shard.submit_to(1, "bench.echo", i)

        t0 = time.perf_counter()
        await asyncio.gather(*(caller() for _ in range(_PIPELINE_DEPTH)))
        elapsed = time.perf_counter() - t0
        result["pipelined_msgpack_roundtrips_per_s"] = _PIPELINE_DEPTH * per_caller / elapsed
        # pipelined round trips, fixed path: each reply's callback makes the next call
        calls = max(self.roundtrips, 4 * _PIPELINE_DEPTH) * 4
        t0 = time.perf_counter()
        await _pipelined_fixed(shard, calls)
        result["pipelined_roundtrips_per_s"] = calls / (time.perf_counter() - t0)
        # one way, fixed path: bursts of 1024 sent from compiled code (bench_fixed)
        await shard.submit_to(1, "bench.reset")
        messenger = shard.messenger
        sent = 0
        t0 = time.perf_counter()
        while sent < self.messages:
            burst = min(1024, self.messages - sent)
            done = send_burst(messenger, 1, _SINK, b"", sent, burst)
            sent += done
            if done < burst:
                await shard.wait_writable(1)
            else:
                await asyncio.sleep(0)  # let the reactor flush, as a server's loop would
        count = await shard.submit_to(1, "bench.count")
        elapsed = time.perf_counter() - t0
        assert count == self.messages, (count, self.messages)
        result["one_way_fixed_msgs_per_s"] = self.messages / elapsed
        with open(self.out, "w") as f:
            json.dump(result, f)
        shard.request_shutdown(0)


async def _pipelined_fixed(shard: Shard, calls: int) -> None:
    """``calls`` echo calls on the fixed path, ``_PIPELINE_DEPTH`` in flight at all times."""
    done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    call_fixed = shard.messenger.call_fixed
    key, value = b"key:0001", b"v" * 32
    sent = received = 0

    def on_reply(result: Any, error: BaseException | None) -> None:
        nonlocal sent, received
        received += 1
        if error is not None or result != value:
            if not done.done():
                done.set_exception(error or AssertionError(f"bad echo {result!r}"))
            return
        if sent < calls:
            sent += 1
            call_fixed(1, _ECHO, key, value, sent, 0, 0, on_reply)
        elif received == calls and not done.done():
            done.set_result(None)

    for _ in range(min(_PIPELINE_DEPTH, calls)):
        sent += 1
        call_fixed(1, _ECHO, key, value, sent, 0, 0, on_reply)
    await done


def _run_kvshard(messages: int, roundtrips: int) -> dict[str, float]:
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as f:
        out = f.name
    try:
        code = run(_BenchApp(out, messages, roundtrips), 2, cpus=_two_cpus(), settings=ShardSettings())
        if code != 0:
            raise RuntimeError(f"kvshard run failed with exit status {code}")
        with open(out) as f:
            return json.load(f)  # type: ignore[no-any-return]
    finally:
        os.unlink(out)


# ----- baselines --------------------------------------------------------------------------------


def _two_cpus() -> list[int]:
    cpus = default_cpus()
    return cpus[:2] if len(cpus) >= 2 else cpus * 2


def _baseline_child(get: Any, put: Any, messages: int, roundtrips: int, cpu: int) -> None:
    """The receiving process of a Queue/Pipe baseline (forked: the endpoints are inherited)."""
    os.sched_setaffinity(0, {cpu})
    received = 0
    handlers = {"bench.sink": lambda i: None}
    for _ in range(messages):
        name, args = get()
        handlers[name](*args)
        received += 1
    put(received)
    for _ in range(roundtrips):
        put(get()[1][0])


def _measure_baseline(kind: str, messages: int, roundtrips: int) -> dict[str, float]:
    ctx = mp.get_context("fork")
    cpus = _two_cpus()
    saved = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {cpus[0]})
    try:
        child_ends: tuple[Any, Any]
        put: Any
        get: Any
        if kind == "queue":
            requests, replies = ctx.Queue(), ctx.Queue()
            child_ends = (requests.get, replies.put)
            put, get = requests.put, replies.get
        else:
            parent_end, child_end = ctx.Pipe()
            child_ends = (child_end.recv, child_end.send)
            put, get = parent_end.send, parent_end.recv
        child = ctx.Process(target=_baseline_child, args=(*child_ends, messages, roundtrips, cpus[1]))
        child.start()
        t0 = time.perf_counter()
        for i in range(messages):
            put(("bench.sink", (i,)))
        assert get() == messages
        one_way = messages / (time.perf_counter() - t0)
        latencies = []
        t0 = time.perf_counter()
        for i in range(roundtrips):
            s = time.perf_counter()
            put(("bench.echo", (i,)))
            get()
            latencies.append(time.perf_counter() - s)
        rt = roundtrips / (time.perf_counter() - t0)
        child.join(30)
        return {
            "one_way_msgs_per_s": one_way,
            "roundtrips_per_s": rt,
            "p50_us": _percentile(latencies, 0.5) * 1e6,
            "p99_us": _percentile(latencies, 0.99) * 1e6,
        }
    finally:
        os.sched_setaffinity(0, saved)


# ----- report --------------------------------------------------------------------------------


def _fmt(row: dict[str, float]) -> str:
    parts = [f"one-way {row['one_way_msgs_per_s']:>12,.0f} msg/s"]
    parts.append(f"round trips {row['roundtrips_per_s']:>9,.0f}/s")
    parts.append(f"p50 {row['p50_us']:7.1f} us  p99 {row['p99_us']:7.1f} us")
    if "pipelined_roundtrips_per_s" in row:
        parts.append(f"pipelined(64) fixed {row['pipelined_roundtrips_per_s']:>9,.0f}/s")
        parts.append(f"msgpack {row['pipelined_msgpack_roundtrips_per_s']:>9,.0f}/s")
        parts.append(f"one-way fixed {row['one_way_fixed_msgs_per_s']:>12,.0f} msg/s")
    return "  ".join(parts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m framework.bench", description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--messages", type=int, default=1_000_000, help="one-way messages (kvshard)")
    parser.add_argument("--baseline-messages", type=int, default=200_000, help="one-way messages (Queue, Pipe)")
    parser.add_argument("--roundtrips", type=int, default=20_000)
    args = parser.parse_args(argv)
    if args.rounds < 1 or args.messages < 1 or args.roundtrips < 64 or args.baseline_messages < 1:
        parser.error("rounds, messages >= 1 and roundtrips >= 64")
    print(f"core: {core_mode([channel, ring, bench_fixed])}", flush=True)
    results: dict[str, list[dict[str, float]]] = {"kvshard": [], "mp.Queue": [], "mp.Pipe": []}
    for rnd in range(args.rounds):
        order = ["kvshard", "mp.Queue", "mp.Pipe"] if rnd % 2 == 0 else ["mp.Pipe", "mp.Queue", "kvshard"]
        for name in order:
            if name == "kvshard":
                row = _run_kvshard(args.messages, args.roundtrips)
            else:
                row = _measure_baseline("queue" if name == "mp.Queue" else "pipe", args.baseline_messages, args.roundtrips)
            results[name].append(row)
            print(f"round {rnd + 1} {name:9s} {_fmt(row)}", flush=True)
    medians = {
        name: {key: statistics.median(r[key] for r in rows) for key in rows[0]}
        for name, rows in results.items()
    }
    print("medians:")
    for name, row in medians.items():
        print(f"  {name:9s} {_fmt(row)}")
    kv, q, p = medians["kvshard"], medians["mp.Queue"], medians["mp.Pipe"]
    print(
        f"ratios: one-way vs Queue {kv['one_way_msgs_per_s'] / q['one_way_msgs_per_s']:.1f}x, "
        f"vs Pipe {kv['one_way_msgs_per_s'] / p['one_way_msgs_per_s']:.1f}x; "
        f"round trips vs Queue {kv['roundtrips_per_s'] / q['roundtrips_per_s']:.1f}x, "
        f"vs Pipe {kv['roundtrips_per_s'] / p['roundtrips_per_s']:.1f}x"
    )
    print(
        f"summary: one_way_msgs_per_s={kv['one_way_msgs_per_s']:.0f} "
        f"roundtrips_per_s={kv['roundtrips_per_s']:.0f} "
        f"ratio_vs_mp_queue={kv['one_way_msgs_per_s'] / q['one_way_msgs_per_s']:.2f} "
        f"pipelined_roundtrips_per_s={kv['pipelined_roundtrips_per_s']:.0f} "
        f"one_way_fixed_msgs_per_s={kv['one_way_fixed_msgs_per_s']:.0f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
