"""``stats cachedump``, ``stats sizes``, ``cache_memlimit`` and ``lru_crawler`` against memcached
1.6.18: the same answers and errors byte for byte, the same refusals under ``-X`` and ``-C``,
and expired items reclaimed by the crawler with no command touching them.

Where memcached's answer depends on its threads' timing, a test waits for it: its LRU
maintainer moves new items to the COLD LRU that ``cachedump`` reads, and its own crawls can make
a client's ``lru_crawler crawl`` answer ``BUSY`` for a moment.
"""

from __future__ import annotations

import time
from typing import Callable
from urllib.parse import quote

import pytest
from pymemcache.client.base import Client

from tests.servers import Server, server_kinds, start_server

from .test_ascii_stats import read_stats
from .wire import Wire, storage

ERRORS = [
    # (request, answer): memcached's checks, in its order
    (b"stats cachedump 1\r\n", b"CLIENT_ERROR bad command line\r\n"),
    (b"stats cachedump x 1\r\n", b"CLIENT_ERROR bad command line format\r\n"),
    (b"stats cachedump 1 -1\r\n", b"CLIENT_ERROR bad command line format\r\n"),
    (b"stats cachedump 64 0\r\n", b"CLIENT_ERROR Illegal slab id\r\n"),
    (b"stats cachedump 63 0\r\n", b"END\r\n"),
    (b"stats cachedump 0 0\r\n", b"END\r\n"),
    (b"cache_memlimit\r\n", b"ERROR\r\n"),
    (b"cache_memlimit 64 a b\r\n", b"ERROR\r\n"),
    (b"cache_memlimit x\r\n", b"ERROR\r\n"),
    (b"cache_memlimit -1\r\n", b"ERROR\r\n"),
    (b"cache_memlimit 7\r\n", b"MEMLIMIT_TOO_SMALL cannot set maxbytes to less than 8m\r\n"),
    (b"cache_memlimit 4294967296\r\n", b"MEMLIMIT_TOO_SMALL cannot set maxbytes to less than 8m\r\n"),
    (b"cache_memlimit 1000000001\r\n", b"MEMLIMIT_ADJUST_FAILED input value is megabytes not bytes\r\n"),
    (b"cache_memlimit x noreply\r\n", b""),
    (b"lru_crawler\r\n", b"ERROR\r\n"),
    (b"lru_crawler crawl\r\n", b"ERROR\r\n"),
    (b"lru_crawler crawl all extra\r\n", b"ERROR\r\n"),
    (b"lru_crawler enable noreply\r\n", b"ERROR\r\n"),
    (b"lru_crawler crawl 0\r\n", b"BADCLASS invalid class id\r\n"),
    (b"lru_crawler crawl 64\r\n", b"BADCLASS invalid class id\r\n"),
    (b"lru_crawler crawl 1,x\r\n", b"BADCLASS invalid class id\r\n"),
    (b"lru_crawler crawl ,\r\n", b"NOTSTARTED no items to crawl\r\n"),
    (b"lru_crawler crawl hash\r\n", b"ERROR an unknown error happened\r\n"),
    (b"lru_crawler metadump 0\r\n", b"BADCLASS invalid class id\r\n"),
    (b"lru_crawler sleep x\r\n", b"CLIENT_ERROR bad command line format\r\n"),
    (b"lru_crawler sleep 1000001\r\n", b"CLIENT_ERROR sleep must be one second or less\r\n"),
    (b"lru_crawler tocrawl -5\r\n", b"CLIENT_ERROR bad command line format\r\n"),
    (b"lru_crawler enable\r\n", b"ERROR failed to start lru crawler thread\r\n"),  # it runs already
]


def until(condition: Callable[[], bool], seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.1)


def crawler_command(conn: Wire, request: bytes, expected: bytes = b"OK\r\n") -> None:
    """A crawler command, tried again while the crawler is busy with its own work."""
    deadline = time.monotonic() + 10
    while True:
        conn.send(request)
        answer = conn.recv_line()
        if answer != b"BUSY currently processing crawler request\r\n" or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert answer == expected


def class_of(conn: Wire, key: bytes) -> int:
    """The slab class the item under ``key`` is in (its metadump line's cls)."""
    for line in metadump(conn, b"all"):
        if line[b"key"] == encoded(key):
            return int(line[b"cls"])
    raise AssertionError(f"{key!r} is not in the metadump")


def encoded(key: bytes) -> bytes:
    """A key as a metadump shows it: URI-encoded."""
    return quote(key, safe="").encode()


def metadump(conn: Wire, classes: bytes) -> list[dict[bytes, bytes]]:
    deadline = time.monotonic() + 10
    while True:
        conn.send(b"lru_crawler metadump " + classes + b"\r\n")
        text = conn.recv_until(b"\r\n")  # (a metadump line ends with \n alone: this is its END)
        if text != b"BUSY currently processing crawler request\r\n" or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert text.endswith(b"\nEND\r\n") or text == b"END\r\n", text[-200:]
    lines = text[: -len(b"END\r\n")].split(b"\n")[:-1]
    assert all(not line.endswith(b"\r") for line in lines)  # memcached ends these lines with \n alone
    return [dict(field.split(b"=", 1) for field in line.split(b" ")) for line in lines]


def test_errors_are_memcacheds(conn: Wire) -> None:
    for request, answer in ERRORS:
        conn.call(request, answer)


def test_cachedump_lists_a_class_newest_first(conn: Wire, keys: Callable[[], bytes]) -> None:
    first, second = keys(), keys()
    conn.call(storage(b"set", first, b"12345"), b"STORED\r\n")
    conn.call(storage(b"set", second, b"abcde", exptime=100), b"STORED\r\n")
    expires = int(time.time()) + 100
    clsid = class_of(conn, first)
    assert class_of(conn, second) == clsid

    def dumped() -> list[bytes]:
        reply = conn.request(b"stats cachedump %d 0\r\n" % clsid)
        return [line for line in reply.split(b"\r\n") if first in line or second in line]

    until(lambda: len(dumped()) == 2)  # memcached: once its maintainer moved them to COLD
    newest, oldest = dumped()
    assert oldest == b"ITEM %s [5 b; 0 s]" % first
    assert newest.startswith(b"ITEM %s [5 b; " % second) and newest.endswith(b" s]")
    assert abs(int(newest.split(b"; ")[1].split(b" ")[0]) - expires) <= 2  # a Unix time
    limited = conn.request(b"stats cachedump %d 1\r\n" % clsid)
    assert limited.count(b"ITEM ") == 1 and limited.endswith(b" s]\r\nEND\r\n")


def test_metadump_lines(conn: Wire, keys: Callable[[], bytes]) -> None:
    plain, expiring = keys(), keys()
    key_of_plain = plain
    conn.call(storage(b"set", plain, b"v" * 10, flags=3), b"STORED\r\n")
    conn.call(storage(b"set", expiring, b"v", exptime=100), b"STORED\r\n")
    conn.request(b"get " + plain + b"\r\n")
    now = int(time.time())
    lines = {line[b"key"]: line for line in metadump(conn, b"all")}
    plain, expiring = encoded(plain), encoded(expiring)
    assert list(lines[plain]) == [b"key", b"exp", b"la", b"cas", b"fetch", b"cls", b"size"]
    assert lines[plain][b"exp"] == b"-1" and lines[plain][b"fetch"] == b"yes"
    assert lines[plain][b"size"] == b"%d" % (56 + len(key_of_plain) + 1 + 4 + 10 + 2)  # memcached's item size
    assert abs(int(lines[expiring][b"exp"]) - (now + 100)) <= 2 and lines[expiring][b"fetch"] == b"no"
    assert abs(int(lines[expiring][b"la"]) - now) <= 2
    assert int(lines[expiring][b"cas"]) > 0
    clsid = lines[plain][b"cls"]
    assert plain in {line[b"key"] for line in metadump(conn, clsid)}
    conn.send(b"version\r\nlru_crawler metadump all\r\n")
    assert conn.recv_line().startswith(b"VERSION ")
    assert conn.recv_line() == b"ERROR cannot pipeline other commands before metadump\r\n"


def test_sizes(conn: Wire, keys: Callable[[], bytes]) -> None:
    conn.call(b"stats sizes\r\n", b"STAT sizes_status disabled\r\nEND\r\n")
    conn.call(b"stats sizes_disable\r\n", b"STAT sizes_status disabled\r\n")
    conn.call(b"stats sizes_enable\r\n", b"STAT sizes_status enabled\r\n")
    conn.call(b"stats sizes_enable\r\n", b"STAT sizes_status enabled\r\n")
    key = keys()
    conn.call(storage(b"set", key, b"v" * 100), b"STORED\r\n")
    size = 56 + len(key) + 1 + 100 + 2
    conn.call(b"stats sizes\r\n", b"STAT %d 1\r\nEND\r\n" % ((size + 31) // 32 * 32))
    settings = read_stats(conn, b" settings")
    assert settings["track_sizes"] == "yes"
    conn.call(b"stats sizes_disable\r\n", b"STAT sizes_status disabled\r\n")
    conn.call(b"stats sizes\r\n", b"STAT sizes_status disabled\r\nEND\r\n")
    assert read_stats(conn, b" settings")["track_sizes"] == "no"


def test_crawler_settings_follow_the_commands(conn: Wire) -> None:
    crawler_command(conn, b"lru_crawler sleep 200\r\n")
    crawler_command(conn, b"lru_crawler tocrawl 7\r\n")
    settings = read_stats(conn, b" settings")
    assert (settings["lru_crawler"], settings["lru_crawler_sleep"], settings["lru_crawler_tocrawl"]) == ("yes", "200", "7")
    crawler_command(conn, b"lru_crawler sleep 100\r\n")
    crawler_command(conn, b"lru_crawler tocrawl 0\r\n")
    stats = read_stats(conn)
    assert stats["lru_crawler_running"] in ("0", "1") and int(stats["lru_crawler_starts"]) >= 0


@pytest.mark.parametrize("kind", server_kinds())
def test_crawler_disabled_and_enabled_again(kind: str) -> None:
    with start_server(kind) as server, Wire.connect(server.address) as conn:
        crawler_command(conn, b"lru_crawler disable\r\n")
        until(lambda: read_stats(conn, b" settings")["lru_crawler"] == "no")
        assert "lru_crawler_running" not in read_stats(conn)
        conn.call(b"lru_crawler crawl all\r\n", b"CLIENT_ERROR lru crawler disabled\r\n")
        conn.call(b"lru_crawler metadump all\r\n", b"CLIENT_ERROR lru crawler disabled\r\n")
        conn.call(b"lru_crawler disable\r\n", b"OK\r\n")
        conn.call(b"lru_crawler enable\r\n", b"OK\r\n")
        assert read_stats(conn, b" settings")["lru_crawler"] == "yes"
        crawler_command(conn, b"lru_crawler crawl all\r\n")


@pytest.mark.parametrize("kind", server_kinds())
def test_dumps_refused_under_x(kind: str) -> None:
    with start_server(kind, "-X") as server, Wire.connect(server.address) as conn:
        conn.call(b"stats cachedump 1 0\r\n", b"CLIENT_ERROR stats cachedump not allowed\r\n")
        conn.call(b"stats cachedump\r\n", b"CLIENT_ERROR stats cachedump not allowed\r\n")
        conn.call(b"lru_crawler metadump all\r\n", b"ERROR metadump not allowed\r\n")
        assert read_stats(conn, b" settings")["dump_enabled"] == "no"
        crawler_command(conn, b"lru_crawler crawl all\r\n")  # a crawl is no dump


@pytest.mark.parametrize("kind", server_kinds())
def test_sizes_need_cas(kind: str) -> None:
    with start_server(kind, "-C") as server, Wire.connect(server.address) as conn:
        conn.call(b"stats sizes_enable\r\n", b"STAT sizes_status error\r\nSTAT sizes_error cas_support_disabled\r\n")
        conn.call(b"stats sizes\r\n", b"STAT sizes_status disabled\r\nEND\r\n")


@pytest.mark.parametrize("kind", server_kinds())
def test_track_sizes_from_the_start(kind: str) -> None:
    with start_server(kind, "-o", "track_sizes") as server, Wire.connect(server.address) as conn:
        assert read_stats(conn, b" settings")["track_sizes"] == "yes"
        conn.call(b"stats sizes\r\n", b"END\r\n")


@pytest.mark.parametrize("kind", server_kinds())
def test_cache_memlimit_changes_the_limit_and_a_lower_one_evicts(kind: str) -> None:
    with start_server(kind, "-m", "64") as server, Wire.connect(server.address) as conn:
        client = Client(server.address)
        assert client.cache_memlimit(100) is True  # pymemcache's command
        assert read_stats(conn, b" settings")["maxbytes"] == str(100 << 20)
        assert read_stats(conn)["limit_maxbytes"] == str(100 << 20)
        conn.call(b"cache_memlimit 8\r\n", b"OK\r\n")
        conn.call(b"cache_memlimit 9 noreply\r\n", b"")
        conn.call(b"cache_memlimit 8 noreply\r\n", b"")
        assert read_stats(conn, b" settings")["maxbytes"] == str(8 << 20)
        value = b"v" * 2000
        for i in range(12_000):  # 24 MB through an 8 MB cache
            conn.send(storage(b"set", b"memlimit:%d" % i, value, noreply=True))
        stats = read_stats(conn)
        assert int(stats["evictions"]) > 0
        malloced = int(read_stats(conn, b" slabs")["total_malloced"])
        assert malloced <= 10 << 20  # no pages past the new limit (but a class's first)
        client.close()


@pytest.mark.parametrize("kind", server_kinds())
def test_expired_items_nobody_touches_are_reclaimed(kind: str) -> None:
    """After a crawl: the LRU maintainer may get to the items first (a tail pull reclaims the
    expired items it meets; that counts in ``reclaimed``), else the crawler does (in
    ``crawler_reclaimed``); kvshard's and memcached's alike."""
    with start_server(kind) as server, Wire.connect(server.address) as conn:
        for i in range(50):
            conn.call(storage(b"set", b"ttl:%d" % i, b"v", exptime=1), b"STORED\r\n")
        conn.call(storage(b"set", b"ttl:keep", b"v"), b"STORED\r\n")
        assert read_stats(conn)["curr_items"] == "51"
        time.sleep(2.2)
        crawler_command(conn, b"lru_crawler crawl all\r\n")
        until(lambda: read_stats(conn)["curr_items"] == "1")
        stats = read_stats(conn)
        assert int(stats["crawler_reclaimed"]) + int(stats["reclaimed"]) == 50
        assert stats["expired_unfetched"] == "50" and stats["get_expired"] == "0"
        items = read_stats(conn, b" items")
        per_class = sum(int(v) for k, v in items.items() if k.endswith(":crawler_reclaimed"))
        assert per_class == int(stats["crawler_reclaimed"])
        if kind == "kvshard":
            checked = sum(int(v) for k, v in items.items() if k.endswith(":crawler_items_checked"))
            assert checked >= 1 + int(stats["crawler_reclaimed"])


def test_kvshards_crawler_reclaims_on_its_own() -> None:
    """kvshard's crawler walks a class again when the earliest expiry it saw comes (memcached's
    maintainer waits a minute or more between its crawls, so this is kvshard's alone); its LRU
    maintainer's tail pulls may reclaim some first."""
    with start_server("kvshard") as server, Wire.connect(server.address) as conn:
        for i in range(50):
            conn.call(storage(b"set", b"own:%d" % i, b"v", exptime=1 + i % 2), b"STORED\r\n")
        conn.call(storage(b"set", b"own:keep", b"v"), b"STORED\r\n")
        until(lambda: read_stats(conn)["curr_items"] == "1", seconds=8)
        stats = read_stats(conn)
        assert int(stats["crawler_reclaimed"]) + int(stats["reclaimed"]) == 50 and int(stats["lru_crawler_starts"]) > 0
