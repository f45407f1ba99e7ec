"""``-B binary``: every TCP connection speaks the binary protocol, byte for byte as memcached
1.6.18 -B binary.

ASCII is not recognised: its bytes are read as a packet header. Under 24 bytes nothing
happens (the header is not whole); at 24 the magic is wrong and the connection closes
without a byte.
"""

from __future__ import annotations

import pytest

from kvshard.protocol import binary as b
from tests.servers import answers_binary_version

from .binwire import BinWire, req, store_extras
from .conftest import server_with

server = server_with("-B", "binary", ready=answers_binary_version)


def test_settings_say_binary(bw: BinWire) -> None:
    packets = bw.call(req(b.OP_STAT, b"settings"))
    found = {p.key: p.value for p in packets if p.key}
    assert found[b"binding_protocol"] == b"binary"


def test_binary_is_served(bw: BinWire) -> None:
    (stored,) = bw.call(req(b.OP_SET, b"bind-binary", store_extras(), b"v"))
    assert stored.status == b.ST_OK
    (got,) = bw.call(req(b.OP_GET, b"bind-binary"))
    assert (got.status, got.value) == (b.ST_OK, b"v")


def test_short_ascii_line_waits(bw: BinWire) -> None:
    bw.send(b"version\r\n")
    with pytest.raises((AssertionError, TimeoutError)):
        bw.read_packet(timeout=0.3)
    assert bw.closes_after(b"x" * 15) == []  # 24 bytes: not a request header


@pytest.mark.parametrize("line", [b"get bind-binary-ascii-key\r\n", b"x" * 24, b"\x81" + b"\0" * 23])
def test_header_with_a_bad_magic_closes_silently(bw: BinWire, line: bytes) -> None:
    assert bw.closes_after(line) == []


def test_ascii_after_a_binary_request_closes(bw: BinWire) -> None:
    answers = bw.closes_after(req(b.OP_GET, b"bind-binary-missing") + b"version\r\n" + b"x" * 20)
    assert [(p.opcode, p.status) for p in answers] == [(b.OP_GET, b.ST_NOT_FOUND)]
