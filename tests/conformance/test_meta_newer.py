"""Meta flags memcached added after 1.6.18: ``E`` (the CAS an item gets when the command
changes it) and ``md x`` (keep the item, drop its value). kvshard follows memcached's current
protocol.txt; a memcached that refuses them (Debian 12 ships 1.6.18) skips these tests."""

from __future__ import annotations

import re

import pytest

from tests.servers import Server

from .conftest import Keys
from .wire import Wire, meta_cas


@pytest.fixture
def newer(conn: Wire, server: Server) -> Wire:
    line = conn.request(b"md kvshard-probe x E1\r\n", b"\r\n")
    if line.startswith(b"CLIENT_ERROR"):
        assert server.kind == "memcached", f"kvshard refused E/x: {line!r}"
        version = conn.request(b"version\r\n", b"\r\n").strip().decode()
        pytest.skip(f"{version} predates the E and x meta flags")
    return conn


def test_ms_E_sets_the_cas(newer: Wire, keys: Keys) -> None:
    k = keys()
    newer.call(b"ms " + k + b" 2 E12345 c\r\nab\r\n", b"HD c12345\r\n")
    newer.call(b"mg " + k + b" c v\r\n", b"VA 2 c12345\r\nab\r\n")
    newer.call(b"ms " + k + b" 2 C12345 E777 c\r\ncd\r\n", b"HD c777\r\n")
    newer.call(b"ms " + k + b" 2 C12345 E888\r\nef\r\n", b"EX\r\n")
    newer.call(b"gets " + k + b"\r\n", b"VALUE " + k + b" 0 2 777\r\ncd\r\nEND\r\n")


def test_mg_E_sets_the_cas_of_a_vivified_item(newer: Wire, keys: Keys) -> None:
    k = keys()
    newer.call(b"mg " + k + b" N30 E4242 c\r\n", b"HD c4242 W\r\n")
    newer.call(b"mg " + k + b" N30 E9999 c\r\n", b"HD c4242 Z\r\n")  # only a creation uses E


def test_md_I_with_E(newer: Wire, keys: Keys) -> None:
    k = keys()
    newer.call(b"ms " + k + b" 1\r\nv\r\n", b"HD\r\n")
    newer.call(b"md " + k + b" I E5150\r\n", b"HD\r\n")
    newer.call(b"mg " + k + b" c v\r\n", b"VA 1 c5150 X W\r\nv\r\n")


def test_ma_E_sets_the_cas(newer: Wire, keys: Keys) -> None:
    k = keys()
    newer.call(b"ma " + k + b" N0 J5 E100 c v\r\n", b"VA 1 c100\r\n5\r\n")
    newer.call(b"ma " + k + b" E200 c v\r\n", b"VA 1 c200\r\n6\r\n")
    newer.call(b"ma " + k + b" C1 E300 c v\r\n", b"EX\r\n")


def test_md_x_keeps_an_empty_item(newer: Wire, keys: Keys) -> None:
    """x replaces the value by an empty one, flags from F (else 0), no TTL unless T, the
    same CAS unless E; a delete hit."""
    k = keys()
    newer.call(b"ms " + k + b" 5 F3 T100\r\nhello\r\n", b"HD\r\n")
    cas = meta_cas(newer, k)
    newer.call(b"md " + k + b" x\r\n", b"HD\r\n")
    newer.call(b"mg %s s f t c v\r\n" % k, b"VA 0 s0 f0 t-1 c%d\r\n\r\n" % cas)
    newer.call(b"md " + k + b" x F9 E77 q\r\nmn\r\n", b"MN\r\n")
    newer.call(b"mg %s f c\r\n" % k, b"HD f9 c77\r\n")
    newer.call(b"md " + keys() + b" x\r\n", b"NF\r\n")


def test_md_x_with_invalidate(newer: Wire, keys: Keys) -> None:
    k = keys()
    newer.call(b"ms " + k + b" 5\r\nhello\r\n", b"HD\r\n")
    newer.call(b"md " + k + b" x I\r\n", b"HD\r\n")
    newer.call(b"mg " + k + b" s v\r\n", b"VA 0 s0 X W\r\n\r\n")
