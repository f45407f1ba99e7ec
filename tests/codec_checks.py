"""What a well-formed parse looks like, for the codec property tests and the long fuzz run
(scripts/fuzz_codecs.py): parsing helpers that feed a parser chunk by chunk, and checks that
raise AssertionError on a malformed command or reply."""

from __future__ import annotations

from kvshard.protocol import ascii as proto
from kvshard.protocol import binary as bproto
from kvshard.protocol import meta

__all__ = ["MAX_ITEM", "split", "ascii_commands", "binary_requests", "check_ascii", "check_binary", "reply_ok", "key_ok"]

MAX_ITEM = 4096  # small, so that generated sizes reach "too large"


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    """``data`` cut at the given points (taken modulo its length + 1)."""
    points = sorted({c % (len(data) + 1) for c in cuts})
    return [data[a:b] for a, b in zip([0, *points], [*points, len(data)])]


def ascii_commands(chunks: list[bytes]) -> list[tuple[object, ...]]:
    parser = proto.AsciiParser(MAX_ITEM)
    out: list[tuple[object, ...]] = []
    for chunk in chunks:
        out.extend(parser.feed(chunk))
    return out


def binary_requests(chunks: list[bytes]) -> list[bproto.Request]:
    parser = bproto.BinaryParser(MAX_ITEM)
    out: list[bproto.Request] = []
    for chunk in chunks:
        out.extend(parser.feed(chunk))
    return out


def key_ok(key: object) -> bool:
    """As memcached takes keys on a text line: 1-250 bytes, none a space, a newline or a NUL
    (which ends the line); control characters are allowed (memcached takes them too)."""
    return (isinstance(key, bytes) and 0 < len(key) <= proto.KEY_MAX_LENGTH
            and b" " not in key and b"\n" not in key and b"\x00" not in key)


def reply_ok(reply: object) -> bool:
    return isinstance(reply, bytes) and (reply == b"" or (reply.endswith(b"\r\n") and reply.count(b"\n") == 1))


def check_ascii(cmd: tuple[object, ...]) -> None:
    op = cmd[0]
    if op in (proto.GET, proto.GAT):
        # "gat <exptime>" with no key is memcached's END (a get needs a key: ERROR before this)
        assert (cmd[1] or op == proto.GAT) and all(key_ok(k) for k in cmd[1]), cmd  # type: ignore[attr-defined]
    elif op == proto.STORE:
        _, verb, key, flags, exptime, value, cas, noreply = cmd
        assert verb in proto.STORE_OPS and key_ok(key) and isinstance(value, bytes), cmd
        assert isinstance(flags, int) and 0 <= flags < 2**32 and isinstance(exptime, int) and isinstance(cas, int), cmd
        assert isinstance(noreply, bool), cmd
    elif op in (proto.DELETE, proto.TOUCH):
        assert key_ok(cmd[1]), cmd
    elif op == proto.ARITH:
        assert isinstance(cmd[1], bool) and key_ok(cmd[2]) and isinstance(cmd[3], int) and 0 <= cmd[3] < 2**64, cmd
    elif op == proto.REPLY:
        assert reply_ok(cmd[1]), cmd
    elif op == proto.TOO_LARGE:
        assert cmd[1] in proto.STORE_OPS and isinstance(cmd[2], bytes), cmd
    elif op == proto.META:
        _, verb, key, flags, value = cmd
        assert verb in (b"g", b"s", b"d", b"a", b"e") and isinstance(key, bytes), cmd  # the letter after "m"
        assert flags is None or isinstance(flags, meta.MetaFlags), cmd
        assert value is None or isinstance(value, bytes), cmd
    elif op == proto.SHUTDOWN:
        assert cmd[1] is None or isinstance(cmd[1], bytes), cmd
    else:
        assert op in (proto.FLUSH, proto.VERSION, proto.VERBOSITY, proto.QUIT, proto.STATS, proto.CLOSE), cmd


def check_binary(request: bproto.Request) -> None:
    assert isinstance(request, bproto.Request)
    if request.opcode in (bproto.CLOSE, bproto.UNKNOWN):
        # the reply to send (then close, for CLOSE): empty, or whole response packets
        reply = request.value
        while reply:
            assert len(reply) >= 24, request
            magic, _op, _key_len, _extras_len, _dt, _status, body_len, _opaque, _cas = bproto.HEADER.unpack_from(reply)
            assert magic == bproto.RESPONSE_MAGIC and len(reply) >= 24 + body_len, request
            reply = reply[24 + body_len :]
    elif request.opcode != bproto.TOO_LARGE:
        assert 0 <= request.opcode <= 0xFF and len(request.key) <= proto.KEY_MAX_LENGTH, request
        assert isinstance(request.extras, bytes) and isinstance(request.value, bytes), request
