"""``watch`` and ``verbosity`` in pieces: the parser's tuples, memcached's line formats, the
hub's fan-in across shards (with an in-process messenger), the cache's hooks, and the helpers
that pick command and answer lines out of a read for ``-vv`` tracing. The whole server is
tested against memcached in tests/conformance/test_watch.py and tests/test_verbosity.py."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from kvshard.cache import Cache
from kvshard.protocol import ascii as p
from kvshard.protocol.watch import LOG_CONNEVENTS, LOG_EVICTIONS, LOG_FETCHERS, LOG_MUTATIONS, watch_flags
from kvshard.verbosity import command_lines, reply_lines
from kvshard.watch_lines import conn_close, conn_new, item_get, item_store, slab_class, stamp, uri_encode
from kvshard.watchers import R_WATCHER_TOO_MANY, WATCHER_LIMIT, WatchHub


def test_watch_arguments_as_memcached_reads_them() -> None:
    assert watch_flags([]) == LOG_FETCHERS
    assert watch_flags([b"mutations", b"evictions"]) == LOG_MUTATIONS | LOG_EVICTIONS
    assert watch_flags([b"connevents", b"connevents"]) == LOG_CONNEVENTS
    assert watch_flags([b"fetchers", b"bogus"]) == -1
    assert watch_flags([b"noreply"]) == -1  # memcached's loop reads it as a stream name too


def test_the_parser_passes_watch_on_with_noreply_when_it_ends_the_line() -> None:
    parser = p.AsciiParser()
    assert parser.feed(b"watch\r\nwatch fetchers noreply\r\nwatch x\r\n") == [
        (p.WATCH, LOG_FETCHERS, False), (p.WATCH, -1, True), (p.WATCH, -1, False),
    ]


def test_lines_have_memcached_fields_in_memcached_order() -> None:
    assert stamp(1_700_000_000_000_123_000, 7, "type=x") == "ts=1700000000.123 gid=7 type=x\n"
    assert item_get(b"k", 1, 0, 3, 17) == "type=item_get key=k status=found clsid=1 cfd=17 size=3"
    assert item_get(b"k", 0, 0, 0, -1) == "type=item_get key=k status=not_found clsid=0 cfd=-1 size=0"
    assert item_store(b"k", "stored", "set", 100, 1, 3, 17) == (
        "type=item_store key=k status=stored cmd=set ttl=100 clsid=1 cfd=17 size=3")
    assert conn_new(("127.0.0.1", 5000), 17) == "type=conn_new rip=127.0.0.1 rport=5000 transport=tcp cfd=17"
    assert conn_close("", "normal", 9) == "type=conn_close rip=unix rport=0 transport=local reason=normal cfd=9"


def test_keys_are_uri_encoded_and_classes_follow_memcached_defaults() -> None:
    assert uri_encode(b"a b/\x01~-._Z9") == "a%20b%2F%01~-._Z9"
    assert slab_class(3, 0, 3) == 1  # 65 bytes: memcached's 96-byte class
    assert slab_class(5, 0, 100000) == 32  # what memcached 1.6.18 -m 2 logs for such an item


class _Messenger:
    """Shards in one process: a message runs the other hub's handler at once."""

    def __init__(self, shard_id: int, hubs: dict[int, WatchHub]) -> None:
        self.shard_id = shard_id
        self.hubs = hubs
        self.full = False

    def send(self, shard: int, name: str, *args: Any) -> bool:
        if self.full and shard != self.shard_id:
            return False
        hub = self.hubs[shard]
        {"kv.watch_add": hub.add, "kv.watch_remove": hub.remove, "kv.watch_lines": hub.deliver}[name](*args)
        return True


class _Transport:
    def __init__(self) -> None:
        self.data = b""

    def write(self, data: bytes) -> None:
        self.data += data

    def is_closing(self) -> bool:
        return False

    def get_write_buffer_size(self) -> int:
        return 0


class _Connection:
    def __init__(self, conn_id: int) -> None:
        self.conn_id = conn_id
        self._transport = _Transport()
        self.sink: Any = None

    def become_watcher(self, sink: Any) -> None:
        self.sink = sink


class _Dispatcher:
    """fan_out as the real one does it, every shard at once."""

    def __init__(self, hubs: dict[int, WatchHub]) -> None:
        self.hubs = hubs
        self.replies: list[bytes] = []

    def fan_out(self, name: str, args: tuple[Any, ...], finish: Any) -> None:
        self.replies.append(finish([hub.add(*args) for hub in self.hubs.values()]))


@pytest.fixture
def hubs() -> Any:
    loop = asyncio.new_event_loop()
    hubs: dict[int, WatchHub] = {}
    clock = iter(range(10**12, 10**13, 1000)).__next__
    for shard in (0, 1):
        hubs[shard] = WatchHub(shard, 2, _Messenger(shard, hubs), loop, clock=clock)
    yield hubs, loop
    loop.close()


def _run_soon(loop: asyncio.AbstractEventLoop) -> None:
    loop.call_soon(loop.stop)
    loop.run_forever()


def test_a_watcher_on_one_shard_hears_every_shard_after_its_ok(hubs: Any) -> None:
    hubs, loop = hubs
    watcher = _Connection(conn_id=40)
    dispatcher = _Dispatcher(hubs)
    assert hubs[0].start(dispatcher, watcher, LOG_FETCHERS) is None
    assert hubs[1].flags == LOG_FETCHERS
    hubs[1].item_get(b"far", 0, 0, 0)
    hubs[0].item_get(b"near", 1, 0, 2)
    hubs[1].item_store(b"ignored", "stored", "set", 0, 1, 1)  # not a watched stream
    _run_soon(loop)
    assert dispatcher.replies[0].startswith(b"OK\r\n")  # held lines, if any, go after the OK
    text = (dispatcher.replies[0] + watcher._transport.data).decode()
    assert "key=far status=not_found" in text and "key=near status=found" in text and "ignored" not in text
    hubs[0].watcher_closed(40)
    assert hubs[0].flags == hubs[1].flags == 0


def test_lines_a_full_link_drops_are_counted_as_skipped(hubs: Any) -> None:
    hubs, loop = hubs
    watcher = _Connection(conn_id=40)
    hubs[0].start(_Dispatcher(hubs), watcher, LOG_FETCHERS)
    hubs[1]._messenger.full = True
    hubs[1].item_get(b"a", 0, 0, 0)
    hubs[1].item_get(b"b", 0, 0, 0)
    _run_soon(loop)
    hubs[1]._messenger.full = False
    hubs[1].item_get(b"c", 0, 0, 0)
    _run_soon(loop)
    assert watcher._transport.data.startswith(b"skipped=2\nts=")
    assert b"key=c " in watcher._transport.data


def test_more_than_twenty_watchers_are_refused(hubs: Any) -> None:
    hubs, _ = hubs
    for conn_id in range(WATCHER_LIMIT):
        assert hubs[0].start(_Dispatcher(hubs), _Connection(conn_id), LOG_FETCHERS) is None
    assert hubs[0].start(_Dispatcher(hubs), _Connection(99), LOG_FETCHERS) == R_WATCHER_TOO_MANY


class _Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[Any, ...]] = []

    def item_get(self, *args: Any) -> None:
        self.events.append(("get", *args))

    def item_store(self, *args: Any) -> None:
        self.events.append(("store", *args))

    def eviction(self, *args: Any) -> None:
        self.events.append(("evict", args[0]))


def test_the_cache_tells_lookups_stores_and_evictions_only_when_watched() -> None:
    cache = Cache(4096, page_size=4096)  # one small page: the smallest class fills quickly
    recorder = _Recorder()
    cache.watch_log = recorder
    cache.store(b"set", b"quiet", 0, 0, b"v")
    assert recorder.events == []
    cache.watch_flags = LOG_FETCHERS | LOG_MUTATIONS | LOG_EVICTIONS
    cache.store(b"set", b"k", 0, 100, b"abc")
    cache.get(b"k")
    cache.store(b"add", b"k", 0, 0, b"x")
    for i in range(4096 // 96):
        cache.store(b"set", b"fill%02d" % i, 0, 0, b"x")
    assert recorder.events[:5] == [
        ("get", b"k", 0, 0, 0), ("store", b"k", "stored", "set", 100, 1, 3), ("get", b"k", 1, 0, 3),
        ("get", b"k", 1, 0, 3), ("store", b"k", "not_stored", "add", 0, 1, 1),
    ]
    assert ("evict", b"quiet") in recorder.events


def test_trace_lines_leave_data_blocks_out() -> None:
    assert command_lines(0, b"", b"set k 0 0 5\r\na\r\nbc\r\nget k\r\nver") == [b"set k 0 0 5", b"get k"]
    assert command_lines(0, b"get ", b"k\r\n") == [b"get k"]
    assert command_lines(4, b"", b"ab\r\nmn\r\n") == [b"mn"]
    assert reply_lines(b"VALUE k 0 5\r\na\r\nbc\r\nEND\r\nSTAT pid 1\r\nSTORED\r\n") == [
        b"sending key k", b"END", b"STORED",
    ]
