"""Binary FLUSH and FLUSHQ (a module of their own: they clear the whole server)."""

from __future__ import annotations

import struct
import time

from kvshard.protocol import binary as b
from tests.servers import Server

from .binwire import BinWire, req, store_extras
from .conftest import Keys


def test_flush_now_and_quiet(server: Server, keys: Keys) -> None:
    wire = BinWire(server.address)
    k = keys()
    wire.one(req(b.OP_SET, k, store_extras(), b"v"))
    (flushed,) = wire.call(req(b.OP_FLUSH))
    assert (flushed.opcode, flushed.status, flushed.value) == (b.OP_FLUSH, b.ST_OK, b"")
    assert wire.one(req(b.OP_GET, k)).status == b.ST_NOT_FOUND
    wire.one(req(b.OP_SET, k, store_extras(), b"v"))
    assert wire.call(req(b.OP_FLUSHQ)) == []
    assert wire.one(req(b.OP_GET, k)).status == b.ST_NOT_FOUND
    wire.close()


def test_flush_with_delay(server: Server, keys: Keys) -> None:
    wire = BinWire(server.address)
    k = keys()
    wire.one(req(b.OP_SET, k, store_extras(), b"v"))
    assert wire.one(req(b.OP_FLUSH, extras=struct.pack(">I", 2))).status == b.ST_OK
    assert wire.one(req(b.OP_GET, k)).value == b"v"
    time.sleep(3.1)
    assert wire.one(req(b.OP_GET, k)).status == b.ST_NOT_FOUND
    wire.close()
