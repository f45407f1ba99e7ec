"""Pipelining and framing: many requests per send, replies in order; requests split across
many reads at any byte, data blocks included; partial requests are per connection."""

from __future__ import annotations

import time
from typing import Callable

from .conftest import Keys
from .wire import Wire, storage, value


def test_many_commands_in_one_send(conn: Wire, keys: Keys) -> None:
    """A mixed batch of 50 x 6 commands in one send is answered in order, byte for byte."""
    request, reply = b"", b""
    names = [keys() for _ in range(50)]
    for i, k in enumerate(names):
        request += storage(b"set", k, b"%d" % i, flags=i)
        reply += b"STORED\r\n"
        request += b"get " + k + b"\r\n"
        reply += value(k, b"%d" % i, i) + b"END\r\n"
        request += b"incr " + k + b" 5\r\n"
        reply += b"%d\r\n" % (i + 5)
        request += storage(b"add", k, b"x")
        reply += b"NOT_STORED\r\n"
        request += b"delete " + k + b"\r\n"
        reply += b"DELETED\r\n"
        request += b"get " + k + b" " + names[0] + b"\r\n"
        reply += b"END\r\n"
    conn.call(request, reply)


def test_errors_keep_their_place_in_a_pipeline(conn: Wire, keys: Keys) -> None:
    """Error replies come back exactly where their commands were."""
    k = keys()
    request = (
        storage(b"set", k, b"abc")
        + b"bogus\r\n"
        + b"get "
        + k
        + b"\r\n"
        + b"incr "
        + k
        + b" 1\r\n"
        + b"set "
        + k
        + b" 0 0 x\r\n"
        + b"delete "
        + k
        + b" 9\r\n"
        + b"get "
        + k
        + b"\r\n"
    )
    conn.call(
        request,
        b"STORED\r\nERROR\r\n"
        + value(k, b"abc")
        + b"END\r\n"
        + b"CLIENT_ERROR cannot increment or decrement non-numeric value\r\n"
        + b"CLIENT_ERROR bad command line format\r\n"
        + b"CLIENT_ERROR bad command line format.  Usage: delete <key> [noreply]\r\n"
        + value(k, b"abc")
        + b"END\r\n",
    )


def test_large_pipeline(conn: Wire, keys: Keys) -> None:
    """2000 set/get pairs with 200-byte values (~0.9 MB each way) sent while replies are read."""
    request, reply = bytearray(), bytearray()
    for i in range(2000):
        k = keys()
        data = (b"%05d" % i) * 40
        request += storage(b"set", k, data) + b"get " + k + b"\r\n"
        reply += b"STORED\r\n" + value(k, data) + b"END\r\n"
    conn.call(bytes(request), bytes(reply), timeout=30)


def test_request_sent_byte_by_byte(conn: Wire, keys: Keys) -> None:
    """Every byte of a storage command, its data block (with CRLF inside) and a get arrives
    in its own read."""
    k = keys()
    conn.send_slowly(storage(b"set", k, b"a\r\nb", flags=3) + b"get " + k + b"\r\n")
    conn.expect(b"STORED\r\n" + value(k, b"a\r\nb", 3) + b"END\r\n")
    conn.sync()


def test_request_split_at_every_position(conn: Wire, keys: Keys) -> None:
    """The same request split in two at each byte position gives the same reply."""
    k = keys()
    request = storage(b"set", k, b"x\r\ny", flags=1) + b"get " + k + b"\r\n"
    expected = b"STORED\r\n" + value(k, b"x\r\ny", 1) + b"END\r\n"
    for cut in range(1, len(request)):
        conn.send(request[:cut])
        time.sleep(0.003)
        conn.send(request[cut:])
        conn.expect(expected)
    conn.sync()


def test_data_block_in_pieces(conn: Wire, keys: Keys) -> None:
    """A data block arriving in pieces, its final CR and LF separately, is stored whole; the
    server answers only once the block is complete."""
    k = keys()
    data = bytes(range(256)) * 40
    conn.send(b"set " + k + b" 0 0 %d\r\n" % len(data))
    for start in range(0, len(data), 1000):
        conn.send(data[start : start + 1000])
        time.sleep(0.005)
    conn.send(b"\r")
    assert conn.recv_available(0.05) == b""
    conn.send(b"\n")
    conn.expect(b"STORED\r\n")
    conn.call(b"get " + k + b"\r\n", value(k, data) + b"END\r\n")


def test_long_get_in_small_pieces(conn: Wire, keys: Keys) -> None:
    """A ~7 kB multi-get line arriving in 100-byte pieces."""
    names = [keys() for _ in range(100)]
    conn.call(storage(b"set", names[50], b"mid"), b"STORED\r\n")
    conn.send_slowly(b"get " + b" ".join(names) + b"\r\n", chunk=100, pause=0.002)
    conn.expect(value(names[50], b"mid") + b"END\r\n")
    conn.sync()


def test_partial_request_is_per_connection(conn: Wire, keys: Keys, connect: Callable[[], Wire]) -> None:
    """Half a request on one connection does not disturb another connection; it completes
    when the rest arrives."""
    k, mine = keys(), keys()
    other = connect()
    conn.send(b"set " + k + b" 0 0 5\r\nhel")
    other.call(
        storage(b"set", mine, b"m") + b"get " + k + b" " + mine + b"\r\n",
        b"STORED\r\n" + value(mine, b"m") + b"END\r\n",
    )
    conn.call(b"lo\r\n", b"STORED\r\n")
    other.call(b"get " + k + b"\r\n", value(k, b"hello") + b"END\r\n")


def test_many_connections_interleaved(keys: Keys, connect: Callable[[], Wire]) -> None:
    """Ten connections, each with its own pipelined requests sent in turns, each get their
    own replies."""
    wires = [connect() for _ in range(10)]
    names = [keys() for _ in wires]
    for w, k in zip(wires, names):
        w.send(b"set " + k + b" 0 0 2\r\n")
    for i, (w, k) in enumerate(zip(wires, names)):
        w.send(b"%02d\r\nget " % i + k + b"\r\n")
    for i, (w, k) in enumerate(zip(wires, names)):
        w.expect(b"STORED\r\n" + value(k, b"%02d" % i) + b"END\r\n")
        w.sync()
