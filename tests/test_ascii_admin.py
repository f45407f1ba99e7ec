"""memcached's reading of signed unsigned numbers (kvshard.protocol.numbers), which the
administration commands and every other number of the protocol use."""

from __future__ import annotations

from kvshard.protocol.numbers import strtoul32, strtoull


def test_unsigned_numbers_take_a_sign_as_c_does() -> None:
    assert [strtoull(t) for t in (b"-0", b"+7", b"-1", b"-9223372036854775809", b"18446744073709551616", b"-")] == [
        0, 7, None, (1 << 63) - 1, None, None]
    assert strtoul32(b"-9223372036854775809") == 0xFFFFFFFF
