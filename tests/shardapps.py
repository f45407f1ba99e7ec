"""Scenarios that run inside real shard processes, for tests/test_shards.py.

Run as ``python -m tests.shardapps SCENARIO OUT.json [key=value ...]``: the runtime starts with
the scenario's shard count and settings, shard 0 drives the scenario in ``start`` and writes a
JSON result to OUT.json, then asks the supervisor to stop everything. The exit status is the
supervisor's.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import random
import signal
import sys
import time
from typing import Any, Callable

from framework import Shard, ShardApp, ShardSettings, ShardUnavailable, gather_metrics, run

SCENARIOS: dict[str, Callable[["ScenarioApp", Shard], Any]] = {}


def scenario(fn: Callable[["ScenarioApp", Shard], Any]) -> Callable[["ScenarioApp", Shard], Any]:
    SCENARIOS[fn.__name__] = fn
    return fn


def payload(seq: int, size: int) -> bytes:
    return random.Random(seq).randbytes(size)


def metric(samples: list[Any], name: str) -> float:
    return sum(s[4] for s in samples if s[0] == name)


def rss_kib() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


class ScenarioApp(ShardApp):
    def __init__(self, name: str, out: str, params: dict[str, str]) -> None:
        self.name = name
        self.out = out
        self.params = params
        self.state: dict[str, Any] = {}

    def p(self, key: str, default: int) -> int:
        return int(self.params.get(key, default))

    async def setup(self, shard: Shard) -> None:
        st = self.state
        st.update(expected={}, errors=[], received=0, digest={}, concurrent=0, max_concurrent=0)

        def seq(src: int, n: int, data: bytes = b"") -> None:
            expected = st["expected"].get(src, 0)
            if n != expected:
                st["errors"].append(f"from {src}: got {n}, expected {expected}")
            st["expected"][src] = n + 1
            st["received"] += 1
            if data:
                h = st["digest"].setdefault(src, hashlib.sha256())
                h.update(data)

        def seq_check_payload(src: int, n: int, data: bytes) -> None:
            if data != payload(n, len(data)):
                st["errors"].append(f"from {src}: payload {n} corrupted")
            seq(src, n, data)

        def slow_consumer(src: int, n: int, data: bytes) -> None:
            end = time.perf_counter() + 0.00002
            while time.perf_counter() < end:
                pass
            seq(src, n)

        async def sleepy(seconds: float) -> int:
            await asyncio.sleep(seconds)
            return shard.id

        async def track_concurrency(seconds: float) -> int:
            st["concurrent"] += 1
            st["max_concurrent"] = max(st["max_concurrent"], st["concurrent"])
            await asyncio.sleep(seconds)
            st["concurrent"] -= 1
            return st["max_concurrent"]

        def fail(kind: str, message: str) -> None:
            raise {"KeyError": KeyError, "ValueError": ValueError, "Custom": CustomError}[kind](message)

        shard.register("seq", seq)
        shard.register("seq_check_payload", seq_check_payload)
        shard.register("slow_consumer", slow_consumer)
        shard.register("state", lambda: {
            "received": st["received"], "errors": st["errors"][:20], "expected": st["expected"],
            "digest": {k: v.hexdigest() for k, v in st["digest"].items()},
        })
        shard.register("echo", lambda *a: a)
        shard.register("unpackable_result", lambda: object())
        shard.register("sleepy", sleepy)
        shard.register("track_concurrency", track_concurrency)
        shard.register("fail", fail)
        shard.register("pid", os.getpid)
        shard.register("rss_kib", rss_kib)
        shard.register("drive", lambda name: asyncio.ensure_future(self.drive(shard, name)) and None)

    async def start(self, shard: Shard) -> None:
        if shard.id == 0:
            asyncio.ensure_future(self._run(shard))

    async def _run(self, shard: Shard) -> None:
        try:
            result = await SCENARIOS[self.name](self, shard)
            code = 0
        except Exception as exc:  # report, do not hang the test
            import traceback

            result = {"exception": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()}
            code = 1
        with open(self.out, "w") as f:
            json.dump(result, f)
        shard.request_shutdown(code)

    async def drive(self, shard: Shard, name: str) -> None:
        """Run stream ``name`` from a non-zero shard (for two-way traffic)."""
        await STREAMS[name](self, shard)


class CustomError(Exception):
    pass


async def send_stream(
    shard: Shard, target: int, handler: str, count: int, make_args: Callable[[int], tuple[Any, ...]]
) -> None:
    for n in range(count):
        args = make_args(n)
        while not shard.send(target, handler, *args):
            await shard.wait_writable(target)


async def _stream_small(app: ScenarioApp, shard: Shard) -> None:
    target = 1 - shard.id
    await send_stream(shard, target, "seq", app.p("count", 1_000_000), lambda n: (shard.id, n))


async def _stream_sized(app: ScenarioApp, shard: Shard) -> None:
    target = 1 - shard.id
    rng = random.Random(shard.id)
    sizes = [rng.randrange(0, 65537) for _ in range(app.p("count", 2000))]
    await send_stream(
        shard, target, "seq_check_payload", len(sizes), lambda n: (shard.id, n, payload(n, sizes[n]))
    )


STREAMS = {"small": _stream_small, "sized": _stream_sized}


async def _wait_received(shard: Shard, target: int, count: int, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        state = await shard.submit_to(target, "state")
        if state["received"] >= count or time.monotonic() > deadline:
            return state
        await asyncio.sleep(0.05)


@scenario
async def two_way_small(app: ScenarioApp, shard: Shard) -> dict[str, Any]:
    """``count`` one-way messages 0 -> 1 and 1 -> 0 at the same time."""
    count = app.p("count", 1_000_000)
    started = time.perf_counter()
    await shard.submit_to(1, "drive", "small")
    await _stream_small(app, shard)
    remote = await _wait_received(shard, 1, count, 240)
    local = await _wait_received(shard, 0, count, 240)
    elapsed = time.perf_counter() - started
    samples = await gather_metrics(shard)
    return {
        "count": count, "elapsed": elapsed, "at_1": remote, "at_0": local,
        "batches": [metric(s, "channel_batches_sent_total") for _, s in samples],
    }


@scenario
async def two_way_sized(app: ScenarioApp, shard: Shard) -> dict[str, Any]:
    """Random payloads 0..64 KiB both ways through small rings (wrap-around, fragments)."""
    count = app.p("count", 2000)
    await shard.submit_to(1, "drive", "sized")
    await _stream_sized(app, shard)
    remote = await _wait_received(shard, 1, count, 240)
    local = await _wait_received(shard, 0, count, 240)
    samples = await gather_metrics(shard)
    return {
        "count": count, "at_1": remote, "at_0": local,
        "ring_full": sum(metric(s, "channel_ring_full_total") for _, s in samples),
    }


@scenario
async def slow_consumer(app: ScenarioApp, shard: Shard) -> dict[str, Any]:
    """A producer far faster than its consumer: memory must stay bounded."""
    count = app.p("count", 100_000)
    blob = b"x" * 1024
    rss_before = rss_kib()
    max_rss = rss_before
    link = shard.messenger.link(1)
    max_pending = max_queued_bytes = 0
    for n in range(count):
        while not shard.send(1, "slow_consumer", 0, n, blob):
            max_pending = max(max_pending, link.pending_count)
            max_queued_bytes = max(max_queued_bytes, link.queued_bytes)
            await shard.wait_writable(1)
        if n % 1000 == 0:
            max_rss = max(max_rss, rss_kib())
    remote = await _wait_received(shard, 1, count, 240)
    samples = await gather_metrics(shard)
    return {
        "count": count, "at_1": remote, "rss_before_kib": rss_before, "max_rss_kib": max_rss,
        "bytes_sent": count * len(blob), "max_pending": max_pending,
        "max_queued_bytes": max_queued_bytes, "max_queued_setting": shard.settings.max_queued,
        "ring_full": metric(samples[0][1], "channel_ring_full_total"),
    }


@scenario
async def api(app: ScenarioApp, shard: Shard) -> dict[str, Any]:
    out: dict[str, Any] = {}
    out["local_echo"] = repr(await shard.submit_to(0, "echo", 1, b"a"))
    out["remote_echo"] = repr(await shard.submit_to(1, "echo", 1, b"a", "s", [1, 2], {"k": 3}))
    errors = {}
    for where in (0, 1):
        for kind in ("KeyError", "ValueError", "Custom"):
            try:
                await shard.submit_to(where, "fail", kind, f"boom {kind}")
            except Exception as exc:
                errors[f"{where}:{kind}"] = [type(exc).__name__, str(exc)]
        try:
            await shard.submit_to(where, "no_such_handler")
        except Exception as exc:
            errors[f"{where}:unknown"] = [type(exc).__name__, str(exc)]
    try:
        await shard.submit_to(1, "echo", object())
    except Exception as exc:
        errors["unpackable_args"] = [type(exc).__name__, str(exc)[:40]]
    try:
        await shard.submit_to(1, "unpackable_result")
    except Exception as exc:
        errors["unpackable_result"] = [type(exc).__name__, str(exc)[:40]]
    out["after_unpackable"] = await shard.submit_to(1, "echo", 7)  # the link still works
    out["errors"] = errors
    out["invoke_on_all"] = await shard.invoke_on_all("framework.ping")
    out["map_reduce"] = await shard.map_reduce("echo", (5,), lambda acc, r: acc + r[0], 0)
    # bounded in-flight calls: 200 concurrent calls, the peer must never see more than the limit
    results = await asyncio.gather(*(shard.submit_to(1, "track_concurrency", 0.01) for _ in range(200)))
    out["max_concurrent_seen"] = max(results)
    out["max_inflight"] = shard.settings.max_inflight
    # batching: many messages queued in one loop iteration go out as one published batch
    await asyncio.sleep(0.01)  # let earlier traffic drain
    before = metric(shard.metrics.collect(), "channel_batches_sent_total")
    for n in range(500):
        assert shard.send(1, "echo", n)
    await shard.submit_to(1, "echo", 0)  # queued in the same iteration as the 500
    after = metric(shard.metrics.collect(), "channel_batches_sent_total")
    out["batches_for_501"] = after - before
    out["metrics_shards"] = [shard_id for shard_id, _ in await gather_metrics(shard)]
    return out


@scenario
async def wakeups(app: ScenarioApp, shard: Shard) -> dict[str, Any]:
    """Round trips timed to land while the peer goes to sleep: none may be lost."""
    rounds = app.p("rounds", 5000)
    idle = shard.settings.idle_poll_seconds
    rng = random.Random(7)
    hung = 0
    for _ in range(rounds):
        # spin (uvloop timers have 1 ms resolution) so the gap lands around the peer's idle
        # threshold: the request often arrives just as the peer decides to sleep
        end = time.perf_counter() + rng.uniform(0, 3 * idle)
        while time.perf_counter() < end:
            pass
        try:
            await asyncio.wait_for(shard.submit_to(1, "echo", 1), 5.0)
        except asyncio.TimeoutError:
            hung += 1
    samples = await gather_metrics(shard)
    return {
        "rounds": rounds, "hung": hung,
        "sleeps": [metric(s, "reactor_sleeps_total") for _, s in samples],
        "doorbell_wakeups": [metric(s, "reactor_doorbell_wakeups_total") for _, s in samples],
    }


@scenario
async def kill_peer(app: ScenarioApp, shard: Shard) -> dict[str, Any]:
    """kill -9 shard 1 during traffic; pending calls must fail, new ones succeed later."""
    first = await shard.submit_to(1, "framework.ping")
    downs: list[int] = []
    ups: list[int] = []
    shard.on_peer_down(downs.append)
    shard.on_peer_up(ups.append)

    async def traffic() -> int:
        n = 0
        try:
            while True:
                while not shard.send(1, "seq", 0, n):
                    await shard.wait_writable(1)
                n += 1
                if n % 100 == 0:
                    await asyncio.sleep(0)
        except ShardUnavailable:
            return n

    traffic_task = asyncio.ensure_future(traffic())
    pending = [asyncio.ensure_future(shard.submit_to(1, "sleepy", 30.0)) for _ in range(20)]
    await asyncio.sleep(0.3)
    killed_at = time.monotonic()
    os.kill(first[1], signal.SIGKILL)
    outcomes = await asyncio.wait_for(asyncio.gather(*pending, return_exceptions=True), 10)
    failed_after = time.monotonic() - killed_at
    sent_before_death = await asyncio.wait_for(traffic_task, 10)
    # new calls: refused while the shard is down, then succeed after the restart
    refused = 0
    deadline = time.monotonic() + 20
    second = None
    while time.monotonic() < deadline:
        try:
            second = await shard.submit_to(1, "framework.ping")
            break
        except ShardUnavailable:
            refused += 1
            await asyncio.sleep(0.02)
    after_restart = [await shard.submit_to(1, "echo", n) for n in range(100)]
    await send_stream(shard, 1, "seq", 10_000, lambda n: (0, n))
    state = await _wait_received(shard, 1, 10_000, 30)
    return {
        "first": first, "second": second,
        "outcomes": [type(o).__name__ if isinstance(o, BaseException) else o for o in outcomes],
        "failed_after": failed_after, "sent_before_death": sent_before_death,
        "refused_while_down": refused, "downs": downs, "ups": ups,
        "echo_ok": after_restart == [(n,) for n in range(100)], "state_after": state,
    }


@scenario
async def idle(app: ScenarioApp, shard: Shard) -> dict[str, Any]:
    """Stay up doing nothing until the test stops us; report the pids first."""
    pids = await shard.invoke_on_all("framework.ping")
    with open(app.out + ".pids", "w") as f:
        json.dump({"supervisor": os.getppid(), "shards": [p[1] for p in pids]}, f)
    await asyncio.Event().wait()
    return {}


def main(argv: list[str]) -> int:
    name, out = argv[0], argv[1]
    params = dict(arg.split("=", 1) for arg in argv[2:])
    settings = ShardSettings(
        ring_capacity=int(params.get("ring_capacity", 1 << 20)),
        idle_poll_seconds=float(params.get("idle_poll", 0.0002)),
        max_inflight=int(params.get("max_inflight", 1024)),
        max_queued=int(params.get("max_queued", 65536)),
    )
    return run(ScenarioApp(name, out, params), int(params.get("shards", 2)), settings=settings)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
