"""stats, stats settings, stats reset (names, formats, moving counters; no exact values that
depend on the implementation)."""

from __future__ import annotations

import re
import time
from typing import Callable

import pytest

from tests.servers import Server

from .conftest import Keys
from .wire import Wire, storage, value

STAT_LINE = re.compile(rb"STAT ([^ \r\n]+) ([^\r\n]*)\r\n")

REQUIRED = [
    "pid", "uptime", "time", "version", "curr_connections", "total_connections", "cmd_get", "cmd_set",
    "get_hits", "get_misses", "curr_items", "total_items", "bytes", "evictions", "limit_maxbytes", "threads",
]  # fmt: skip
NUMERIC = [name for name in REQUIRED if name != "version"]


def read_stats(conn: Wire, args: bytes = b"") -> dict[str, str]:
    """Send ``stats [args]`` and parse the reply strictly: STAT lines, then END."""
    reply = conn.request(b"stats" + args + b"\r\n", b"END\r\n")
    stats: dict[str, str] = {}
    pos = 0
    while pos < len(reply) - 5:
        m = STAT_LINE.match(reply, pos)
        assert m is not None, f"not a STAT line: {reply[pos:pos + 80]!r}"
        name = m.group(1).decode()
        assert name not in stats, f"{name} reported twice"
        stats[name] = m.group(2).decode()
        pos = m.end()
    assert reply[pos:] == b"END\r\n"
    return stats


def counters(conn: Wire, *names: str) -> dict[str, int]:
    stats = read_stats(conn)
    return {n: int(stats[n]) for n in names}


def test_stats_has_the_standard_names(conn: Wire) -> None:
    """``stats`` lists at least the standard general-purpose names; numbers are integers."""
    stats = read_stats(conn)
    missing = [n for n in REQUIRED if n not in stats]
    assert not missing
    for name in NUMERIC:
        assert re.fullmatch(r"0|[1-9][0-9]*", stats[name]), (name, stats[name])


def test_stats_values(conn: Wire, server: Server) -> None:
    """pid is the server's, time is now, version matches ``version``, limits are the defaults
    (-m 64, -t 2), and this connection is counted."""
    stats = read_stats(conn)
    assert int(stats["pid"]) == server.proc.pid
    assert abs(int(stats["time"]) - time.time()) <= 3
    assert int(stats["uptime"]) >= 0
    assert int(stats["limit_maxbytes"]) == 64 * 1024 * 1024
    assert int(stats["threads"]) == 2
    assert int(stats["curr_connections"]) >= 1
    assert int(stats["total_connections"]) >= int(stats["curr_connections"])
    conn.send(b"version\r\n")
    assert conn.recv_line() == b"VERSION " + stats["version"].encode() + b"\r\n"


def test_get_counters_move(conn: Wire, keys: Keys) -> None:
    """A hit adds one to get_hits, a miss one to get_misses; cmd_get counts keys."""
    k, miss = keys(), keys()
    conn.call(storage(b"set", k, b"v"), b"STORED\r\n")
    names = ("get_hits", "get_misses", "cmd_get")
    before = counters(conn, *names)
    conn.call(b"get " + k + b"\r\n", value(k, b"v") + b"END\r\n")
    after_hit = counters(conn, *names)
    assert after_hit == {
        "get_hits": before["get_hits"] + 1,
        "get_misses": before["get_misses"],
        "cmd_get": before["cmd_get"] + 1,
    }
    conn.call(b"get " + miss + b" " + k + b" " + miss + b"\r\n", value(k, b"v") + b"END\r\n")
    after = counters(conn, *names)
    assert after == {
        "get_hits": after_hit["get_hits"] + 1,
        "get_misses": after_hit["get_misses"] + 2,
        "cmd_get": after_hit["cmd_get"] + 3,
    }


def test_set_and_item_counters_move(conn: Wire, keys: Keys) -> None:
    """Each storage command counts in cmd_set; a new key adds to curr_items and total_items,
    its delete takes it out of curr_items; bytes grows while the item exists."""
    k = keys()
    names = ("cmd_set", "curr_items", "total_items", "bytes")
    before = counters(conn, *names)
    conn.call(storage(b"set", k, b"x" * 1000), b"STORED\r\n")
    stored = counters(conn, *names)
    assert stored["cmd_set"] == before["cmd_set"] + 1
    assert stored["curr_items"] == before["curr_items"] + 1
    assert stored["total_items"] == before["total_items"] + 1
    assert stored["bytes"] >= before["bytes"] + 1000
    conn.call(storage(b"add", k, b"y"), b"NOT_STORED\r\n")
    assert counters(conn, "cmd_set")["cmd_set"] == before["cmd_set"] + 2
    conn.call(b"delete " + k + b"\r\n", b"DELETED\r\n")
    deleted = counters(conn, *names)
    assert deleted["curr_items"] == before["curr_items"]
    assert deleted["bytes"] == before["bytes"]


def test_connection_counters_move(conn: Wire, connect: Callable[[], Wire]) -> None:
    """A new connection adds one to total_connections and curr_connections; closing it takes
    it out of curr_connections again.

    Connections of earlier tests may still be closing on the server side, so the measurement
    is retried a few times and the decrease is polled for."""
    names = ("curr_connections", "total_connections")
    for _attempt in range(5):
        before = counters(conn, *names)
        other = connect()
        other.sync()  # the server has surely accepted it now
        after = counters(conn, *names)
        assert after["total_connections"] == before["total_connections"] + 1
        if after["curr_connections"] == before["curr_connections"] + 1:
            break
        other.close()
        time.sleep(0.1)
    else:
        pytest.fail(f"curr_connections did not grow by one: {before} -> {after}")
    other.close()
    deadline = time.monotonic() + 3
    while counters(conn, "curr_connections")["curr_connections"] != before["curr_connections"]:
        assert time.monotonic() < deadline, "curr_connections did not come back down after a close"
        time.sleep(0.02)


def test_stats_settings(conn: Wire, server: Server) -> None:
    """``stats settings`` reports the defaults and the real port."""
    stats = read_stats(conn, b" settings")
    for name in ("maxbytes", "maxconns", "tcpport", "item_size_max", "num_threads"):
        assert re.fullmatch(r"[0-9]+", stats[name]), (name, stats.get(name))
    assert int(stats["maxbytes"]) == 67108864
    assert int(stats["num_threads"]) == 2
    assert int(stats["tcpport"]) == server.port
    assert int(stats["item_size_max"]) == 1024 * 1024


@pytest.mark.parametrize("group", [b" items", b" slabs"])
def test_stats_items_and_slabs_end_with_end(conn: Wire, group: bytes) -> None:
    """``stats items`` and ``stats slabs`` answer STAT lines (maybe none) then END."""
    read_stats(conn, group)
    conn.sync()


def test_stats_reset(conn: Wire, keys: Keys) -> None:
    """``stats reset`` answers RESET and zeroes the get counters."""
    k = keys()
    conn.call(storage(b"set", k, b"v") + b"get " + k + b"\r\n", b"STORED\r\n" + value(k, b"v") + b"END\r\n")
    assert counters(conn, "get_hits")["get_hits"] >= 1
    conn.call(b"stats reset\r\n", b"RESET\r\n")
    assert counters(conn, "get_hits", "get_misses", "cmd_get") == {"get_hits": 0, "get_misses": 0, "cmd_get": 0}
    conn.call(b"get " + k + b"\r\n", value(k, b"v") + b"END\r\n")
    assert counters(conn, "get_hits")["get_hits"] == 1


def test_stats_unknown_group_is_error(conn: Wire) -> None:
    """An unknown ``stats`` argument is ERROR."""
    conn.call(b"stats bogus\r\n", b"ERROR\r\n")


def test_stats_group_ignores_extra_tokens(conn: Wire, server: Server) -> None:
    """memcached reads only the group's name: ``stats settings foo`` is ``stats settings``."""
    assert read_stats(conn, b" settings foo")["tcpport"] == str(server.port)
    conn.call(b"stats reset now\r\n", b"RESET\r\n")
    conn.call(b"stats nosuchgroup x\r\n", b"ERROR\r\n")


def test_stats_conns(conn: Wire, connect: Callable[[], Wire], server: Server) -> None:
    """One entry per listening socket and per client: addr (and listen_addr for clients),
    state, secs_since_last_cmd. The asking connection is conn_parse_cmd; an idle one
    conn_read; one in the middle of a value conn_nread."""
    idle, midway = connect(), connect()
    idle.call(b"", b"")
    midway.send(b"set k 0 0 10\r\nabc")
    time.sleep(0.3)
    entries: dict[str, dict[str, str]] = {}
    for name, value_ in read_stats(conn, b" conns").items():
        cid, field = name.split(":", 1)
        assert cid.isdigit(), name
        entries.setdefault(cid, {})[field] = value_
    for fields in entries.values():
        assert {"addr", "state", "secs_since_last_cmd"} <= set(fields) and fields["secs_since_last_cmd"].isdigit()
    listeners = [f for f in entries.values() if f["state"] == "conn_listening"]
    assert listeners and all(f["addr"].endswith(f":{server.port}") and "listen_addr" not in f for f in listeners)
    clients = {f["addr"]: f for f in entries.values() if "listen_addr" in f}
    for wire, state in ((conn, "conn_parse_cmd"), (idle, "conn_read"), (midway, "conn_nread")):
        host, port = wire.sock.getsockname()[:2]
        fields = clients[f"tcp:{host}:{port}"]
        assert fields["state"] == state and fields["listen_addr"] == f"tcp:127.0.0.1:{server.port}"
