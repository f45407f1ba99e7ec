"""``-F``: flush_all refused, byte for byte as memcached 1.6.18 refuses it, over both protocols;
and ``cmd_flush`` counting one per command on a server that allows it."""

from __future__ import annotations

from typing import Iterator

import pytest

from kvshard.protocol import binary as b
from tests.servers import Server, server_kinds, start_server

from .binwire import BinWire, Packet, req
from .test_ascii_stats import read_stats
from .wire import Wire, storage, value

REFUSED = b"CLIENT_ERROR flush_all not allowed\r\n"


@pytest.fixture(scope="module", params=server_kinds())
def no_flush_server(request: pytest.FixtureRequest) -> Iterator[Server]:
    with start_server(request.param, "-F") as server:
        yield server


@pytest.fixture
def conn(no_flush_server: Server) -> Iterator[Wire]:
    with Wire.connect(no_flush_server.address) as wire:
        yield wire


@pytest.mark.parametrize("line", [b"flush_all", b"flush_all 10", b"flush_all 0", b"flush_all bogus"])
def test_flush_all_is_refused_and_items_stay(conn: Wire, line: bytes) -> None:
    """Refused before its delay is read (so even a bad one gets this answer); nothing is dropped."""
    key = b"flush-disabled:" + line.replace(b" ", b"_")
    conn.call(storage(b"set", key, b"kept"), b"STORED\r\n")
    conn.call(line + b"\r\n", REFUSED)
    conn.call(b"get " + key + b"\r\n", value(key, b"kept") + b"END\r\n")


@pytest.mark.parametrize("line", [b"flush_all noreply", b"flush_all 0 noreply", b"flush_all bogus noreply"])
def test_noreply_refusal_is_silent(conn: Wire, line: bytes) -> None:
    conn.call(line + b"\r\n", b"")


def test_too_many_arguments_is_still_error(conn: Wire) -> None:
    conn.call(b"flush_all 1 2 3\r\n", b"ERROR\r\n")


def test_refusals_count_as_flush_commands_and_settings_say_so(conn: Wire) -> None:
    before = int(read_stats(conn)["cmd_flush"])
    conn.call(b"flush_all\r\n", REFUSED)
    conn.call(b"flush_all noreply\r\n", b"")
    assert int(read_stats(conn)["cmd_flush"]) == before + 2
    assert read_stats(conn, b" settings")["flush_enabled"] == "no"


@pytest.mark.parametrize("opcode", [b.OP_FLUSH, b.OP_FLUSHQ])
def test_binary_flush_is_an_auth_error_quiet_or_not(no_flush_server: Server, opcode: int) -> None:
    """Binary FLUSH and FLUSHQ both answer status 0x20 ``Auth failure.``, not counted."""
    with Wire.connect(no_flush_server.address) as ascii_conn:
        before = int(read_stats(ascii_conn)["cmd_flush"])
    wire = BinWire(no_flush_server.address)
    try:
        replies = wire.call(req(opcode, opaque=0x0A0B0C0D))
    finally:
        wire.close()
    assert len(replies) == 1
    assert replies[0].same(Packet(opcode, b.ST_AUTH_ERROR, 0x0A0B0C0D, 0, value=b"Auth failure."))
    with Wire.connect(no_flush_server.address) as ascii_conn:
        assert int(read_stats(ascii_conn)["cmd_flush"]) == before
