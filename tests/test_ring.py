"""The SPSC ring alone: framing, wrap-around, fragments, full-ring behaviour."""

from __future__ import annotations

import mmap
import os
import random

import pytest

from framework.ring import FRAGMENT_HEADER_BYTES, RingConsumer, RingProducer, ring_bytes


def make_ring(capacity: int) -> tuple[RingProducer, RingConsumer]:
    buf = memoryview(mmap.mmap(-1, ring_bytes(capacity)))
    return RingProducer(buf, capacity), RingConsumer(buf, capacity)


def pump(prod: RingProducer, cons: RingConsumer, records: list[bytes]) -> list[bytes]:
    """Push records through, writing what fits and reading in between, like two shards."""
    got: list[bytes] = []
    pending = [memoryview(r) for r in records]
    while pending:
        written = prod.write(pending[0], final=True)
        if written == len(pending[0]):
            pending.pop(0)
        else:
            pending[0] = pending[0][written:]
        prod.publish()
        out = cons.read()
        if out is not None:
            got.extend(bytes(r) for r in out)
    out = cons.read()
    if out is not None:
        got.extend(bytes(r) for r in out)
    return got


@pytest.mark.parametrize("capacity", [256, 4096, 70_000, 1 << 20])
def test_random_sizes_wrap_and_fragment(capacity: int) -> None:
    rng = random.Random(capacity)
    records = [rng.randbytes(rng.randrange(0, 65537)) for _ in range(300)]
    records += [b"", b"x", b""]
    prod, cons = make_ring(capacity)
    assert pump(prod, cons, records) == records


def test_counters_persist_across_reattach() -> None:
    buf = memoryview(mmap.mmap(-1, ring_bytes(128)))
    prod, cons = RingProducer(buf, 128), RingConsumer(buf, 128)
    assert pump(prod, cons, [b"a" * 100, b"b" * 100]) == [b"a" * 100, b"b" * 100]
    # a restarted process picks the counters up from shared memory
    prod2, cons2 = RingProducer(buf, 128), RingConsumer(buf, 128)
    assert pump(prod2, cons2, [b"c" * 50]) == [b"c" * 50]


def test_full_ring_never_overwrites() -> None:
    prod, cons = make_ring(64)
    data = memoryview(os.urandom(1000))
    written = prod.write(data, final=True)
    assert written == 64 - FRAGMENT_HEADER_BYTES
    assert prod.free_bytes() == 0
    assert prod.write(data[written:], final=True) == 0  # full: nothing more is accepted
    assert cons.read() is None  # not published yet
    prod.publish()
    assert cons.read() == []  # a fragment arrived, the record is not complete
    rest = data[written:]
    got: list[bytes] = []
    while rest:
        n = prod.write(rest, final=True)
        rest = rest[n:]
        prod.publish()
        got += [bytes(r) for r in cons.read() or []]
    assert got == [bytes(data)]


def test_unpublished_bytes_are_invisible() -> None:
    prod, cons = make_ring(1024)
    prod.write(memoryview(b"hello"), final=True)
    assert not cons.has_data()
    assert prod.has_unpublished()
    prod.publish()
    assert cons.has_data()
    assert [bytes(r) for r in cons.read() or []] == [b"hello"]


def test_discard_unread_empties_both_views() -> None:
    prod, cons = make_ring(1024)
    prod.write(memoryview(b"stale"), final=True)
    prod.publish()
    cons.discard_unread()
    assert cons.read() is None
    prod.write(memoryview(b"x" * 2000), final=True)  # partial record
    prod.publish()
    assert cons.read() == []
    cons.discard_unread()  # producer died mid-record: the fragments are dropped
    prod.discard_unread()
    prod.write(memoryview(b"fresh"), final=True)
    prod.publish()
    assert [bytes(r) for r in cons.read() or []] == [b"fresh"]


def test_waiting_flag() -> None:
    prod, cons = make_ring(64)
    assert not cons.producer_waiting()
    prod.set_waiting(True)
    assert cons.producer_waiting() and prod.is_waiting()
    prod.set_waiting(False)
    assert not cons.producer_waiting()


def test_capacity_validation() -> None:
    with pytest.raises(ValueError):
        make_ring(100)  # not a multiple of 8
