"""Meta commands with bad input: the error lines memcached sends, in its order of checks, and
what happens to an ``ms`` data block after an error. Every test ends with the connection still
answering (``Wire.call`` syncs with ``version``)."""

from __future__ import annotations

import pytest

from .conftest import Keys
from .wire import Wire

BAD_FORMAT = b"CLIENT_ERROR bad command line format\r\n"
INVALID = b"CLIENT_ERROR invalid flag\r\n"
DUPLICATE = b"CLIENT_ERROR duplicate flag\r\n"
BAD_TOKEN = b"CLIENT_ERROR bad token in command line format\r\n"
INVALID_OR_DUPLICATE = b"CLIENT_ERROR invalid or duplicate flag\r\n"
OPAQUE_TOO_LONG = b"CLIENT_ERROR opaque token too long\r\n"
LONG_KEY = b"k" * 251
SEVENTEEN = b" a b c d e f g h i j k l m n o p q"  # 17 one-letter tokens


@pytest.mark.parametrize("line", [b"mx k", b"m", b"mgg k", b"mg", b"ms", b"md", b"ma"])
def test_unknown_or_keyless_meta_command_is_error(conn: Wire, line: bytes) -> None:
    conn.call(line + b"\r\n", b"ERROR\r\n")


@pytest.mark.parametrize("verb", [b"mg", b"md", b"ma"])
def test_key_too_long(conn: Wire, verb: bytes) -> None:
    conn.call(verb + b" " + LONG_KEY + b" v\r\n", BAD_FORMAT)


def test_mg_flag_errors(conn: Wire, keys: Keys) -> None:
    k = keys()
    conn.call(b"mg " + k + b" zz\r\n", INVALID)
    conn.call(b"mg " + k + b" v v\r\n", DUPLICATE)
    conn.call(b"mg " + k + b" \x80\r\n", DUPLICATE)  # a flag byte >= 127 reads as a repeat
    conn.call(b"mg " + k + b" T\r\n", BAD_TOKEN)
    conn.call(b"mg " + k + b" Tabc\r\n", BAD_TOKEN)
    conn.call(b"mg " + k + b" N1x\r\n", BAD_TOKEN)
    conn.call(b"mg " + k + b" R-\r\n", BAD_TOKEN)
    conn.call(b"mg " + k + b" Cx\r\n", BAD_TOKEN)
    conn.call(b"mg " + k + b" Fx\r\n", BAD_FORMAT)
    conn.call(b"mg " + k + b" MSS\r\n", b"CLIENT_ERROR incorrect length for M token\r\n")
    conn.call(b"mg " + k + b" Jx\r\n", b"CLIENT_ERROR invalid numeric initial value\r\n")
    conn.call(b"mg " + k + b" D-1\r\n", b"CLIENT_ERROR invalid numeric delta value\r\n")


def test_flag_errors_later_message_wins_unknown_flag_stops(conn: Wire, keys: Keys) -> None:
    """A bad number is remembered and parsing goes on (the last message wins); an unknown or
    repeated flag stops parsing at once."""
    k = keys()
    conn.call(b"mg " + k + b" Tx Dy\r\n", b"CLIENT_ERROR invalid numeric delta value\r\n")
    conn.call(b"mg " + k + b" Dy Tx\r\n", BAD_TOKEN)
    conn.call(b"mg " + k + b" Tx Fx\r\n", BAD_TOKEN)
    conn.call(b"mg " + k + b" Tx zz\r\n", INVALID)
    conn.call(b"mg " + k + b" zz Tx\r\n", INVALID)


def test_errors_ignore_quiet(conn: Wire, keys: Keys) -> None:
    k = keys()
    conn.call(b"mg " + k + b" q zz\r\n", INVALID)
    conn.call(b"md " + k + b" q zz\r\n", INVALID_OR_DUPLICATE)
    conn.call(b"ms " + k + b" 2 q Z\r\nab\r\n", INVALID)


def test_base64_key_errors(conn: Wire) -> None:
    for key in (b"YQ", b"YQ=", b"Y", b"Y!==", b"===="):
        conn.call(b"mg " + key + b" b v\r\n", b"CLIENT_ERROR error decoding key\r\n")
    conn.call(b"md YQ b\r\n", INVALID_OR_DUPLICATE)
    conn.call(b"ma YQ b\r\n", INVALID_OR_DUPLICATE)
    conn.call(b"ms YQ 2 b\r\nzz\r\n", b"CLIENT_ERROR error decoding key\r\n")
    conn.call(b"me YQ b\r\n", BAD_FORMAT)


def test_too_many_flags(conn: Wire, keys: Keys) -> None:
    """At most 17 flags (16 for ms, whose data length counts); mg words it differently. An ms
    refused this early leaves its data to be read as a command."""
    k = keys()
    conn.call(b"mg " + k + SEVENTEEN + b"\r\n", INVALID)  # 17: parsed (and a is unknown)
    conn.call(b"mg " + k + SEVENTEEN + b" r\r\n", b"CLIENT_ERROR options flags are too long\r\n")
    conn.call(b"md " + k + SEVENTEEN + b" r\r\n", b"CLIENT_ERROR options flags too long\r\n")
    conn.call(b"ma " + k + SEVENTEEN + b" r\r\n", b"CLIENT_ERROR options flags too long\r\n")
    conn.call(b"ms " + k + b" 2" + SEVENTEEN + b"\r\nab\r\n", b"CLIENT_ERROR options flags too long\r\nERROR\r\n")


def test_opaque_too_long(conn: Wire, keys: Keys) -> None:
    k = keys()
    conn.call(b"ms " + k + b" 1\r\nx\r\n", b"HD\r\n")
    conn.call(b"mg " + k + b" O" + b"x" * 31 + b"\r\n", b"HD O" + b"x" * 31 + b"\r\n")
    for verb in (b"mg", b"md"):
        conn.call(verb + b" " + k + b" O" + b"x" * 32 + b"\r\n", OPAQUE_TOO_LONG)
    conn.call(b"ms " + k + b" 1 O" + b"x" * 32 + b"\r\ny\r\n", OPAQUE_TOO_LONG)
    conn.call(b"mg " + k + b" v\r\n", b"VA 1\r\nx\r\n")  # nothing changed
    # ma checks it after its arithmetic: a non-numeric value is reported first, a number is
    # incremented and then the error is sent
    long_opaque = b" O" + b"x" * 32
    conn.call(b"ma " + k + long_opaque + b"\r\n", b"CLIENT_ERROR cannot increment or decrement non-numeric value\r\n")
    n = keys()
    conn.call(b"ma " + n + long_opaque + b"\r\n", OPAQUE_TOO_LONG)
    conn.call(b"ms " + n + b" 1\r\n5\r\n", b"HD\r\n")
    conn.call(b"ma " + n + long_opaque + b"\r\n", OPAQUE_TOO_LONG)
    conn.call(b"mg " + n + b" v\r\n", b"VA 1\r\n6\r\n")


def test_ms_errors_before_the_data_length_leave_the_data(conn: Wire, keys: Keys) -> None:
    """memcached reads no data block for these: its bytes arrive as a command line."""
    k = keys()
    conn.call(b"ms " + k + b"\r\n", BAD_FORMAT)
    conn.call(b"ms " + k + b" abc\r\nxx\r\n", BAD_FORMAT + b"ERROR\r\n")
    conn.call(b"ms " + k + b" -1\r\n", BAD_FORMAT)
    conn.call(b"ms " + LONG_KEY + b" 2\r\nzz\r\n", BAD_FORMAT + b"ERROR\r\n")


def test_ms_errors_after_the_data_length_swallow_the_data(conn: Wire, keys: Keys) -> None:
    k = keys()
    conn.call(b"ms " + k + b" 2 Z\r\nab\r\n", INVALID)
    conn.call(b"ms " + k + b" 2 q q\r\nab\r\n", DUPLICATE)
    conn.call(b"ms " + k + b" 2 T\r\nab\r\n", BAD_TOKEN)
    conn.call(b"ms " + k + b" 2 F-1\r\nab\r\n", BAD_FORMAT)
    conn.call(b"ms " + k + b" 2 Cabc\r\nab\r\n", BAD_TOKEN)
    conn.call(b"ms " + k + b" 2 MX\r\nab\r\n", b"CLIENT_ERROR invalid mode for ms M token\r\n")
    conn.call(b"ms " + k + b" 2 Ma\r\nab\r\n", b"CLIENT_ERROR invalid mode for ms M token\r\n")
    conn.call(b"ms " + k + b" 2 MSS\r\nab\r\n", b"CLIENT_ERROR incorrect length for M token\r\n")
    # the mode is checked before the opaque's length
    conn.call(b"ms " + k + b" 2 O" + b"x" * 40 + b" MX\r\nab\r\n", b"CLIENT_ERROR invalid mode for ms M token\r\n")
    conn.call(b"mg " + k + b"\r\n", b"EN\r\n")


def test_ms_bad_data_chunk_is_always_reported(conn: Wire, keys: Keys) -> None:
    """A data block not ended by CRLF: an error even with q, nothing stored, and what follows
    the announced length is read as the next command."""
    k = keys()
    conn.call(b"ms " + k + b" 2\r\nabc\r\n", b"CLIENT_ERROR bad data chunk\r\nERROR\r\n")
    conn.call(b"ms " + k + b" 2 q\r\nabc\r\n", b"CLIENT_ERROR bad data chunk\r\nERROR\r\n")
    conn.call(b"mg " + k + b"\r\n", b"EN\r\n")


def test_ma_errors(conn: Wire, keys: Keys) -> None:
    k = keys()
    conn.call(b"ma " + k + b" Mx\r\n", b"CLIENT_ERROR invalid mode for ma M token\r\n")
    conn.call(b"ma " + k + b" MII\r\n", INVALID_OR_DUPLICATE)
    conn.call(b"ma " + k + b" Dx\r\n", INVALID_OR_DUPLICATE)
    conn.call(b"ma " + k + b" D-1\r\n", INVALID_OR_DUPLICATE)
    conn.call(b"ma " + k + b" Jx\r\n", INVALID_OR_DUPLICATE)
    conn.call(b"ma " + k + b" zz\r\n", INVALID_OR_DUPLICATE)
    conn.call(b"ma " + k + b" O" + b"x" * 40 + b" MX\r\n", b"CLIENT_ERROR invalid mode for ma M token\r\n")


def test_md_errors(conn: Wire, keys: Keys) -> None:
    k = keys()
    for flags in (b"zz", b"q q", b"Cx", b"\x80"):
        conn.call(b"md " + k + b" " + flags + b"\r\n", INVALID_OR_DUPLICATE)


def test_me_errors(conn: Wire) -> None:
    conn.call(b"me\r\n", BAD_FORMAT)
    conn.call(b"me " + LONG_KEY + b"\r\n", BAD_FORMAT)


def test_meta_errors_mid_pipeline_keep_order(conn: Wire, keys: Keys) -> None:
    """Errors take their place among the answers of a pipeline, across shards."""
    a, b_ = keys(), keys()
    conn.call(
        b"ms " + a + b" 1\r\n1\r\nmg " + a + b" zz\r\nms " + b_ + b" 1 q\r\n2\r\nmg " + b_ + b" v\r\n"
        b"ma " + a + b" Mx\r\nmg " + a + b" v\r\nmn\r\n",
        b"HD\r\n" + INVALID + b"VA 1\r\n2\r\nCLIENT_ERROR invalid mode for ma M token\r\nVA 1\r\n1\r\nMN\r\n",
    )
