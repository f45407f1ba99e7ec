"""The segmented LRU's commands and stats against memcached 1.6.18 with its LRU maintainer (the
default): ``lru tune|mode|temp_ttl`` answer byte for byte as memcached's and change what
``stats settings`` shows; ``stats items`` shows TEMP's count once ``-o temporary_ttl`` is given,
and a short-TTL item is counted there by both."""

from __future__ import annotations

import pytest

from tests.servers import server_kinds, start_server

from kvshard.protocol.ascii import R_ERROR as ERROR
from kvshard.protocol.ascii import R_OK as OK

from .test_ascii_stats import read_stats
from .wire import Wire, storage

LRU_DEFAULTS = {"lru_maintainer_thread": "yes", "lru_segmented": "yes", "hot_lru_pct": "20", "warm_lru_pct": "40",
                "hot_max_factor": "0.20", "warm_max_factor": "2.00", "temp_lru": "no", "temporary_ttl": "61"}


def _lru_settings(conn: Wire) -> dict[str, str]:
    settings = read_stats(conn, b" settings")
    return {name: settings[name] for name in LRU_DEFAULTS}


@pytest.mark.parametrize("line, answer, changed", [
    (b"lru tune 10 30 0.1 2.5", OK, {"hot_lru_pct": "10", "warm_lru_pct": "30", "hot_max_factor": "0.10",
                                     "warm_max_factor": "2.50"}),
    (b"lru tune 10 30 0.1 2.5 noreply", b"", {"hot_lru_pct": "10", "warm_lru_pct": "30", "hot_max_factor": "0.10",
                                              "warm_max_factor": "2.50"}),
    (b"lru tune 50 40 0.1 2", b"ERROR hot and warm pcts must not exceed 80\r\n", {}),
    (b"lru tune 10 20 0 2", b"ERROR hot/warm age factors must be greater than 0\r\n", {}),
    (b"lru tune 10 20 x 2", ERROR, {}),
    (b"lru mode flat", OK, {"lru_segmented": "no"}),
    (b"lru mode flat noreply", b"", {"lru_segmented": "no"}),
    (b"lru mode segmented", OK, {}),
    (b"lru mode", ERROR, {}),
    (b"lru mode round", ERROR, {}),
    (b"lru temp_ttl 30", OK, {"temp_lru": "yes", "temporary_ttl": "30"}),
    (b"lru temp_ttl 0", OK, {"temp_lru": "yes", "temporary_ttl": "0"}),
    (b"lru temp_ttl -1", OK, {}),  # TEMP off, the TTL stays
    (b"lru temp_ttl x", ERROR, {}),
    (b"lru frobnicate", ERROR, {}),
])
def test_lru_commands_answer_and_change_settings_as_memcached(conn: Wire, line: bytes, answer: bytes,
                                                              changed: dict[str, str]) -> None:
    conn.call(b"lru tune 20 40 0.2 2\r\nlru mode segmented\r\nlru temp_ttl 61\r\nlru temp_ttl -1\r\n", OK * 4)
    conn.call(line + b"\r\n", answer)
    assert _lru_settings(conn) == {**LRU_DEFAULTS, **changed}


@pytest.mark.parametrize("kind", server_kinds())
def test_temp_lru_items_are_counted_in_their_own_list(kind: str) -> None:
    with start_server(kind, "-o", "temporary_ttl=30") as server, Wire.connect(server.address) as conn:
        assert _lru_settings(conn) == {**LRU_DEFAULTS, "temp_lru": "yes", "temporary_ttl": "30"}
        conn.call(storage(b"set", b"lru-admin:short", b"v" * 10, exptime=20), b"STORED\r\n")
        conn.call(storage(b"set", b"lru-admin:long", b"v" * 10, exptime=100), b"STORED\r\n")
        conn.call(storage(b"set", b"lru-admin:never", b"v" * 10), b"STORED\r\n")
        items = read_stats(conn, b" items")
        classes = {name.split(":")[1] for name in items}
        assert len(classes) == 1
        (clsid,) = classes
        fields = {name.split(":")[2]: int(value) for name, value in items.items()}
        assert fields["number"] == 3 and fields["number_temp"] == 1
        assert fields["number_hot"] + fields["number_warm"] + fields["number_cold"] == 2
        assert list(fields)[:5] == ["number", "number_hot", "number_warm", "number_cold", "number_temp"]
        conn.call(b"lru temp_ttl -1\r\n", OK)  # TEMP off: a new short-TTL item goes to HOT
        conn.call(storage(b"set", b"lru-admin:short2", b"v" * 10, exptime=20), b"STORED\r\n")
        items = read_stats(conn, b" items")
        assert (items[f"items:{clsid}:number"], items.get(f"items:{clsid}:number_temp")) == ("4", None)
