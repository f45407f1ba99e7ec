"""The connection alone, with a fake transport and a fake messenger: reply order across shards
and what a client sees when a shard is down."""

from __future__ import annotations

import asyncio

import pytest
from typing import Any, Callable

from framework import ShardUnavailable
from framework.channel import Messenger
from kvshard.cache import Cache
from kvshard.connection import ClientConnection
from kvshard.context import ShardContext
from kvshard.service import KVService
from kvshard.routing import owner_of


class FakeTransport:
    def __init__(self) -> None:
        self.data = b""
        self.closed = False

    def write(self, data: bytes) -> None:
        self.data += data

    def get_extra_info(self, name: str) -> Any:
        return None

    def close(self) -> None:
        self.closed = True

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


class FakeMessenger(Messenger):
    """Shard 1 of two: answers are held until ``release`` (or fail if ``down``). A Messenger
    (the shard context's field is typed) whose calling methods are all replaced."""

    def __init__(self, remote: KVService) -> None:
        self.remote = remote
        self.down = False
        self.held: list[tuple[Callable[[Any, BaseException | None], None], Any]] = []

    def call(self, shard: int, name: str, args: tuple[Any, ...], on_reply: Any) -> None:
        if self.down:
            raise ShardUnavailable(shard)
        self.held.append((on_reply, getattr(self.remote, name.removeprefix("kv."))(*args)))

    def send(self, shard: int, name: str, *args: Any) -> bool:
        if self.down:
            raise ShardUnavailable(shard)
        getattr(self.remote, name.removeprefix("kv."))(*args)
        return True

    def call_fixed(self, shard: int, handler_id: int, key: bytes, value: Any, a: int, b: int, c: int, on_reply: Any) -> None:
        if self.down:
            raise ShardUnavailable(shard)
        self.held.append((on_reply, self.remote.fixed_handlers()[handler_id](key, value, a, b, c)))

    def send_fixed(self, shard: int, handler_id: int, key: bytes, value: Any, a: int, b: int, c: int) -> bool:
        if self.down:
            raise ShardUnavailable(shard)
        self.remote.fixed_handlers()[handler_id](key, value, a, b, c)
        return True

    def release(self, newest_first: bool = False) -> None:
        held, self.held = self.held, []
        for on_reply, result in reversed(held) if newest_first else held:
            on_reply(result, None)


def make() -> tuple[ClientConnection, FakeTransport, FakeMessenger]:
    loop = asyncio.new_event_loop()
    local = KVService(Cache(1 << 20, 0, 2), loop)
    remote = KVService(Cache(1 << 20, 1, 2), loop)
    messenger = FakeMessenger(remote)
    ctx = ShardContext(
        shard_id=0, shards=2, service=local, messenger=messenger,
        local=local.handlers(),
        handler=lambda name: getattr(local, name.removeprefix("kv.")), max_item_size=1 << 20,
        max_connections=10, version="1.6.18-test", info=None,  # type: ignore[arg-type]
    )
    conn = ClientConnection(ctx)
    transport = FakeTransport()
    conn.connection_made(transport)  # type: ignore[arg-type]
    return conn, transport, messenger


def keys_on(shard: int, n: int) -> list[bytes]:
    return [k for k in (b"key%d" % i for i in range(100)) if owner_of(k, 2) == shard][:n]


def test_replies_leave_in_request_order_whatever_order_shards_answer() -> None:
    conn, transport, messenger = make()
    (local_key,), (remote_key,) = keys_on(0, 1), keys_on(1, 1)
    conn.data_received(
        b"set %b 0 0 1\r\nL\r\nset %b 0 0 1\r\nR\r\n" % (local_key, remote_key)
        + b"get %b\r\nget %b\r\nget %b %b\r\n" % (remote_key, local_key, local_key, remote_key)
    )
    assert transport.data == b"STORED\r\n"  # the rest waits behind the remote set
    messenger.release(newest_first=True)
    assert transport.data == (
        b"STORED\r\nSTORED\r\n"
        + b"VALUE %b 0 1\r\nR\r\nEND\r\n" % remote_key
        + b"VALUE %b 0 1\r\nL\r\nEND\r\n" % local_key
        + b"VALUE %b 0 1\r\nL\r\nVALUE %b 0 1\r\nR\r\nEND\r\n" % (local_key, remote_key)
    )


def test_a_down_shard_answers_server_error_and_the_connection_goes_on() -> None:
    conn, transport, messenger = make()
    (local_key,), (remote_key,) = keys_on(0, 1), keys_on(1, 1)
    messenger.down = True
    conn.data_received(b"get %b\r\nget %b %b\r\nset %b 0 0 1 noreply\r\nx\r\nversion\r\n" % (
        remote_key, local_key, remote_key, remote_key))
    assert transport.data == (
        b"SERVER_ERROR shard unavailable\r\n" * 2 + b"VERSION 1.6.18-test\r\n"
    )


def test_quit_waits_for_earlier_replies() -> None:
    conn, transport, messenger = make()
    (remote_key,) = keys_on(1, 1)
    conn.data_received(b"get %b\r\nquit\r\nget %b\r\n" % (remote_key, remote_key))
    assert transport.data == b"" and not transport.closed
    messenger.release()
    assert transport.data == b"END\r\n" and transport.closed


def test_command_name_labels_are_bounded() -> None:
    from kvshard.connection import command_name

    assert command_name(b"get foo\r\n") == "get"
    assert command_name(b"gets a b c\r\n") == "gets"
    assert command_name(b"version\r\n") == "version"
    assert command_name(b"mn\r\n") == "mn"
    assert command_name(b"bogus x\r\n") == "other"
    assert command_name(b"x" * 100) == "other"
    assert command_name(b"\x80\x00\x00\x03") == "get"
    assert command_name(b"\x80\x11") == "set"
    assert command_name(b"\x80\x77") == "other"


def test_packed_blocks_round_trip_and_refuse_truncation() -> None:
    """FIXED_GET_MANY's reply: each block behind its length; a cut-short one is an error."""
    from kvshard.packed_blocks import pack_blocks, unpack_blocks

    blocks = [b"", b"VALUE k 0 1\r\nx\r\n", bytes(range(256)) * 300, b""]
    packed = pack_blocks(blocks)
    assert len(packed) == sum(4 + len(b) for b in blocks)
    assert packed[:4] == b"\0\0\0\0" and packed[4:8] == len(blocks[1]).to_bytes(4, "little")
    assert unpack_blocks(packed, len(blocks)) == blocks
    for cut in (1, 3, len(packed) - 1):
        with pytest.raises(ValueError):
            unpack_blocks(packed[:cut], len(blocks))


def test_run_fixed_dispatches_every_registered_fixed_handler() -> None:
    """The two tables of fixed handlers (the channel's ``fixed_handlers`` and the inline
    ``run_fixed``) agree: each id gives the same reply both ways, on like services."""
    from kvshard import service as s
    from kvshard.protocol import binary as bp
    from kvshard.routing import key_mix

    mix = key_mix(b"k")  # (FIXED_GET_ONE carries the router's mix of its key)
    args = {
        s.FIXED_GET_ONE: (b"k", None, mix & 0xFFFFFFFF, mix >> 32, 0),
        s.FIXED_STORE: (b"k", b"vv", 0, 0, 0),
        s.FIXED_DELETE: (b"k", None, 0, 0, 0),
        s.FIXED_ARITH: (b"n", None, 1, 5, 0),
        s.FIXED_TOUCH: (b"k", None, 100, 0, 0),
        s.FIXED_BGET_PACKET: (b"k", None, 7, 0, 0),
        s.FIXED_BSTORE_PACKET: (b"k", b"vv", bp.OP_SET, 0, 0),
        s.FIXED_GET_MANY: (b"k n", None, 0, 0, 0),
    }

    def fresh() -> KVService:
        svc = KVService(Cache(1 << 20, 0, 1), asyncio.new_event_loop())
        svc.store(b"set", b"k", 0, 0, b"v", 0)
        svc.store(b"set", b"n", 0, 0, b"1", 0)
        return svc

    handlers = fresh().fixed_handlers()
    assert set(handlers) == set(args)
    for handler_id, call in args.items():
        by_table, inline = fresh(), fresh()
        expected = by_table.fixed_handlers()[handler_id](*call)
        assert inline.run_fixed(handler_id, *call) == expected, handler_id
    assert fresh().run_fixed(s.FIXED_GET_ONE, *args[s.FIXED_GET_ONE]) == b"VALUE k 0 1\r\nv\r\nEND\r\n"


def _whole_and_cut_reads_answer_alike(requests: list[bytes]) -> bytes:
    """Each request sent as one read, then (on a fresh server) cut in two reads after its 10th
    byte: the session's fast paths take only the whole ones. Both runs must answer the same
    bytes; returns them."""
    answers = []
    for cut in (None, 10):
        conn, transport, messenger = make()
        for request in requests:
            if cut is None or len(request) <= cut:
                conn.data_received(request)
            else:
                conn.data_received(request[:cut])
                conn.data_received(request[cut:])
            messenger.release()
        answers.append(transport.data)
    assert answers[0] == answers[1]
    return answers[0]


def test_binary_requests_read_whole_answer_as_when_parsed_in_pieces() -> None:
    """A GET, SET or SETQ that is a whole read takes the session's fast path (compiled: no
    Request tuple); the same packets cut in two go through the parser. The replies, and what
    the store holds afterwards, are the same byte for byte."""
    import struct

    from kvshard.protocol import binary as bp

    def packet(opcode: int, key: bytes, extras: bytes = b"", value: bytes = b"", cas: int = 0, opaque: int = 0) -> bytes:
        body = len(extras) + len(key) + len(value)
        return bp.HEADER.pack(0x80, opcode, len(key), len(extras), 0, 0, body, opaque, cas) + extras + key + value

    local, remote = keys_on(0, 2), keys_on(1, 2)
    requests = []
    for i, key in enumerate(local + remote):
        requests.append(packet(bp.OP_SET, key, struct.pack(">II", 0xDEADBEEF - i, 0), b"v%d" % i, opaque=i))
        requests.append(packet(bp.OP_SETQ, key + b"q", struct.pack(">II", i, 1000), b"q" * (i + 1), opaque=100 + i))
        requests.append(packet(bp.OP_GET, key, opaque=200 + i))
        requests.append(packet(bp.OP_GET, key + b"q", opaque=300 + i))
        requests.append(packet(bp.OP_SET, key, struct.pack(">II", 0, 0), b"cas", cas=12345, opaque=400 + i))  # EXISTS
        requests.append(packet(bp.OP_GET, key + b"-missing", opaque=500 + i))
    requests.append(packet(bp.OP_SET, local[0], struct.pack(">II", 0, 0), b"x" * (1 << 20), opaque=600))  # too large
    requests.append(packet(bp.OP_GET, local[0], opaque=601))  # gone: a refused set drops the old item
    requests.append(packet(bp.OP_SET, local[1], struct.pack(">II", 0, 0), b"", opaque=602))  # empty value
    requests.append(packet(bp.OP_GET, local[1], opaque=603))
    longest = b"k" * 250
    requests.append(packet(bp.OP_SETQ, longest, struct.pack(">II", 1, 0), b"v", opaque=604))
    requests.append(packet(bp.OP_GET, longest, opaque=605))
    requests.append(packet(bp.OP_GET, longest + b"k", opaque=606))  # too long: Invalid arguments, then closed

    replies = _whole_and_cut_reads_answer_alike(requests)
    assert b"v0" in replies and b"Data exists for key." in replies and b"Too large." in replies
    assert replies.endswith(b"Invalid arguments") and struct.pack(">I", 1) + b"v" in replies  # 250 bytes: fine
    assert struct.pack(">I", 0xDEADBEEF) + b"v0" in replies  # flags come back with the value


def test_ascii_sets_read_whole_answer_as_when_parsed_in_pieces() -> None:
    """A plain ``set`` that is a whole read takes the session's fast path (compiled: parsed in
    one C pass, no command tuple); the same requests cut in two go through the parser. The
    replies, and what the store holds afterwards, are the same byte for byte."""
    local, remote = keys_on(0, 2), keys_on(1, 2)
    requests = []
    for i, key in enumerate(local + remote):
        requests.append(b"set %b %d 0 2\r\nv%d\r\n" % (key, 123456789 - i, i))
        requests.append(b"set %bn 0 1000 1 noreply\r\nn\r\n" % key)
        requests.append(b"get %b %bn\r\n" % (key, key))
        requests.append(b"set %b 0 0 3\r\nabcd\r\n" % key)  # a bad data chunk
        requests.append(b"set %b 4294967297 0 1\r\nw\r\n" % key)  # flags wrap: not plain, parsed
        requests.append(b"set %b 0 0 1 junk\r\nj\r\n" % key)  # a 6th token other than noreply
        requests.append(b"set %b  0 0 1\r\nd\r\n" % key)  # two spaces
        requests.append(b"gets %b\r\n" % key)
    requests.append(b"set %b 0 0 1048516\r\n%b\r\n" % (local[0], b"x" * 1048516))  # too large with the header
    requests.append(b"get %b\r\n" % local[0])  # gone: a refused set drops the old item
    requests.append(b"set %b 0 0 0\r\n\r\n" % local[1])  # empty value
    requests.append(b"set %b 0 -1 1\r\nx\r\n" % local[1])  # expired at once
    requests.append(b"set %b 0 0 1\nx\r\n" % local[1])  # no CR
    requests.append(b"set k\x00 0 0 1\r\nx\r\n")  # a NUL ends the line for memcached
    requests.append(b"set " + b"k" * 250 + b" 1 0 1\r\nv\r\n")
    requests.append(b"set " + b"k" * 251 + b" 1 0 1\r\nv\r\n")  # too long: the data is a command
    requests.append(b"get " + b"k" * 250 + b"\r\n")
    requests.append(b"set %b 0 0 1 noreply\r\nx\r\nget %b\r\n" % (local[1], local[1]))  # more than one
    requests.append(b"set %b 0 0 1\r\n" % local[1])  # the data in the next read
    requests.append(b"y\r\n")
    requests.append(b"get %b\r\n" % local[1])

    replies = _whole_and_cut_reads_answer_alike(requests)
    assert b"VALUE %b 123456789 2\r\nv0\r\n" % local[0] in replies and b"VALUE %bn 0 1\r\nn\r\n" % remote[0] in replies
    assert b"CLIENT_ERROR bad data chunk" in replies and b"SERVER_ERROR object too large for cache" in replies
    assert replies.count(b"\r\nd\r\n") == 4  # each key's last set, read back by gets
    assert b"VALUE " + b"k" * 250 + b" 1 1\r\nv\r\n" in replies and b"VALUE %b 0 1\r\ny\r\n" % local[1] in replies
