"""The administration commands kvshard answers as memcached with the feature off
(kvshard.protocol.ascii_admin), where the conformance suite cannot compare: ``lru_crawler
enable`` would start memcached's crawler for the rest of a module."""

from __future__ import annotations

from kvshard.protocol.ascii import REPLY, AsciiParser
from kvshard.protocol.numbers import strtoul32, strtoull


def test_lru_crawler_enable_fails_as_memcached_when_it_cannot_start_one() -> None:
    assert AsciiParser().feed(b"lru_crawler enable\r\n") == [(REPLY, b"ERROR failed to start lru crawler thread\r\n")]


def test_unsigned_numbers_take_a_sign_as_c_does() -> None:
    assert [strtoull(t) for t in (b"-0", b"+7", b"-1", b"-9223372036854775809", b"18446744073709551616", b"-")] == [
        0, 7, None, (1 << 63) - 1, None, None]
    assert strtoul32(b"-9223372036854775809") == 0xFFFFFFFF
