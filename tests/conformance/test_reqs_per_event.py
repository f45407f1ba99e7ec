"""``-R 5``: a connection runs at most so many requests per read event, then yields to the
others; byte for byte and count for count as memcached 1.6.18 -R 5.

Pipelined requests beyond the quota are all answered, in order. ``conn_yields`` counts the
turns that used their whole quota: memcached runs one request more in the turn of a fresh
read (its first request is parsed before the count starts) and counts a yield also when the
quota ran out with nothing left, so K requests in one read make no yield below R + 1 and then
1 + (K - R - 1) // R. Every request here fits in one read (memcached reads 16 KiB at a time).
"""

from __future__ import annotations

import time

import pytest

from kvshard.protocol import binary as b

from .binwire import BinWire, req, store_extras
from .conftest import Keys, server_with
from .test_ascii_stats import read_stats
from .wire import Wire, storage, value

REQS_PER_EVENT = 5
server = server_with("-R", str(REQS_PER_EVENT))

COUNTS = [1, 5, 6, 7, 10, 11, 12, 16, 17, 30, 150]  # 150 gets: about 12 KiB


def expected_yields(requests: int) -> int:
    first_turn = REQS_PER_EVENT + 1
    if requests < first_turn:
        return 0
    return 1 + (requests - first_turn) // REQS_PER_EVENT


def yields(conn: Wire) -> int:
    """``conn_yields`` once it stopped moving: memcached's worker may count the yield of a
    batch whose answers the client already has a moment later, so a value read at once can
    still lack the previous batch's yield (then the next measurement would count it)."""
    last = int(read_stats(conn)["conn_yields"])
    while True:
        time.sleep(0.05)
        now = int(read_stats(conn)["conn_yields"])
        if now == last:
            return now
        last = now


def test_settings_show_it(conn: Wire) -> None:
    assert read_stats(conn, b" settings")["reqs_per_event"] == str(REQS_PER_EVENT)


def test_the_formula_is_memcached_s() -> None:
    """What memcached 1.6.18 -R 5 was seen to count (this module checks both servers against it)."""
    assert [expected_yields(k) for k in COUNTS[:10]] == [0, 0, 1, 1, 1, 2, 2, 3, 3, 5]


@pytest.mark.parametrize("count", COUNTS)
def test_pipelined_gets_all_answered_in_order(conn: Wire, keys: Keys, count: int) -> None:
    names = [keys() for _ in range(count)]
    conn.call(b"".join(storage(b"set", k, b"%d" % i, noreply=True) for i, k in enumerate(names)), b"")
    before = yields(conn)
    conn.call(b"".join(b"get " + k + b"\r\n" for k in names),
              b"".join(value(k, b"%d" % i) + b"END\r\n" for i, k in enumerate(names)))
    assert yields(conn) - before == expected_yields(count + 1)  # (+ call's closing ``version``)


@pytest.mark.parametrize("count", [5, 6, 11, 64])
def test_pipelined_stores_and_meta_count_one_each(conn: Wire, keys: Keys, count: int) -> None:
    """Each storage command (line and data) and each meta command is one request."""
    names = [keys() for _ in range(count)]
    before = yields(conn)
    conn.call(b"".join(storage(b"set", k, b"x") for k in names) + b"mn\r\n", b"STORED\r\n" * count + b"MN\r\n")
    assert yields(conn) - before == expected_yields(count + 2)  # (+ mn, + call's ``version``)


def test_other_connections_are_served_meanwhile(connect: object, keys: Keys) -> None:
    """Two connections pipelining at once are both answered whole and in order."""
    first, second = connect(), connect()  # type: ignore[operator]
    names = [keys() for _ in range(200)]
    request = b"".join(b"get " + k + b"\r\n" for k in names)
    first.send(request)
    second.send(request)
    for conn in (first, second):
        assert conn.recv_exact(len(b"END\r\n") * 200) == b"END\r\n" * 200


@pytest.mark.parametrize("count", [5, 6, 12, 100])
def test_binary_requests_yield_the_same_way(bw: BinWire, conn: Wire, count: int) -> None:
    before = yields(conn)
    requests = [req(b.OP_SETQ, b"rpe-bin-%d" % i, store_extras(), b"v%d" % i, opaque=i) for i in range(count)]
    assert bw.call(*requests) == []  # quiet sets: no answer; then the NOOP (one request more)
    assert yields(conn) - before == expected_yields(count + 1)
    got = bw.call(*(req(b.OP_GET, b"rpe-bin-%d" % i, opaque=i) for i in range(count)))
    assert [(p.opaque, p.value) for p in got] == [(i, b"v%d" % i) for i in range(count)]
