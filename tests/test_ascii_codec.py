"""The sans-IO ASCII codec alone: framing, splits, limits, numbers."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kvshard.protocol import ascii as p


def parse_all(data: bytes, max_item_size: int = 1 << 20) -> list[tuple]:
    return p.AsciiParser(max_item_size).feed(data)


STREAM = (
    b"set a 1 2 5\r\nhello\r\n"
    b"get a b\r\n"
    b"gets a\r\n"
    b"cas a 0 0 3 99 noreply\r\nx\ry\r\n"
    b"append a 0 0 0\r\n\r\n"
    b"delete a\n"
    b"incr n 5\r\n"
    b"touch a 10\r\n"
    b"gat 5 a b\r\n"
    b"flush_all 3\r\n"
    b"version\r\n"
)


def test_pipelined_stream() -> None:
    cmds = parse_all(STREAM)
    assert cmds == [
        (p.STORE, b"set", b"a", 1, 2, b"hello", 0, False),
        (p.GET, [b"a", b"b"], False),
        (p.GET, [b"a"], True),
        (p.STORE, b"cas", b"a", 0, 0, b"x\ry", 99, True),
        (p.STORE, b"append", b"a", 0, 0, b"", 0, False),
        (p.DELETE, b"a", False),
        (p.ARITH, True, b"n", 5, False),
        (p.TOUCH, b"a", 10, False),
        (p.GAT, [b"a", b"b"], False, 5),
        (p.FLUSH, 3, False),
        (p.VERSION,),
    ]


def test_every_split_point_gives_the_same_commands() -> None:
    expected = parse_all(STREAM)
    for cut in range(1, len(STREAM)):
        parser = p.AsciiParser()
        assert parser.feed(STREAM[:cut]) + parser.feed(STREAM[cut:]) == expected, cut


def test_byte_by_byte() -> None:
    parser = p.AsciiParser()
    got = []
    for i in range(len(STREAM)):
        got += parser.feed(STREAM[i : i + 1])
    assert got == parse_all(STREAM)


def test_data_block_must_end_in_crlf() -> None:
    assert parse_all(b"set k 0 0 1\r\nxyz\r\n") == [(p.REPLY, p.R_BAD_CHUNK), (p.REPLY, p.R_ERROR)]
    assert parse_all(b"set k 0 0 1 noreply\r\nxyz\r\n") == [(p.REPLY, p.R_ERROR)]


def test_short_data_block_waits() -> None:
    parser = p.AsciiParser()
    assert parser.feed(b"set k 0 0 4\r\nx\r\n") == []
    assert parser.buffered == 3  # of the 4 + 2 the block needs
    assert parser.feed(b"y\r\n") == [(p.STORE, b"set", b"k", 0, 0, b"x\r\ny", 0, False)]


@pytest.mark.parametrize(
    "line,reply",
    [
        (b"set k abc 0 1", p.R_BAD_FORMAT),
        (b"set k 0 abc 1", p.R_BAD_FORMAT),
        (b"set k 0 0 -1", p.R_BAD_FORMAT),
        (b"set k 0 0 abc", p.R_BAD_FORMAT),
        (b"set k -1 0 1", p.R_BAD_FORMAT),
        (b"set k 0 0 1 a b", p.R_ERROR),
        (b"set k 0 0", p.R_ERROR),
        (b"cas k 0 0 1", p.R_ERROR),
        (b"cas k 0 0 1 -5", p.R_BAD_FORMAT),
        (b"set " + b"k" * 251 + b" 0 0 1", p.R_BAD_FORMAT),
    ],
)
def test_malformed_storage_lines(line: bytes, reply: bytes) -> None:
    # no swallow: the data line is parsed as a command, as memcached does
    assert parse_all(line + b"\r\nx\r\n") == [(p.REPLY, reply), (p.REPLY, p.R_ERROR)]


def test_key_limits() -> None:
    assert parse_all(b"get " + b"k" * 250 + b"\r\n") == [(p.GET, [b"k" * 250], False)]
    assert parse_all(b"get a " + b"k" * 251 + b"\r\n") == [(p.REPLY, p.R_BAD_FORMAT)]
    # control bytes are key bytes (memcached accepts them; memaslap sends them)
    assert parse_all(b"get a\x01\tb\r\n") == [(p.GET, [b"a\x01\tb"], False)]


def test_numbers_wrap_like_memcached() -> None:
    assert parse_all(b"set k 4294967297 4294967296 1\r\nx\r\n") == [(p.STORE, b"set", b"k", 1, 0, b"x", 0, False)]
    assert parse_all(b"set k +1 -5 +1\r\nx\r\n") == [(p.STORE, b"set", b"k", 1, -5, b"x", 0, False)]
    assert parse_all(b"incr k 18446744073709551615\r\n") == [(p.ARITH, True, b"k", 2**64 - 1, False)]
    assert parse_all(b"incr k 18446744073709551616\r\n") == [(p.REPLY, p.R_BAD_DELTA)]
    assert parse_all(b"decr k -1\r\n") == [(p.REPLY, p.R_BAD_DELTA)]
    assert parse_all(b"incr k x noreply\r\n") == [(p.REPLY, b"")]


def test_item_size_limit_matches_memcached() -> None:
    limit = 1 << 20
    ok = 1048516  # the largest value memcached 1.6 stores under key "k" with flags 0
    assert parse_all(b"set k 0 0 %d\r\n%s\r\n" % (ok, b"x" * ok), limit)[0][0] == p.STORE
    too_big = ok + 1
    assert parse_all(b"set k 0 0 %d\r\n%s\r\nversion\r\n" % (too_big, b"x" * too_big), limit) == [
        (p.TOO_LARGE, b"set", b"k", False),
        (p.VERSION,),
    ]
    assert p.item_too_large(2, 1, 1048512, limit) and not p.item_too_large(2, 1, 1048511, limit)


def test_long_lines() -> None:
    assert parse_all(b"x" * (p.MAX_LINE + 1)) == [(p.CLOSE,)]
    assert parse_all(b"x" * p.MAX_LINE) == []  # still waiting for the newline
    parser = p.AsciiParser()
    long_get = b"get " + b"key " * 2000
    assert parser.feed(long_get) == []  # a long multi-get may grow
    assert parser.feed(b"\r\n") == [(p.GET, [b"key"] * 2000, False)]
    assert parse_all(b"get " + b"k" * p.MAX_GET_LINE) == [(p.CLOSE,)]


def test_delete_forms() -> None:
    assert parse_all(b"delete k 0\r\n") == [(p.DELETE, b"k", False)]
    assert parse_all(b"delete k noreply\r\n") == [(p.DELETE, b"k", True)]
    assert parse_all(b"delete k 0 noreply\r\n") == [(p.DELETE, b"k", True)]
    assert parse_all(b"delete k 5\r\n") == [(p.REPLY, p.R_DELETE_USAGE)]
    assert parse_all(b"delete\r\n") == [(p.REPLY, p.R_ERROR)]


def test_misc_commands() -> None:
    assert parse_all(b"flush_all noreply\r\nflush_all 0 noreply\r\nflush_all abc\r\n") == [
        (p.FLUSH, 0, True), (p.FLUSH, 0, True), (p.REPLY, p.R_BAD_EXPTIME),
    ]
    assert parse_all(b"verbosity\r\nverbosity 1\r\nverbosity x\r\n") == [
        (p.REPLY, p.R_ERROR), (p.VERBOSITY, 1, False), (p.REPLY, p.R_BAD_FORMAT),
    ]
    assert parse_all(b"\r\nGET k\r\nget\r\ngat 5\r\n") == [
        (p.REPLY, p.R_ERROR), (p.REPLY, p.R_ERROR), (p.REPLY, p.R_ERROR), (p.GAT, [], False, 5),
    ]
    assert parse_all(b"stats items\r\n") == [(p.STATS, [b"items"])]


def test_quit_stops_parsing() -> None:
    parser = p.AsciiParser()
    assert parser.feed(b"version\r\nquit\r\nget k\r\n") == [(p.VERSION,), (p.QUIT,)]
    assert parser.feed(b"get k\r\n") == []


def test_value_line() -> None:
    assert p.value_line(b"k", 5, b"ab", None) == b"VALUE k 5 2\r\nab\r\n"
    assert p.value_line(b"k", 0, b"", 7) == b"VALUE k 0 0 7\r\n\r\n"


@pytest.mark.parametrize(
    "data",
    [
        b"get a\r\n", b"get memaslap_key_0001\r\n", b"get \x01\t\x7f\r\n", b"get " + b"k" * 250 + b"\r\n",
        b"get " + b"k" * 251 + b"\r\n", b"get a b\r\n", b"get  a\r\n", b"get a \r\n", b"get a\n",
        b"get \r\n", b"get\r\n", b"gets a\r\n", b"get a\rb\r\n", b"get a\r\nget b\r\n",
        b"get a\r\nset", b"GET a\r\n", b"get a\r\n\r\n", b"get a\nb\r\n",
    ],
)
def test_single_get_fast_path_agrees_with_the_parser(data: bytes) -> None:
    """The connection's shortcut answers only what the parser reads as one plain get of that
    key; everything else goes to the parser."""
    key = p.single_get_key(data)
    if key is not None:
        assert parse_all(data) == [(p.GET, [key], False)]


def test_single_get_fast_path_takes_the_common_case() -> None:
    assert p.single_get_key(b"get memaslap_key_0001\r\n") == b"memaslap_key_0001"
    assert p.single_get_key(b"get a b\r\n") is None


def test_parser_idle() -> None:
    parser = p.AsciiParser()
    assert parser.idle
    parser.feed(b"get a")
    assert not parser.idle
    parser.feed(b"\r\nset a 0 0 3\r\n")
    assert not parser.idle  # waiting for the data block
    parser.feed(b"abc\r\n")
    assert parser.idle


@given(st.binary(min_size=1, max_size=260).filter(lambda k: not set(k) & {32, 10, 13, 0}))
def test_single_get_fast_path_takes_every_plain_key(key: bytes) -> None:
    """Any key the parser accepts (1..250 bytes, no space, CR, LF or NUL) takes the shortcut,
    compiled (a C loop) and interpreted alike; longer ones do not."""
    data = b"get " + key + b"\r\n"
    assert p.single_get_key(data) == (key if len(key) <= 250 else None)
    assert p.single_get_key(data[:-1]) is None and p.single_get_key(b"get " + key + b" x\r\n") is None


@given(st.binary(max_size=40))
def test_single_get_fast_path_agrees_with_the_parser_on_any_bytes(tail: bytes) -> None:
    for data in (b"get " + tail, b"get " + tail + b"\r\n", tail):
        key = p.single_get_key(data)
        if key is not None:
            assert parse_all(data) == [(p.GET, [key], False)]


@given(st.lists(st.sampled_from([b"a", b"key", b" ", b"  ", b"\t", b"\x00", b"\r"]), max_size=12).map(b"".join))
def test_tokenize_splits_on_spaces_up_to_the_first_nul(text: bytes) -> None:
    """memcached's tokenizer (the compiled one searches with memchr): runs of spaces collapse,
    a tab is part of a token, a NUL ends the text."""
    expected = [t for t in text.split(b"\x00")[0].split(b" ") if t]
    assert p.tokenize(text) == expected


def _as_set(commands: list[tuple]) -> list[tuple]:
    """An ``add`` parse's commands as a ``set`` of the same line would give them."""
    return [(cmd[0], b"set", *cmd[2:]) if cmd[0] in (p.STORE, p.TOO_LARGE) and cmd[1] == b"add" else cmd
            for cmd in commands]


_SET_LINE_PIECES = [
    b"k", b"key:00000001", b"k" * 250, b"k" * 251, b"\x01\t\r", b"\x00", b" ", b"  ", b"0", b"7", b"123456789",
    b"1234567890", b"4294967297", b"-1", b"+1", b"x", b"noreply", b"noreplyx", b"1 noreply",
]


@given(st.lists(st.sampled_from(_SET_LINE_PIECES), min_size=1, max_size=8).map(b" ".join),
       st.sampled_from([b"\r\n", b"\n"]), st.binary(max_size=12))
def test_plain_set_lines_parse_as_the_tokenizer_does(rest: bytes, newline: bytes, tail: bytes) -> None:
    """A ``set`` line in its plainest form is parsed in one C pass (compiled); ``add`` lines
    always go through the tokenizer, by the same rules: the two agree on any line."""
    for max_item_size in (1 << 20, 64):
        expected = _as_set(parse_all(b"add " + rest + newline + tail, max_item_size))
        assert parse_all(b"set " + rest + newline + tail, max_item_size) == expected



@given(st.lists(st.sampled_from(_SET_LINE_PIECES), min_size=1, max_size=8).map(b" ".join),
       st.sampled_from([b"\r\n", b"\n"]), st.sampled_from([b"", b"x", b"xy", b"x\r\n", b"\r\n", b"x\r\nget k\r\n"]))
def test_a_whole_read_plain_set_is_what_the_parser_reads(rest: bytes, newline: bytes, block: bytes) -> None:
    """The interpreted session's fast path for a read that is one plain set with its data
    (compiled, whole_plain_set does the same in C) takes only what the parser reads as one
    STORE of that set."""
    data = b"set " + rest + newline + block
    for max_item_size in (1 << 20, 64):
        fields = p.plain_set_fields(data, max_item_size)
        if fields is not None:
            key, flags, exptime, value, noreply = fields
            assert parse_all(data, max_item_size) == [(p.STORE, b"set", key, flags, exptime, value, 0, noreply)]


def test_a_whole_read_plain_set_takes_the_common_case() -> None:
    assert p.plain_set_fields(b"set key:1 5 60 3\r\nabc\r\n", 1 << 20) == (b"key:1", 5, 60, b"abc", False)
    assert p.plain_set_fields(b"set k 0 0 0 noreply\r\n\r\n", 1 << 20) == (b"k", 0, 0, b"", True)
    assert p.plain_set_fields(b"set k 0 0 1\r\nab\r\n", 1 << 20) is None
    assert p.plain_set_fields(b"set k 0 0 1\r\na\r\nget k\r\n", 1 << 20) is None
