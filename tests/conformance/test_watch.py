"""``watch``: memcached 1.6.18's log streams, line for line.

Each test's expected lines are written once and hold for kvshard and memcached alike: the
fields, their order and their values, except those that cannot match (``ts``, ``gid``, ``cfd``:
masked as ``*``). ``clsid`` matches too: kvshard reports the class memcached's default slab sizes
give. Only lines about the test's own keys (or client ports) are looked at, so what other
connections do cannot disturb a test.

memcached writes a watcher's lines from a background thread that may sleep up to a second, so
lines are read with the suite's usual deadline, never by waiting a fixed time.
"""

from __future__ import annotations

import re
from urllib.parse import quote
from typing import Callable, Iterator

import pytest

from tests.servers import Server, server_kinds, start_server

from .conftest import Keys
from .wire import Wire, storage, value

Connect = Callable[[], Wire]

_MASKED = re.compile(r"\b(ts|gid|cfd)=\S+")


def _masked(line: bytes) -> str:
    return _MASKED.sub(r"\1=*", line.decode().rstrip("\n"))


def watch(connect: Connect, streams: bytes = b"") -> Wire:
    """A new connection that watches ``streams`` (memcached's default: fetchers)."""
    watcher = connect()
    watcher.send(b"watch" + (b" " + streams if streams else b"") + b"\r\n")
    watcher.expect(b"OK\r\n")
    return watcher


def lines_about(watcher: Wire, marker: str, count: int) -> list[str]:
    """The next ``count`` lines that mention ``marker`` (a ``key=...`` or ``rport=...``), masked."""
    found: list[str] = []
    while len(found) < count:
        line = watcher.recv_until(b"\n")
        if f" {marker} " in line.decode() + " ":
            found.append(_masked(line))
    return found


def _key(key: bytes) -> str:
    """A key as memcached's log writes it: URI-encoded."""
    return "key=" + quote(key, safe="-._~")


_SMALL_CLASSES = (96, 120, 152, 192, 240)  # memcached 1.6's first slab classes (-n 48 -f 1.25)


def _clsid(key: bytes, size: int, flags: int = 0) -> int:
    """The slab class of a small item: memcached's header (48 bytes, 8 of CAS), key, NUL,
    flags (when not 0), data and CRLF."""
    total = 56 + len(key) + 1 + (4 if flags else 0) + size + 2
    return next(clsid for clsid, chunk in enumerate(_SMALL_CLASSES, 1) if total <= chunk)


def _get(key: bytes, status: str, size: int = 0) -> str:
    clsid = _clsid(key, size) if status == "found" else 0
    return f"ts=* gid=* type=item_get {_key(key)} status={status} clsid={clsid} cfd=* size={size}"


def _store(key: bytes, status: str, cmd: str, ttl: int, size: int, flags: int = 0) -> str:
    clsid = _clsid(key, size, flags)
    return f"ts=* gid=* type=item_store {_key(key)} status={status} cmd={cmd} ttl={ttl} clsid={clsid} cfd=* size={size}"


def test_watch_answers_ok_then_streams_fetches(connect: Connect, keys: Keys) -> None:
    """Plain ``watch`` means fetchers: a set looks its key up too, as memcached's does."""
    watcher = watch(connect)
    client, key = connect(), keys()
    client.call(b"get " + key + b"\r\n", b"END\r\n")
    client.call(storage(b"set", key, b"abc", exptime=100), b"STORED\r\n")
    client.call(b"get " + key + b"\r\n", value(key, b"abc") + b"END\r\n")
    assert lines_about(watcher, _key(key), 3) == [
        _get(key, "not_found"), _get(key, "not_found"), _get(key, "found", 3),
    ]


def test_every_command_that_looks_a_key_up_is_a_fetch(connect: Connect, keys: Keys) -> None:
    watcher = watch(connect, b"fetchers")
    client, key, missing = connect(), keys(), keys()
    client.call(storage(b"set", key, b"10"), b"STORED\r\n")
    client.send(b"gets " + key + b"\r\n")
    client.recv_until(b"END\r\n")
    client.call(b"touch " + key + b" 10\r\n", b"TOUCHED\r\n")
    client.call(b"incr " + key + b" 5\r\n", b"15\r\n")
    client.call(b"gat 10 " + key + b"\r\n", value(key, b"15") + b"END\r\n")
    client.call(b"mg " + key + b" v\r\n", b"VA 2\r\n15\r\n")
    client.call(b"delete " + key + b"\r\n", b"DELETED\r\n")
    client.call(b"delete " + key + b"\r\n", b"NOT_FOUND\r\n")
    client.call(b"mg " + missing + b" v\r\n", b"EN\r\n")
    found = _get(key, "found", 2)
    assert lines_about(watcher, _key(key), 8) == [
        _get(key, "not_found"), found, found, found, found, found, found, _get(key, "not_found"),
    ]
    assert lines_about(watcher, _key(missing), 1) == [_get(missing, "not_found")]


def test_mutations_log_each_store_with_its_result(connect: Connect, keys: Keys) -> None:
    """Stored or refused, every storage command is one line: its verb, the result, the new
    item's ttl and size; incr, touch and delete are no mutations in memcached's log."""
    watcher = watch(connect, b"mutations")
    client, key, missing = connect(), keys(), keys()
    client.call(storage(b"set", key, b"abc", exptime=100), b"STORED\r\n")
    client.call(storage(b"add", key, b"x"), b"NOT_STORED\r\n")
    client.call(storage(b"replace", key, b"xy", flags=5), b"STORED\r\n")
    client.call(storage(b"append", key, b"z", exptime=50), b"STORED\r\n")
    client.call(storage(b"prepend", key, b"q"), b"STORED\r\n")
    client.call(storage(b"cas", key, b"c", cas=999999), b"EXISTS\r\n")
    client.call(b"delete " + key + b"\r\n", b"DELETED\r\n")
    client.call(b"ms " + key + b" 2 T30\r\nhi\r\n", b"HD\r\n")
    client.call(storage(b"cas", missing, b"c", cas=1), b"NOT_FOUND\r\n")
    client.call(storage(b"replace", missing, b"r"), b"NOT_STORED\r\n")
    client.call(storage(b"append", missing, b"r"), b"NOT_STORED\r\n")
    assert lines_about(watcher, _key(key), 7) == [
        _store(key, "stored", "set", 100, 3), _store(key, "not_stored", "add", 0, 1),
        _store(key, "stored", "replace", 0, 2, flags=5), _store(key, "stored", "append", 0, 3, flags=5),
        _store(key, "stored", "prepend", 0, 4, flags=5), _store(key, "exists", "cas", 0, 1),
        _store(key, "stored", "set", 30, 2),
    ]
    assert lines_about(watcher, _key(missing), 3) == [
        _store(missing, "not_found", "cas", 0, 1), _store(missing, "not_stored", "replace", 0, 1),
        _store(missing, "not_stored", "append", 0, 1),
    ]


def test_fetchers_and_mutations_interleave_in_order(connect: Connect, keys: Keys) -> None:
    watcher = watch(connect, b"fetchers mutations")
    client, key = connect(), keys()
    client.call(storage(b"set", key, b"abc"), b"STORED\r\n")
    client.call(storage(b"add", key, b"x"), b"NOT_STORED\r\n")
    assert lines_about(watcher, _key(key), 4) == [
        _get(key, "not_found"), _store(key, "stored", "set", 0, 3),
        _get(key, "found", 3), _store(key, "not_stored", "add", 0, 1),
    ]


def test_a_multi_get_logs_every_key(connect: Connect, keys: Keys) -> None:
    """Keys of a multi-get on any shard: each has its line (from one shard each, lines of
    different shards may come in another order than memcached's, so they are sorted here)."""
    watcher = watch(connect)
    client = connect()
    names = [keys() for _ in range(8)]
    client.call(b"get " + b" ".join(names) + b"\r\n", b"END\r\n")
    seen = []
    while len(seen) < len(names):
        line = watcher.recv_until(b"\n")
        if any(f" {_key(name)} " in line.decode() for name in names):
            seen.append(_masked(line))
    assert sorted(seen) == sorted(_get(name, "not_found") for name in names)


def _port(wire: Wire) -> int:
    return int(wire.sock.getsockname()[1])


def test_connevents_tell_new_and_closed_clients(connect: Connect, server: Server) -> None:
    watcher = watch(connect, b"connevents")
    for ending in (b"", b"quit\r\n"):
        client = Wire.connect(server.address)
        port = _port(client)
        client.sync()
        if ending:
            client.send(ending)
            client.wait_closed()
        client.close()
        assert lines_about(watcher, f"rport={port}", 2) == [
            f"ts=* gid=* type=conn_new rip=127.0.0.1 rport={port} transport=tcp cfd=*",
            f"ts=* gid=* type=conn_close rip=127.0.0.1 rport={port} transport=tcp reason=normal cfd=*",
        ]


@pytest.mark.parametrize("request_bytes, answer", [
    (b"watch bogus\r\n", b"ERROR\r\n"),
    (b"watch fetchers bogus\r\n", b"ERROR\r\n"),
    (b"WATCH\r\n", b"ERROR\r\n"),
    (b"watch noreply\r\n", b""),  # an unknown stream name to memcached, its ERROR silenced
    (b"watch fetchers noreply\r\n", b""),
    (b"set watch-pipelined 0 0 1 noreply\r\nx\r\nwatch\r\n", b"ERROR cannot pipeline other commands before watch\r\n"),
    (b"verbosity 0 noreply\r\nwatch\r\n", b"ERROR cannot pipeline other commands before watch\r\n"),
    (b"watch-not\r\nwatch\r\n", b"ERROR\r\nERROR cannot pipeline other commands before watch\r\n"),
])
def test_refused_watches_leave_a_client(conn: Wire, request_bytes: bytes, answer: bytes) -> None:
    conn.call(request_bytes, answer)  # the sync after it is answered: still a client


def test_a_get_before_watch_is_answered_then_the_rest_is_dropped(conn: Wire, connect: Connect, keys: Keys) -> None:
    """A get's answer goes out at once in memcached, so it does not block a watch in the same
    read; what follows the watch is never run (here: no VERSION, no lookup of its key)."""
    key, ignored = keys(), keys()
    conn.send(b"get " + key + b"\r\nwatch\r\nversion\r\nget " + ignored + b"\r\n")
    conn.expect(b"END\r\nOK\r\n")
    conn.send(b"version\r\nget " + ignored + b"\r\n")  # a watcher's input is dropped
    client = connect()
    client.call(b"get " + key + b"\r\n", b"END\r\n")
    line = conn.recv_until(b"\n")
    while f" {_key(key)} " not in line.decode():  # other tests' lines may come first
        assert ignored not in line and not line.startswith(b"VERSION"), line
        line = conn.recv_until(b"\n")
    assert _masked(line) == _get(key, "not_found")


@pytest.fixture(scope="module", params=server_kinds())
def small_server(request: pytest.FixtureRequest) -> Iterator[Server]:
    with start_server(request.param, "-m", "2") as server:
        yield server


def test_evictions_tell_each_item_pushed_out(small_server: Server) -> None:
    """A 2 MiB cache filled with 100 kB items evicts: each eviction is one line (which items
    go first differs: kvshard's shards each keep an LRU)."""
    with Wire.connect(small_server.address) as watcher, Wire.connect(small_server.address) as client:
        watcher.send(b"watch evictions\r\n")
        watcher.expect(b"OK\r\n")
        data = b"v" * 100_000
        names = [b"evict-%d" % i for i in range(40)]
        for name in names:
            client.call(storage(b"set", name, data), b"STORED\r\n")
        pattern = re.compile(r"ts=\S+ gid=\d+ type=eviction key=(evict-\d+) fetch=no ttl=-1 la=\d+ clsid=32 size=100000\n")
        for _ in range(10):
            line = watcher.recv_until(b"\n").decode()
            match = pattern.fullmatch(line)
            assert match is not None and match.group(1).encode() in names, line


@pytest.fixture(scope="module", params=server_kinds())
def no_watch_server(request: pytest.FixtureRequest) -> Iterator[Server]:
    with start_server(request.param, "-W") as server:
        yield server


@pytest.mark.parametrize("request_bytes, answer", [
    (b"watch\r\n", b"CLIENT_ERROR watch commands not allowed\r\n"),
    (b"watch bogus\r\n", b"CLIENT_ERROR watch commands not allowed\r\n"),  # -W is checked first
    (b"watch fetchers noreply\r\n", b""),
])
def test_dash_w_refuses_watch(no_watch_server: Server, request_bytes: bytes, answer: bytes) -> None:
    with Wire.connect(no_watch_server.address) as conn:
        conn.call(request_bytes, answer)

