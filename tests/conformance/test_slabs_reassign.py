"""``slabs reassign`` and ``slabs automove`` against memcached 1.6.18: the same answers byte for
byte, pages moving between classes (and to and from the global page pool) with the items on
them kept, the automover at work, the ``stats``, ``stats settings`` and ``stats slabs`` fields
they change, and the commands counted per class in ``stats slabs``.

Each server moves pages in the background after answering ``OK``, so a test waits for
``slab_reassign_running`` to fall back to 0. kvshard moves a page on every shard (two here),
memcached one: a test compares pages against ``slabs_moved``, not against 1.
"""

from __future__ import annotations

import time
from typing import Callable

import pytest

from tests.servers import server_kinds, start_server

from .conftest import server_with
from .test_ascii_stats import read_stats
from .wire import Wire, storage, value

server = server_with("-o", "slab_automove=0")  # the tests move the pages themselves

OK = b"OK\r\n"
ERROR = b"ERROR\r\n"
BAD_FORMAT = b"CLIENT_ERROR bad command line format\r\n"
SAME = b"SAME src and dst class are identical\r\n"
BADCLASS = b"BADCLASS invalid src or dst class id\r\n"
NOSPARE = b"NOSPARE source class has no spare pages\r\n"
DISABLED = b"CLIENT_ERROR slab reassignment disabled\r\n"
SMALL = b"s" * 200  # a class of its own
BIG = b"B" * 5000


def until(condition: Callable[[], bool], seconds: float = 20.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


def settled(conn: Wire) -> dict[str, str]:
    """``stats`` once no page is moving."""
    until(lambda: read_stats(conn)["slab_reassign_running"] == "0")
    return read_stats(conn)


def moved(conn: Wire, before: dict[str, str]) -> dict[str, str]:
    """``stats`` once a move asked for after ``before`` (``stats``) is done (memcached's mover
    thread may start it only after the ``OK``)."""
    def done() -> bool:
        stats = read_stats(conn)
        return stats["slab_reassign_running"] == "0" and int(stats["slabs_moved"]) > int(before["slabs_moved"])
    until(done)
    return read_stats(conn)


def pages(conn: Wire) -> dict[int, int]:
    """Class id -> total_pages, from ``stats slabs``."""
    slabs = read_stats(conn, b" slabs")
    return {int(name.split(":")[0]): int(v) for name, v in slabs.items() if name.endswith(":total_pages")}


def fill(conn: Wire, prefix: bytes, n: int, data: bytes = SMALL) -> list[bytes]:
    """``n`` items, set without replies, then a sync."""
    keys = [b"%s:%d" % (prefix, i) for i in range(n)]
    for at in range(0, n, 500):
        conn.send(b"".join(storage(b"set", k, data, noreply=True) for k in keys[at : at + 500]))
    conn.call(b"", b"")
    return keys


def class_of(conn: Wire, data: bytes) -> int:
    """The class id an item of ``data`` lands in (the one whose pages grew)."""
    before = pages(conn)
    key = b"class-of:%d" % len(data)
    conn.call(storage(b"set", key, data), b"STORED\r\n")
    after = pages(conn)
    grown = [c for c in after if after[c] > before.get(c, 0)]
    if grown:
        return grown[0]
    slabs = read_stats(conn, b" slabs")  # it had pages already: the class whose chunk fits best
    sizes = sorted((int(v), int(n.split(":")[0])) for n, v in slabs.items() if n.endswith(":chunk_size"))
    return next(c for size, c in sizes if size >= len(data) + 64)


@pytest.mark.parametrize("line, answer", [
    (b"slabs reassign a 1", BAD_FORMAT),
    (b"slabs reassign 1 b", BAD_FORMAT),
    (b"slabs reassign 1x 2", BAD_FORMAT),
    (b"slabs reassign 1 99999999999", BADCLASS),  # read as a long, kept as an int32: 1215752191
    (b"slabs reassign 3 3", SAME),
    (b"slabs reassign -1 -1", SAME),
    (b"slabs reassign 0 0", SAME),
    (b"slabs reassign 200 1", BADCLASS),
    (b"slabs reassign 1 200", BADCLASS),
    (b"slabs reassign 1 -1", BADCLASS),
    (b"slabs reassign -2 1", BADCLASS),
    (b"slabs reassign 1 2 3", ERROR),
    (b"slabs reassign 1", ERROR),
    (b"slabs reassign 1 2 noreply", ERROR),
    (b"slabs automove 3", ERROR),
    (b"slabs automove x", BAD_FORMAT),
    (b"slabs automove ratio", ERROR),
    (b"slabs automove ratio x", ERROR),
    (b"slabs automove x noreply", b""),
    (b"slabs automove 0", OK),
    (b"slabs automove 0 noreply", b""),
])
def test_answers(conn: Wire, line: bytes, answer: bytes) -> None:
    conn.call(line + b"\r\n", answer)


@pytest.mark.parametrize("kind", server_kinds())
def test_a_fresh_server_has_no_page_to_spare(kind: str) -> None:
    with start_server(kind, "-o", "slab_automove=0") as fresh, Wire.connect(fresh.address) as conn:
        conn.call(b"slabs reassign 1 2\r\n", NOSPARE)
        conn.call(b"slabs reassign 0 2\r\n", NOSPARE)  # the pool is empty
        conn.call(b"slabs reassign -1 2\r\n", BADCLASS)  # no class to pick
        stats = read_stats(conn)
        assert (stats["slabs_moved"], stats["slab_reassign_running"], stats["slab_global_page_pool"]) == ("0", "0", "0")


def test_a_page_moves_and_its_items_are_rescued(conn: Wire) -> None:
    keys = fill(conn, b"rescue", 30_000)  # some 4 pages a shard, of 304-byte chunks
    small = class_of(conn, SMALL)
    big = class_of(conn, BIG)
    for key in keys[1::2]:  # half of every page free: room for the items of a page
        conn.send(b"delete " + key + b" noreply\r\n")
    conn.call(b"", b"")
    before_pages, before = pages(conn), settled(conn)
    conn.call(b"slabs reassign %d %d\r\n" % (small, big), OK)
    after = moved(conn, before)
    count = int(after["slabs_moved"]) - int(before["slabs_moved"])
    after_pages = pages(conn)
    assert after_pages[small] == before_pages[small] - count and after_pages[big] == before_pages[big] + count
    assert int(after["slab_reassign_rescues"]) > int(before["slab_reassign_rescues"])
    assert after["slab_reassign_evictions_nomem"] == before["slab_reassign_evictions_nomem"]
    assert after["curr_items"] == before["curr_items"]
    kept = keys[::2]
    for at in range(0, len(kept), 100):
        batch = kept[at : at + 100]
        conn.call(b"get " + b" ".join(batch) + b"\r\n", b"".join(value(k, SMALL) for k in batch) + b"END\r\n")


def test_pages_go_to_the_pool_and_back(conn: Wire) -> None:
    fill(conn, b"pool", 16_000)
    small = class_of(conn, SMALL)
    target = class_of(conn, b"t" * 20_000)
    start = settled(conn)
    malloced = read_stats(conn, b" slabs")["total_malloced"]
    for _ in range(2):  # a pool page is taken only while the pool keeps one (as a class does)
        before = read_stats(conn)
        conn.call(b"slabs reassign %d 0\r\n" % small, OK)
        moved(conn, before)
    stats = read_stats(conn)
    in_pool = int(stats["slab_global_page_pool"]) - int(start["slab_global_page_pool"])
    assert in_pool == int(stats["slabs_moved"]) - int(start["slabs_moved"]) >= 2
    assert read_stats(conn, b" slabs")["total_malloced"] == malloced  # the pool's pages count
    before, before_stats = pages(conn), read_stats(conn)
    conn.call(b"slabs reassign 0 %d\r\n" % target, OK)
    moved(conn, before_stats)
    assert pages(conn)[target] > before[target]
    assert int(read_stats(conn)["slab_global_page_pool"]) < int(stats["slab_global_page_pool"])


@pytest.mark.parametrize("kind", server_kinds())
def test_settings_follow_options_and_commands(kind: str) -> None:
    with start_server(kind, "-o", "slab_automove=2,slab_automove_ratio=0.5,slab_automove_window=7") as started, \
            Wire.connect(started.address) as conn:
        settings = read_stats(conn, b" settings")
        assert [settings[n] for n in ("slab_reassign", "slab_automove", "slab_automove_ratio", "slab_automove_window")] \
            == ["yes", "2", "0.50", "7"]
        conn.call(b"slabs automove 1\r\n", OK)
        conn.call(b"slabs automove ratio 0.25\r\n", OK)
        settings = read_stats(conn, b" settings")
        assert (settings["slab_automove"], settings["slab_automove_ratio"]) == ("1", "0.25")
        conn.call(b"slabs automove 0 noreply\r\n", b"")
        assert read_stats(conn, b" settings")["slab_automove"] == "0"


@pytest.mark.parametrize("kind", server_kinds())
def test_without_reassignment(kind: str) -> None:
    """-o no_slab_reassign: reassign refused before its numbers are read; automove still
    stored; the mover's fields left out of ``stats``, the pool's still there."""
    with start_server(kind, "-o", "no_slab_reassign") as started, Wire.connect(started.address) as conn:
        conn.call(b"slabs reassign 1 2\r\n", DISABLED)
        conn.call(b"slabs reassign a b\r\n", DISABLED)
        conn.call(b"slabs automove 2\r\n", OK)
        settings = read_stats(conn, b" settings")
        assert (settings["slab_reassign"], settings["slab_automove"]) == ("no", "2")
        stats = read_stats(conn)
        assert "slabs_moved" not in stats and "slab_reassign_running" not in stats
        assert stats["slab_global_page_pool"] == "0"


@pytest.mark.parametrize("kind", server_kinds())
def test_automove_1_gives_pages_of_free_chunks_to_the_pool(kind: str) -> None:
    """A class with more than 2.5 pages of free chunks and nothing new in its window (3 s
    here) gives pages to the global pool, one after another, down to what it uses."""
    with start_server(kind, "-o", "slab_automove=1,slab_automove_window=3") as started, \
            Wire.connect(started.address) as conn:
        keys = fill(conn, b"auto", 24_000)
        small = class_of(conn, SMALL)
        for key in keys:
            conn.send(b"delete " + key + b" noreply\r\n")
        conn.call(b"", b"")
        full = pages(conn)[small]
        until(lambda: int(read_stats(conn)["slab_global_page_pool"]) >= 2)
        stats = settled(conn)
        assert int(stats["slabs_moved"]) >= 2 and pages(conn)[small] < full


@pytest.mark.parametrize("kind", server_kinds())
def test_automove_2_feeds_a_class_that_evicts(kind: str) -> None:
    """-o slab_automove=2: a class that evicts gets pages of another class."""
    with start_server(kind, "-m", "8", "-o", "slab_automove=2") as started, Wire.connect(started.address) as conn:
        fill(conn, b"first", 40_000, b"f" * 100)  # every page to one class
        big = class_of(conn, BIG)
        deadline = time.monotonic() + 20
        round_ = 0
        while int(read_stats(conn)["slabs_moved"]) == 0:
            assert time.monotonic() < deadline, "no page moved"
            fill(conn, b"big%d" % round_, 300, BIG)  # evicts in its class
            round_ += 1
            time.sleep(0.1)
        until(lambda: pages(conn)[big] > 1)
