"""``-M``: a full cache refuses a store with memcached's error instead of evicting, and every
item it did accept stays readable. Run against kvshard and memcached 1.6.18 alike."""

from __future__ import annotations

from typing import Iterator

import pytest

from tests.servers import Server, server_kinds, start_server

from .test_ascii_stats import read_stats
from .wire import Wire, storage, value

FULL = b"SERVER_ERROR out of memory storing object\r\n"


@pytest.fixture(scope="module", params=server_kinds())
def no_evict_server(request: pytest.FixtureRequest) -> Iterator[Server]:
    with start_server(request.param, "-M", "-m", "2") as server:
        yield server


def test_a_full_cache_refuses_stores_and_keeps_what_it_has(no_evict_server: Server) -> None:
    data = b"x" * 10_000
    stored: list[bytes] = []
    refused = 0
    with Wire.connect(no_evict_server.address) as conn:
        for i in range(1000):  # 10 MB into 2 MB
            key = b"no-evict:%04d" % i
            conn.send(storage(b"set", key, data))
            reply = conn.recv_line()
            if reply == b"STORED\r\n":
                stored.append(key)
            else:
                assert reply == FULL
                refused += 1
        assert refused > 0 and len(stored) > 50
        for key in stored:
            conn.call(b"get " + key + b"\r\n", value(key, data) + b"END\r\n")
        stats = read_stats(conn)
        assert stats["evictions"] == "0" and int(stats["curr_items"]) == len(stored)
