"""Property tests of the three codecs (ASCII, meta, binary) with hypothesis: any bytes, split
anywhere, never make a parser raise; a parser gives the same commands whatever the split
(parsing is incremental, and a read boundary must not change meaning); and every command it
gives is well-formed: a known operation with typed fields and keys memcached would accept, and
every reply it asks for is empty (noreply) or one line ending in CRLF. The inputs mix random
bytes with the protocols' own words, so they reach deep into the grammar.
"""

from __future__ import annotations

import struct
from typing import Any, Callable

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kvshard.protocol import ascii as proto
from kvshard.protocol import binary as bproto
from kvshard.protocol import meta
from tests.codec_checks import (
    MAX_ITEM, ascii_commands, binary_requests, check_ascii, check_binary, check_login, login_outcome, reply_ok,
    sasl_requests, split,
)

ASCII_WORDS = [
    b"get", b"gets", b"gat", b"gats", b"set", b"add", b"replace", b"append", b"prepend", b"cas",
    b"delete", b"incr", b"decr", b"touch", b"flush_all", b"version", b"verbosity", b"stats", b"quit",
    b"shutdown", b"mg", b"ms", b"md", b"ma", b"mn", b"me", b"noreply", b"key", b"k\x80", b"0", b"1", b"5",
    b"-1", b"18446744073709551616", b"4294967296", b"abc", b" ", b"  ", b"\r\n", b"\n", b"\r", b"\t",
    b"v", b"t30", b"T-1", b"N30", b"q", b"k", b"b", b"Oab", b"MI", b"S2", b"c", b"f", b"s", b"h", b"l",
]

_tokens = st.one_of(st.sampled_from(ASCII_WORDS), st.binary(max_size=12))
# whole lines ("<command> <token>...<end>") most of the time, so that valid commands are common
_lines = st.builds(
    lambda word, rest, end: word + b"".join(b" " + t for t in rest) + end,
    st.sampled_from(ASCII_WORDS[:26]), st.lists(_tokens, max_size=6), st.sampled_from([b"\r\n", b"\r\n", b"\n", b""]),
)
ascii_inputs = st.lists(st.one_of(_lines, _lines, _tokens), max_size=20).map(b"".join)


def _incremental(parse: Callable[[list[bytes]], Any], data: bytes, cuts: list[int], bytewise: bool = True) -> Any:
    """``parse`` of ``data`` whole, after checking it is the same cut at ``cuts`` and (with
    ``bytewise``) fed a byte at a time."""
    whole = parse([data])
    assert parse(split(data, cuts)) == whole
    if bytewise:
        assert parse([bytes([b]) for b in data]) == whole
    return whole


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ascii_inputs, st.lists(st.integers(min_value=0), max_size=8))
def test_ascii_and_meta_any_bytes_any_split(data: bytes, cuts: list[int]) -> None:
    for cmd in _incremental(ascii_commands, data, cuts):
        check_ascii(cmd)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(st.sampled_from(ASCII_WORDS[20:]), st.binary(max_size=6)), max_size=20))
def test_meta_flag_checks_never_raise_and_answer_a_line(tokens: list[bytes]) -> None:
    """The meta codec's own entry points, on any token list: an error line or flags."""
    tokens = [t for t in tokens if t]
    if not tokens:
        return  # the parser calls these only with a key token (a bare verb is answered before)
    for verb in (b"mg", b"ms", b"md", b"ma"):
        line_error = meta.check_line(verb, [verb, *tokens])
        assert line_error is None or reply_ok(line_error)
        if line_error is None:
            result = meta.check_flags(verb, [verb, *tokens])
            if isinstance(result, bytes):
                assert reply_ok(result), result
            else:
                key, flags = result
                assert isinstance(key, bytes) and isinstance(flags, meta.MetaFlags)


def _packet(opcode: int, key: bytes, extras: bytes, value: bytes, magic: int, body_extra: int) -> bytes:
    body = extras + key + value
    return bproto.HEADER.pack(magic, opcode, len(key), len(extras), 0, 0, max(0, len(body) + body_extra), 7, 0) + body


packets = st.builds(
    _packet,
    st.integers(0, 0x25), st.binary(max_size=12), st.binary(max_size=10), st.binary(max_size=30),
    st.sampled_from([0x80, 0x80, 0x80, 0x81, 0x00]), st.sampled_from([0, 0, 0, 1, -1, 5000]),
)
binary_inputs = st.lists(st.one_of(packets, st.binary(max_size=30)), max_size=12).map(b"".join)


@settings(max_examples=600, deadline=None)
@given(binary_inputs, st.lists(st.integers(min_value=0), max_size=8))
def test_binary_any_bytes_any_split(data: bytes, cuts: list[int]) -> None:
    for request in _incremental(binary_requests, data, cuts, bytewise=False):
        check_binary(request)


_credentials = st.sampled_from([b"bob", b"hunter2", b"alice", b"s3cr3t", b"nope", b" ", b"  ", b"\t", b":", b"\0", b""])
_blocks = st.lists(st.one_of(_credentials, st.binary(max_size=4)), max_size=5).map(b"".join)
# a set line announcing the block's length (or one off), the block, and an end
_logins = st.builds(
    lambda block, off, noreply, end: b"set k 0 0 %d%s\r\n%s%s" % (max(0, len(block) + off), noreply, block, end),
    _blocks, st.sampled_from([0, 0, 0, -1, 1]), st.sampled_from([b"", b" noreply", b"  junk"]),
    st.sampled_from([b"\r\n", b"\r\n", b"\n", b"XX", b""]),
)
login_inputs = st.lists(st.one_of(_logins, _lines, _tokens), max_size=10).map(b"".join)


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(login_inputs, st.lists(st.integers(min_value=0), max_size=8))
def test_ascii_login_any_bytes_any_split(data: bytes, cuts: list[int]) -> None:
    check_login(*_incremental(login_outcome, data, cuts))


def _sasl_packet(opcode: int, mechanism: bytes, data: bytes) -> bytes:
    return _packet(opcode, mechanism, b"", data, 0x80, 0)


sasl_packets = st.builds(
    _sasl_packet, st.sampled_from([bproto.OP_SASL_AUTH, bproto.OP_SASL_STEP, bproto.OP_SASL_LIST_MECHS, bproto.OP_VERSION]),
    st.sampled_from([b"PLAIN", b"plain", b"X", b""]),
    st.sampled_from([b"\0bob\0hunter2", b"bob\0bob\0hunter2", b"\0bob\0nope", b"", b"\0\0", b"x"]),
)


@settings(max_examples=600, deadline=None)
@given(st.lists(st.one_of(sasl_packets, sasl_packets, packets, st.binary(max_size=30)), max_size=12).map(b"".join),
       st.lists(st.integers(min_value=0), max_size=8))
def test_sasl_binary_any_bytes_any_split(data: bytes, cuts: list[int]) -> None:
    for request in _incremental(sasl_requests, data, cuts, bytewise=False):
        check_binary(request)


def test_split_helper() -> None:
    assert b"".join(split(b"abcd", [1, 3, 3, 9])) == b"abcd" and split(b"abcd", [1, 3])[:2] == [b"a", b"bc"]
    assert struct.calcsize(">BBHBBHIIQ") == 24
