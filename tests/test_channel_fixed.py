"""The channel's fixed-record path (call_fixed/send_fixed), two messengers in one process.

Both ends live in this process over one shared mapping and are polled by hand (``pump``), so
every interleaving is deterministic. Run it compiled and with ``KVSHARD_NO_EXTENSIONS=1``: the
same tests cover both cores.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any, Callable, Iterator

import pytest

from framework import channel as channel_module
from framework import extensions
from framework.bench_fixed import CountingSink, send_burst
from framework.channel import FIXED_HEADER_BYTES, FixedTarget, Messenger, PeerLink
from framework.errors import RemoteError, ShardUnavailable, UnknownHandler
from framework.metrics import MetricsRegistry
from framework.shm_layout import SharedLayout


class _Reactor:
    def kick(self) -> None:
        pass


class Pair:
    """Shards 0 and 1: ``a`` and ``b``, their rings in one anonymous mapping."""

    def __init__(self, loop: asyncio.AbstractEventLoop, capacity: int, max_inflight: int, records: bool = True) -> None:
        layout = SharedLayout(2, capacity)
        self._shared = layout.allocate()
        buf = memoryview(self._shared)
        flags = layout.sleeping_flags(buf)
        self.fds = [os.eventfd(0, os.EFD_NONBLOCK), os.eventfd(0, os.EFD_NONBLOCK)]
        self.metrics = [MetricsRegistry(), MetricsRegistry()]
        ends = []
        for me, peer in ((0, 1), (1, 0)):
            link = PeerLink(peer, layout.producer(buf, me, peer), layout.consumer(buf, peer, me), self.fds[peer])
            messenger = Messenger(me, {peer: link}, flags, _Reactor(), loop, self.metrics[me], max_inflight,  # type: ignore[arg-type]
                                  fixed_records=records)
            messenger.peer_up(peer)
            ends.append(messenger)
        self.a, self.b = ends

    def pump(self, until: Callable[[], bool] | None = None, rounds: int = 10_000) -> None:
        """Poll both ends until ``until()`` holds (asserted) or, without it, until both are idle
        or ``rounds`` polls have run."""
        for _ in range(rounds):
            if until is not None and until():
                return
            busy = self.a.poll()
            busy = self.b.poll() or busy
            if not busy:
                break
        assert until is None or until(), "pump: the condition never came true"

    def close(self) -> None:
        for fd in self.fds:
            os.close(fd)


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


def make_pair(loop: asyncio.AbstractEventLoop, capacity: int = 1 << 16, max_inflight: int = 64) -> Pair:
    return Pair(loop, capacity, max_inflight)


class Replies:
    def __init__(self) -> None:
        self.got: list[tuple[Any, BaseException | None]] = []

    def __call__(self, result: Any, error: BaseException | None) -> None:
        self.got.append((result, error))


def echo(key: bytes, value: bytes | None, a: int, b: int, c: int) -> bytes:
    return b"%s|%s|%d|%d|%d" % (key, b"None" if value is None else value, a, b, c)


def test_core_matches_environment() -> None:
    import framework.channel
    import framework.ring

    mode = extensions.core_mode([framework.channel, framework.ring])
    if extensions.extensions_disabled():
        assert mode == "interpreted"
    else:
        print("core:", mode)


def test_round_trip(loop: asyncio.AbstractEventLoop) -> None:
    pair = make_pair(loop)
    pair.b.register_fixed(7, echo)
    replies = Replies()
    pair.a.call_fixed(1, 7, b"key", b"value", 1, -2, 2**63 - 1, replies)
    pair.a.call_fixed(1, 7, b"", None, -(2**63), 0, 0, replies)
    pair.a.call_fixed(1, 7, bytearray(b"ba"), memoryview(b"mv"), 0, 0, 0, replies)
    pair.pump(lambda: len(replies.got) == 3)
    assert replies.got == [
        (b"key|value|1|-2|%d" % (2**63 - 1), None),
        (b"|None|%d|0|0" % -(2**63), None),
        (b"ba|mv|0|0|0", None),
    ]
    assert type(replies.got[0][0]) is bytes
    assert pair.a.fixed_out == 3 and pair.b.fixed_in == 3
    assert pair.b.fixed_out == 3 and pair.a.fixed_in == 3
    assert not pair.a.link(1).calls
    pair.close()


class EchoTarget(FixedTarget):
    """Serves ids 7 and 8 as ``echo``; remembers what reached it (8 raises for a == 1)."""

    def __init__(self) -> None:
        self.seen: list[tuple[int, bytes, bytes | None, int, int, int]] = []

    def run_fixed(self, handler_id: int, key: bytes, value: bytes | None, a: int, b: int, c: int) -> bytes:
        self.seen.append((handler_id, key, value, a, b, c))
        if handler_id == 8 and a == 1:
            raise KeyError("boom")
        return echo(key, value, a, b, c)


def test_fixed_target_serves_its_ids_in_one_call(loop: asyncio.AbstractEventLoop) -> None:
    pair = make_pair(loop)
    target = EchoTarget()
    with pytest.raises(ValueError):  # only ids with a registered handler
        pair.b.register_fixed_target(target, [7])
    for handler_id in (7, 8, 9):
        pair.b.register_fixed(handler_id, echo)
    pair.b.register_fixed_target(target, [7, 8])
    with pytest.raises(ValueError):  # one target per messenger
        pair.b.register_fixed_target(EchoTarget(), [9])
    replies = Replies()
    pair.a.call_fixed(1, 7, b"key", b"value", 1, -2, 2**63 - 1, replies)
    pair.a.call_fixed(1, 8, b"k", None, -(2**63), 0, 0, replies)
    pair.a.call_fixed(1, 8, b"k", None, 1, 0, 0, replies)
    pair.a.call_fixed(1, 9, b"not by the target", None, 0, 0, 0, replies)
    pair.pump(lambda: len(replies.got) == 4)
    assert replies.got[:2] == [(b"key|value|1|-2|%d" % (2**63 - 1), None), (b"k|None|%d|0|0" % -(2**63), None)]
    assert isinstance(replies.got[2][1], KeyError) and "boom" in str(replies.got[2][1])
    assert replies.got[3] == (b"not by the target|None|0|0|0", None)
    assert target.seen == [(7, b"key", b"value", 1, -2, 2**63 - 1), (8, b"k", None, -(2**63), 0, 0), (8, b"k", None, 1, 0, 0)]
    # one-way records reach the target too; what it raises is counted and logged, not sent
    target.seen.clear()
    assert pair.a.send_fixed(1, 8, b"one-way", b"v", 1, 0, 0)
    assert pair.a.send_fixed(1, 7, b"one-way", None, 2, 0, 0)
    assert pair.a.send_fixed(1, 9, b"by the handler", None, 3, 0, 0)
    pair.pump()
    assert target.seen == [(8, b"one-way", b"v", 1, 0, 0), (7, b"one-way", None, 2, 0, 0)]
    assert pair.b.handler_errors == 1
    pair.close()


def test_bench_burst_and_sink(loop: asyncio.AbstractEventLoop) -> None:
    """framework.bench's fixed one-way ends: a burst stops where the link refuses, and the
    sink, run by the channel as a target, counts every record."""
    pair = Pair(loop, 1 << 12, 64)
    sink = CountingSink()
    pair.b.register_fixed(3, lambda key, value, a, b, c: sink.run_fixed(3, key, value, a, b, c))
    pair.b.register_fixed_target(sink, [3])
    sent = refused = 0
    while sent < 5000:
        burst = min(1000, 5000 - sent)
        done = send_burst(pair.a, 1, 3, b"k", sent, burst)
        assert 0 <= done <= burst
        sent += done
        if done < burst:
            refused += 1
            pair.pump()
    pair.pump()
    assert sent == 5000 and sink.received == 5000
    assert refused  # a 4 KiB ring holds about a hundred records
    pair.close()


def test_out_of_range_integers_fail_before_anything_is_written(loop: asyncio.AbstractEventLoop) -> None:
    pair = make_pair(loop)
    pair.b.register_fixed(7, echo)
    replies = Replies()
    with pytest.raises(OverflowError):
        pair.a.call_fixed(1, 7, b"k", b"v", 2**63, 0, 0, replies)
    with pytest.raises(TypeError):
        pair.a.call_fixed(1, 7, "not bytes", b"v", 0, 0, 0, replies)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        pair.a.call_fixed(1, 256, b"k", b"v", 0, 0, 0, replies)
    assert not pair.a.link(1).calls and not pair.a.link(1).out.has_unpublished()
    pair.a.call_fixed(1, 7, b"k", b"v", 0, 0, 0, replies)  # the link is intact
    pair.pump(lambda: len(replies.got) == 1)
    assert replies.got == [(b"k|v|0|0|0", None)]
    pair.close()


def test_one_way(loop: asyncio.AbstractEventLoop) -> None:
    pair = make_pair(loop)
    seen: list[tuple[Any, ...]] = []
    pair.b.register_fixed(3, lambda k, v, a, b, c: seen.append((k, v, a, b, c)))
    refused = 0
    for i in range(1000):
        while not pair.a.send_fixed(1, 3, b"k%d" % i, None if i % 2 else b"v" * i, i, -i, 7):
            refused += 1  # about 250 KB through a 64 KiB ring: back-pressure, then room again
            pair.pump(rounds=1)
    pair.pump(lambda: len(seen) == 1000)
    assert refused > 0
    assert seen == [(b"k%d" % i, None if i % 2 else b"v" * i, i, -i, 7) for i in range(1000)]
    samples = {s[0]: s[4] for s in pair.metrics[1].collect() if not s[3]}
    assert samples["channel_fixed_messages_received_total"] == 1000
    assert samples["channel_messages_received_total"] == 1000
    samples = {s[0]: s[4] for s in pair.metrics[0].collect() if not s[3]}
    assert samples["channel_fixed_messages_sent_total"] == samples["channel_messages_sent_total"] == 1000
    pair.close()


def test_order_mixed_with_msgpack_messages(loop: asyncio.AbstractEventLoop) -> None:
    pair = make_pair(loop)
    handled: list[Any] = []
    pair.b.register("log", lambda n: handled.append(("msgpack", n)) or n)
    pair.b.register_fixed(1, lambda k, v, a, b, c: handled.append(("fixed", a)) or b"%d" % a)
    replies: list[Any] = []
    for n in range(300):
        form = n % 4
        if form == 0:
            pair.a.call(1, "log", (n,), lambda r, e: replies.append(r))
        elif form == 1:
            pair.a.call_fixed(1, 1, b"", None, n, 0, 0, lambda r, e: replies.append(int(r)))
        elif form == 2:
            assert pair.a.send(1, "log", n)
            replies.append(n)
        else:
            assert pair.a.send_fixed(1, 1, b"", None, n, 0, 0)
            replies.append(n)
        if n % 7 == 0:
            pair.pump(rounds=1)
    pair.pump(lambda: len(handled) == 300 and len(replies) == 300)
    assert [n for _, n in handled] == list(range(300))
    assert [kind for kind, _ in handled[:4]] == ["msgpack", "fixed", "msgpack", "fixed"]
    # replies of calls come back in call order (interleaved with the local appends above)
    calls = [r for n, r in enumerate(range(300)) if n % 4 in (0, 1)]
    assert [r for r in replies if r in set(calls)] == calls
    pair.close()


@pytest.mark.parametrize("capacity", [256, 4096])
def test_values_bigger_than_the_ring(loop: asyncio.AbstractEventLoop, capacity: int) -> None:
    pair = make_pair(loop, capacity=capacity)
    pair.b.register_fixed(9, lambda k, v, a, b, c: k + (v or b"")[::-1])
    replies = Replies()
    values = [os.urandom(size) for size in (0, 1, capacity - FIXED_HEADER_BYTES - 4, capacity, 100_000)]
    for i, value in enumerate(values):
        pair.a.call_fixed(1, 9, b"key%d" % i, value, i, 0, 0, replies)
    pair.pump(lambda: len(replies.got) == len(values))
    assert replies.got == [(b"key%d" % i + v[::-1], None) for i, v in enumerate(values)]
    pair.close()


def test_many_small_records_wrap_around(loop: asyncio.AbstractEventLoop) -> None:
    pair = make_pair(loop, capacity=256)
    seen: list[bytes] = []
    pair.b.register_fixed(0, lambda k, v, a, b, c: seen.append(v))  # type: ignore[arg-type, func-returns-value]
    sent = 0
    values = [bytes([i % 251]) * (i % 37) for i in range(3000)]
    while sent < len(values):
        while sent < len(values) and pair.a.send_fixed(1, 0, b"k", values[sent], sent, 0, 0):
            sent += 1
        pair.pump(rounds=1)
    pair.pump(lambda: len(seen) == len(values))
    assert seen == values
    pair.close()


def test_handler_exception_becomes_failure(loop: asyncio.AbstractEventLoop) -> None:
    pair = make_pair(loop)

    def fail(k: bytes, v: bytes | None, a: int, b: int, c: int) -> bytes:
        if a == 1:
            raise KeyError("boom")
        if a == 2:
            return "not bytes"  # type: ignore[return-value]
        raise RuntimeError("bad")

    pair.b.register_fixed(5, fail)
    pair.b.register_fixed(6, echo)
    replies = Replies()
    for a in (1, 2, 3):
        pair.a.call_fixed(1, 5, b"k", None, a, 0, 0, replies)
    pair.a.call_fixed(1, 6, b"after", None, 0, 0, 0, replies)
    pair.pump(lambda: len(replies.got) == 4)
    errors = [e for _, e in replies.got[:3]]
    assert isinstance(errors[0], KeyError) and "boom" in str(errors[0])
    assert isinstance(errors[1], TypeError) and "must return bytes" in str(errors[1])
    assert isinstance(errors[2], (RuntimeError, RemoteError))
    assert replies.got[3] == (b"after|None|0|0|0", None)
    pair.close()


def test_unknown_handler_id(loop: asyncio.AbstractEventLoop) -> None:
    pair = make_pair(loop)
    replies = Replies()
    pair.a.call_fixed(1, 200, b"k", b"v", 0, 0, 0, replies)
    assert pair.a.send_fixed(1, 201, b"k", b"v", 0, 0, 0)
    pair.pump(lambda: len(replies.got) == 1)
    assert isinstance(replies.got[0][1], UnknownHandler)
    pair.pump()
    assert pair.b.handler_errors == 1
    with pytest.raises(ValueError):
        pair.a.send_fixed(1, -1, b"k", None, 0, 0, 0)
    with pytest.raises(ValueError):
        pair.b.register_fixed(256, echo)
    pair.b.register_fixed(200, echo)
    with pytest.raises(ValueError):
        pair.b.register_fixed(200, echo)
    pair.close()


def test_peer_down_fails_fixed_calls_in_flight_and_parked(loop: asyncio.AbstractEventLoop) -> None:
    pair = make_pair(loop, max_inflight=2)
    pair.b.register_fixed(7, echo)
    replies = Replies()
    for i in range(5):
        pair.a.call_fixed(1, 7, b"k", None, i, 0, 0, replies)
    assert len(pair.a.link(1).calls) == 2 and len(pair.a.link(1).overflow) == 3
    pair.a.poll()  # published; the peer dies before answering
    pair.a.peer_down(1)
    assert len(replies.got) == 5
    assert all(r is None and isinstance(e, ShardUnavailable) for r, e in replies.got)
    with pytest.raises(ShardUnavailable):
        pair.a.call_fixed(1, 7, b"k", None, 0, 0, 0, replies)
    with pytest.raises(ShardUnavailable):
        pair.a.send_fixed(1, 7, b"k", None, 0, 0, 0)
    pair.close()


def test_in_flight_limit_parks_and_resumes_in_order(loop: asyncio.AbstractEventLoop) -> None:
    pair = make_pair(loop, max_inflight=4)
    pair.b.register_fixed(7, echo)
    replies = Replies()
    for i in range(50):
        pair.a.call_fixed(1, 7, b"k", None, i, 0, 0, replies)
        assert len(pair.a.link(1).calls) <= 4
    assert not pair.a.send_fixed(1, 7, b"k", None, 0, 0, 0)  # no overtaking of parked calls
    pair.pump(lambda: len(replies.got) == 50)
    assert [r for r, _ in replies.got] == [b"k|None|%d|0|0" % i for i in range(50)]
    pair.close()


def test_local_target_runs_inline(loop: asyncio.AbstractEventLoop) -> None:
    pair = make_pair(loop)
    pair.a.register_fixed(7, echo)
    replies = Replies()
    pair.a.call_fixed(0, 7, b"k", b"v", 1, 2, 3, replies)
    assert replies.got == [(b"k|v|1|2|3", None)]
    pair.a.call_fixed(0, 8, b"k", b"v", 1, 2, 3, replies)
    assert isinstance(replies.got[1][1], UnknownHandler)
    assert pair.a.send_fixed(0, 7, b"k", None, 0, 0, 0)
    pair.close()


def test_interpreted_messengers_send_fixed_calls_as_msgpack(loop: asyncio.AbstractEventLoop) -> None:
    """Without fixed records (the interpreted core's default) the same calls travel as msgpack
    messages: same answers, order, failures and refusals."""
    pair = Pair(loop, 1 << 16, 64, records=False)
    assert Messenger(0, {}, memoryview(bytearray(64)).cast("Q"), _Reactor(), loop,  # type: ignore[arg-type]
                     MetricsRegistry()).fixed_records is extensions.is_compiled(channel_module)
    pair.b.register_fixed(7, echo)
    pair.b.register_fixed(5, lambda k, v, a, b, c: "not bytes")
    handled: list[int] = []
    pair.b.register_fixed(1, lambda k, v, a, b, c: handled.append(a))  # one-way: None is fine
    replies = Replies()
    pair.a.call_fixed(1, 7, b"key", b"value", 1, -2, 2**63 - 1, replies)
    pair.a.call_fixed(1, 5, b"k", None, 0, 0, 0, replies)
    assert pair.a.send_fixed(1, 1, b"", None, 41, 0, 0)
    pair.a.call_fixed(1, 7, b"", None, -(2**63), 0, 0, replies)
    with pytest.raises(OverflowError):
        pair.a.call_fixed(1, 7, b"k", b"v", 2**63, 0, 0, replies)
    with pytest.raises(TypeError):
        pair.a.send_fixed(1, 7, "not bytes", b"v", 0, 0, 0)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        pair.a.call_fixed(1, 256, b"k", b"v", 0, 0, 0, replies)
    pair.pump(lambda: len(replies.got) == 3)
    assert replies.got[0] == (b"key|value|1|-2|%d" % (2**63 - 1), None)
    assert isinstance(replies.got[1][1], TypeError) and "must return bytes" in str(replies.got[1][1])
    assert replies.got[2] == (b"|None|%d|0|0" % -(2**63), None)
    assert handled == [41]
    assert pair.a.fixed_out == 0 and pair.b.fixed_in == 0  # no fixed record was written
    pair.close()
