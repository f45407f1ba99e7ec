"""``stats reset`` as memcached 1.6.18's: every counter of every shard back to 0, the gauges
(items, bytes, open connections) left alone; over ASCII (``RESET``) and binary (an empty stats
answer). This module has its server to itself: a reset is server-wide."""

from __future__ import annotations

import pytest

from kvshard.protocol import binary as b

from .binwire import BinWire, Packet, req
from .test_ascii_stats import read_stats
from .wire import Wire

RESET_COUNTERS = (
    "total_connections", "rejected_connections", "cmd_get", "cmd_set", "cmd_flush", "cmd_touch", "cmd_meta",
    "get_hits", "get_misses", "get_expired", "delete_misses", "delete_hits", "incr_misses", "incr_hits",
    "decr_misses", "decr_hits", "cas_misses", "cas_hits", "cas_badval", "touch_hits", "touch_misses",
    "store_too_large", "store_no_memory", "auth_cmds", "auth_errors", "total_items", "evictions", "reclaimed",
)
GAUGES = ("curr_connections", "curr_items", "bytes")
# keys of both shards of a two-shard kvshard, whatever the routing
KEYS = [b"reset:%d" % i for i in range(8)]


def busy(conn: Wire) -> None:
    """Move every counter this test can move without waiting (on every shard)."""
    for key in KEYS:
        conn.send(b"set %b 0 0 1\r\n1\r\n" % key)
        assert conn.recv_line() == b"STORED\r\n"
    conn.call(b"get " + b" ".join(KEYS) + b" nokey\r\n", b"".join(b"VALUE %b 0 1\r\n1\r\n" % k for k in KEYS) + b"END\r\n")
    conn.call(b"incr reset:0 1\r\ndecr nokey 1\r\ntouch reset:1 0\r\ndelete reset:2\r\ndelete nokey\r\n",
              b"2\r\nNOT_FOUND\r\nTOUCHED\r\nDELETED\r\nNOT_FOUND\r\n")
    conn.call(b"cas reset:3 0 0 1 1\r\nx\r\ncas nokey 0 0 1 1\r\nx\r\n", b"EXISTS\r\nNOT_FOUND\r\n")
    conn.call(b"flush_all 1000000\r\n", b"OK\r\n")  # counted, and nothing goes before the test ends
    conn.send(b"me reset:0\r\n")
    assert conn.recv_line().startswith(b"ME reset:0 ")


@pytest.mark.parametrize("line", [b"stats reset", b"stats reset now please"])
def test_reset_zeroes_every_counter_and_keeps_the_gauges(conn: Wire, line: bytes) -> None:
    busy(conn)
    before = read_stats(conn)
    assert all(int(before[name]) for name in ("cmd_get", "cmd_set", "cmd_flush", "cmd_meta", "total_items"))
    conn.call(line + b"\r\n", b"RESET\r\n", sync=False)  # (so nothing else is read or written since)
    after = read_stats(conn)
    assert {name: int(after[name]) for name in RESET_COUNTERS} == dict.fromkeys(RESET_COUNTERS, 0)
    # what moved since: the ``stats`` request read, the RESET reply written
    assert (int(after["bytes_read"]), int(after["bytes_written"])) == (len(b"stats\r\n"), len(b"RESET\r\n"))
    assert {name: after[name] for name in GAUGES} == {name: before[name] for name in GAUGES}


def test_binary_reset(bw: BinWire, conn: Wire) -> None:
    busy(conn)
    assert bw.call(req(b.OP_STAT, key=b"reset", opaque=9)) == [Packet(b.OP_STAT, b.ST_OK, 9, 0)]
    after = read_stats(conn)
    assert {name: int(after[name]) for name in RESET_COUNTERS} == dict.fromkeys(RESET_COUNTERS, 0)
