"""``verbosity``: its answers, byte for byte as memcached 1.6.18's, and the level it stores
(``stats settings``), which is at most 2 whatever is asked. (What a level changes in the logs
is tested in tests/test_verbosity.py.)"""

from __future__ import annotations

from typing import Iterator

import pytest

from .test_ascii_stats import read_stats
from .wire import Wire

OK = b"OK\r\n"
BAD = b"CLIENT_ERROR bad command line format\r\n"


@pytest.fixture
def conn(conn: Wire) -> Iterator[Wire]:
    yield conn
    conn.call(b"verbosity 0\r\n", OK)  # the next test starts from the default


@pytest.mark.parametrize("line, answer, level", [
    (b"verbosity", b"ERROR\r\n", "0"),
    (b"verbosity 1 2 3", b"ERROR\r\n", "0"),
    (b"verbosity x", BAD, "0"),
    (b"verbosity 1x", BAD, "0"),
    (b"verbosity -1", BAD, "0"),
    (b"verbosity noreply", b"", "0"),  # not a number: the error is silenced
    (b"verbosity 1 noreply", b"", "1"),
    (b"verbosity 1 2", OK, "1"),  # a second token that is not noreply is ignored
    (b"verbosity  1", OK, "1"),
    (b"verbosity 01", OK, "1"),
    (b"verbosity +1", OK, "1"),
    (b"verbosity 2", OK, "2"),
    (b"verbosity 5", OK, "2"),  # memcached stores at most 2
    (b"verbosity 3 noreply", b"", "2"),
    (b"verbosity 4294967295", OK, "2"),
    (b"verbosity 4294967296", OK, "0"),  # read as 32 bits: it wraps to 0
])
def test_verbosity_answers_and_stores_as_memcached(conn: Wire, line: bytes, answer: bytes, level: str) -> None:
    conn.call(line + b"\r\n", answer)
    assert read_stats(conn, b" settings")["verbosity"] == level
