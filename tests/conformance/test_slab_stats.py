"""``stats slabs`` and ``stats items`` against memcached 1.6.18: the same fields (or listed in
the README as not reported), with the same meaning; allocator-dependent values may differ. The
commands ``stats slabs`` counts per class are counted in the same classes."""

from __future__ import annotations

import functools

import pytest

from tests.servers import server_kinds, start_server

from .test_ascii_stats import read_stats
from .test_stats_fields import not_reported
from .wire import Wire, storage, value

SMALL, BIG = b"s" * 100, b"b" * 5000
SMALL_200 = b"s" * 200


def _stat_lines(conn: Wire, group: bytes) -> dict[str, str]:
    conn.send(b"stats " + group + b"\r\n")
    text = conn.recv_until(b"END\r\n").decode()
    return dict(line.split(" ", 2)[1:] for line in text.splitlines() if line.startswith("STAT "))


def _load(conn: Wire) -> None:
    for i in range(5):
        conn.call(storage(b"set", b"slab-stats:small:%d" % i, SMALL), b"STORED\r\n")
    conn.call(storage(b"set", b"slab-stats:big", BIG), b"STORED\r\n")
    conn.call(b"get slab-stats:small:1\r\n", value(b"slab-stats:small:1", SMALL) + b"END\r\n")
    conn.call(b"delete slab-stats:small:2\r\n", b"DELETED\r\n")


def _first_class_fields(stats: dict[str, str]) -> list[str]:
    """The field names, in order, of the first class in a ``stats slabs`` or ``stats items``."""
    names = [name.removeprefix("items:") for name in stats if ":" in name]
    first = names[0].split(":")[0]
    return [name.split(":", 1)[1] for name in names if name.split(":")[0] == first]


@functools.lru_cache(maxsize=None)
def _after_load(kind: str) -> tuple[dict[str, str], dict[str, str]]:
    """(stats slabs, stats items) of a fresh server of ``kind`` after :func:`_load`."""
    with start_server(kind) as server, Wire.connect(server.address) as conn:
        _load(conn)
        return _stat_lines(conn, b"slabs"), _stat_lines(conn, b"items")


@pytest.mark.parametrize("kind", server_kinds())
def test_slabs_and_items_mean_what_memcacheds_mean(kind: str) -> None:
    slabs, items = _after_load(kind)
    classes = sorted({int(name.split(":")[0]) for name in slabs if ":" in name})
    per_class = {c: {n.split(":")[1]: int(v) for n, v in slabs.items() if n.startswith(f"{c}:")} for c in classes}
    assert int(slabs["active_slabs"]) == len(classes) == 2  # the small items' class and the big one's
    assert int(slabs["total_malloced"]) == sum(f["total_pages"] for f in per_class.values()) * (1 << 20)
    small, big = (per_class[c] for c in classes)
    assert small["used_chunks"] == 4 and big["used_chunks"] == 1  # one small item was deleted
    for figures in per_class.values():
        assert figures["total_chunks"] == figures["total_pages"] * figures["chunks_per_page"]
        assert figures["free_chunks"] == figures["total_chunks"] - figures["used_chunks"]
        assert figures["chunks_per_page"] == (1 << 20) // figures["chunk_size"]
    assert small["chunk_size"] >= 100 and big["chunk_size"] >= 5000
    assert {c: int(items[f"items:{c}:number"]) for c in classes} == {classes[0]: 4, classes[1]: 1}
    assert int(items[f"items:{classes[1]}:mem_requested"]) >= 5000
    for c in classes:
        assert items[f"items:{c}:evicted"] == items[f"items:{c}:outofmemory"] == "0"


@pytest.mark.skipif("memcached" not in server_kinds(), reason="memcached not installed")
def test_every_memcached_field_is_reported_or_listed() -> None:
    """Per class, kvshard shows no field memcached lacks, in memcached's order, and every
    field it leaves out is in the README's table (and no listed one is shown)."""
    listed = not_reported()[b" slabs"]
    for ours, theirs in zip(_after_load("kvshard"), _after_load("memcached")):
        ours_names, theirs_names = _first_class_fields(ours), _first_class_fields(theirs)
        assert ours_names == [n for n in theirs_names if n in set(ours_names)]  # same order
        ours_set, theirs_set = set(ours_names), set(theirs_names)
        assert ours_set <= theirs_set, ours_set - theirs_set
        assert theirs_set - ours_set == listed & theirs_set, (theirs_set - ours_set) ^ (listed & theirs_set)
        assert not ours_set & listed


@pytest.mark.parametrize("kind", server_kinds())
def test_commands_are_counted_per_class(kind: str) -> None:
    with start_server(kind) as started, Wire.connect(started.address) as conn:
        counter = b" " * 199 + b"5"  # a number in the small items' class
        conn.call(storage(b"set", b"count", counter), b"STORED\r\n")
        conn.call(storage(b"set", b"small", SMALL_200), b"STORED\r\n")
        conn.call(storage(b"set", b"big", BIG), b"STORED\r\n")
        conn.call(b"get small big nothing\r\n", value(b"small", SMALL_200) + value(b"big", BIG) + b"END\r\n")
        conn.call(b"incr count 2\r\n", b"7\r\n")
        conn.call(b"decr count 1\r\n", b"6\r\n")
        conn.call(b"touch big 100\r\n", b"TOUCHED\r\n")
        conn.call(storage(b"cas", b"big", BIG, cas=1), b"EXISTS\r\n")
        cas = int(conn.request(b"gets big\r\n").split(b"\r\n")[0].split()[-1])
        conn.call(storage(b"cas", b"big", BIG, cas=cas), b"STORED\r\n")
        conn.call(b"delete small\r\n", b"DELETED\r\n")
        conn.call(b"mg big v\r\n", b"VA 5000\r\n" + BIG + b"\r\n")
        slabs = read_stats(conn, b" slabs")
        ids = sorted({int(name.split(":")[0]) for name in slabs if ":" in name})
        assert len(ids) == 2
        small_id, big_id = ids
        names = ("get_hits", "cmd_set", "delete_hits", "incr_hits", "decr_hits", "cas_hits", "cas_badval", "touch_hits")
        counted = {c: [int(slabs[f"{c}:{n}"]) for n in names] for c in ids}
        assert counted[small_id] == [1, 2, 1, 1, 1, 0, 0, 0]
        assert counted[big_id] == [3, 3, 0, 0, 0, 1, 1, 1]
        totals = read_stats(conn)
        assert [int(totals[n]) for n in names] == [a + b for a, b in zip(counted[small_id], counted[big_id])]
        conn.call(b"stats reset\r\n", b"RESET\r\n")
        slabs = read_stats(conn, b" slabs")
        assert all(slabs[f"{c}:{n}"] == "0" for c in ids for n in names)
