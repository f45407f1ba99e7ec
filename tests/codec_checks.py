"""What a well-formed parse looks like, for the codec property tests and the long fuzz run
(scripts/fuzz_codecs.py): parsing helpers that feed a parser chunk by chunk, and checks that
raise AssertionError on a malformed command or reply."""

from __future__ import annotations

from kvshard.auth import Credentials, plain_login
from kvshard.protocol import ascii as proto
from kvshard.protocol import ascii_login
from kvshard.protocol import binary as bproto
from kvshard.protocol import meta

__all__ = [
    "MAX_ITEM", "USERS", "split", "ascii_commands", "binary_requests", "login_outcome", "sasl_requests",
    "check_ascii", "check_binary", "check_login", "reply_ok", "key_ok",
]

USERS = Credentials(((b"bob", b"hunter2"), (b"alice", b"s3cr3t")))
LOGIN_REPLIES = frozenset((
    ascii_login.R_UNAUTHENTICATED, ascii_login.R_AUTH_FAILURE, ascii_login.R_BAD_TOKEN,
    ascii_login.R_BAD_TERMINATION, ascii_login.R_LOGGED_IN,
))

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


def login_outcome(chunks: list[bytes]) -> tuple[list[bytes], bool, bytes | None]:
    """Feed an ASCII login gate (users: :data:`USERS`) until it lets the client in or closes:
    (replies, closed, the bytes after the login or None)."""
    gate = ascii_login.AsciiLogin(USERS.check)
    replies: list[bytes] = []
    for i, chunk in enumerate(chunks):
        step = gate.feed(chunk)
        replies.extend(step.replies)
        if step.close:
            return replies, True, None
        if step.rest is not None:
            return replies, False, step.rest + b"".join(chunks[i + 1 :])
    return replies, False, None


def sasl_requests(chunks: list[bytes]) -> list[bproto.Request]:
    """A SASL (-S) parser run as a session runs it: locked until a PLAIN login succeeds,
    locked again when one fails, fed ``b""`` after each login (``held``)."""
    parser = bproto.BinaryParser(MAX_ITEM, sasl=True)
    out: list[bproto.Request] = []
    for chunk in chunks:
        while True:
            for request in parser.feed(chunk):
                out.append(request)
                # locked: only what may be sent before a login gets through (or the refusal)
                assert not parser.locked or request.opcode in bproto.OPEN_WHILE_LOCKED or request.opcode == bproto.CLOSE, request
                if request.opcode in (bproto.OP_SASL_AUTH, bproto.OP_SASL_STEP):
                    parser.locked = not plain_login(request.value, USERS)
            if not parser.held:
                break
            chunk = b""
    return out


def check_login(replies: list[bytes], closed: bool, rest: bytes | None) -> None:
    assert all(reply in LOGIN_REPLIES for reply in replies), replies
    assert ascii_login.R_LOGGED_IN not in replies[:-1], replies  # nothing is answered after a login
    assert (rest is not None) == (replies[-1:] == [ascii_login.R_LOGGED_IN]), (replies, rest)
    assert not (closed and rest is not None)


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
        if request.opcode in bproto.SASL:
            assert not request.extras and len(request.value) <= bproto.MAX_SASL_DATA, request
