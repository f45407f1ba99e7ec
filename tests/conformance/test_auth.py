"""Logging in, byte for byte as memcached 1.6.18: ASCII authentication (-Y auth file) and SASL
PLAIN over the binary protocol (-S), each against kvshard and a real memcached.

memcached's SASL is Cyrus SASL: it gets the same users from a sasldb made with ``saslpasswd2``
(Debian's sasl2-bin) and a config naming PLAIN; kvshard reads the user:password file itself.

Each ASCII exchange is one command and its reply: while a connection is out, memcached 1.6.18
answers only the last of several commands that arrive in one read (kvshard answers each; see
kvshard/protocol/ascii_login.py), so pipelined cases would compare a memcached bug.
"""

from __future__ import annotations

import subprocess
from typing import Iterator

import pytest

from kvshard.protocol import binary as b
from tests.servers import (
    Server, answers_binary_version, answers_unauthenticated, require_tool, server_kinds, start_server,
)

from .binwire import BinWire, Packet, req, store_extras
from .wire import Wire

USERS = {b"bob": b"hunter2", b"alice": b"s3cr3t"}

UNAUTHENTICATED = b"CLIENT_ERROR unauthenticated\r\n"
AUTH_FAILURE = b"CLIENT_ERROR authentication failure\r\n"
BAD_TOKEN = b"CLIENT_ERROR bad authentication token format\r\n"


def _login_block(text: bytes, noreply: bool = False) -> bytes:
    return b"set login 0 0 %d%s\r\n%s\r\n" % (len(text), b" noreply" if noreply else b"", text)


@pytest.fixture(scope="module")
def auth_file(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("auth") / "users"
    path.write_bytes(b"".join(b"%s:%s\n" % pair for pair in USERS.items()))
    return str(path)


@pytest.fixture(scope="module", params=server_kinds())
def ascii_server(request: pytest.FixtureRequest, auth_file: str) -> Iterator[Server]:
    with start_server(request.param, "-Y", auth_file, ready=answers_unauthenticated) as server:
        yield server


@pytest.fixture
def out(ascii_server: Server) -> Iterator[Wire]:
    """A connection that has not logged in."""
    with Wire.connect(ascii_server.address) as wire:
        yield wire


def _exchange(wire: Wire, request: bytes, expected: bytes) -> None:
    wire.call(request, expected, sync=False)


# -- ASCII authentication -----------------------------------------------------------------------

@pytest.mark.parametrize("command", [
    b"get foo\r\n", b"version\r\n", b"quit\r\n", b"stats\r\n", b"mn\r\n", b"ms foo 2\r\n",
    b"add x 0 0 11\r\n", b"cas x 0 0 11 1\r\n", b"SET x 0 0 11\r\n", b"set x 0 0\r\n",
    b"set x 0 0 -1\r\n", b"set x 0 0 abc\r\n", b"xyzzy\r\n", b"\r\n",
    b.HEADER.pack(0x80, b.OP_VERSION, 0, 0, 0, 0, 0, 0, 0) + b"\r\n",  # a binary packet is a line like any other
])
def test_anything_but_a_login_is_unauthenticated(out: Wire, command: bytes) -> None:
    _exchange(out, command, UNAUTHENTICATED)
    _exchange(out, b"version\r\n", UNAUTHENTICATED)  # still open, still out


@pytest.mark.parametrize(("block", "expected"), [
    (b"bob hunter2", b"STORED\r\n"),
    (b"alice s3cr3t", b"STORED\r\n"),
    (b"bob  hunter2", b"STORED\r\n"),  # runs of spaces collapse
    (b"bob hunter2 ", b"STORED\r\n"),
    (b"bob hunter2 more", b"STORED\r\n"),  # tokens after the password are ignored
    (b"bob nope", AUTH_FAILURE),
    (b"bob hunter", AUTH_FAILURE),
    (b"bob s3cr3t", AUTH_FAILURE),  # alice's password
    (b"carol hunter2", AUTH_FAILURE),
    (b"bob", BAD_TOKEN),
    (b"bob ", BAD_TOKEN),
    (b"bob:hunter2", BAD_TOKEN),
    (b"bob\thunter2", BAD_TOKEN),  # tabs are no separators
])
def test_login_block(out: Wire, block: bytes, expected: bytes) -> None:
    _exchange(out, _login_block(block), expected)
    if expected == b"STORED\r\n":
        out.call(b"get login\r\n", b"END\r\n")  # a login stores nothing
    else:
        _exchange(out, b"version\r\n", UNAUTHENTICATED)


def test_login_ignores_noreply_and_the_key(out: Wire) -> None:
    _exchange(out, b"set " + b"k" * 300 + b" junk junk 11 noreply\r\nbob hunter2\r\n", b"STORED\r\n")
    out.call(b"version\r\n", b"")


def test_login_block_must_end_in_crlf(out: Wire) -> None:
    _exchange(out, b"set x 0 0 11\r\nbob hunter2XX", b"CLIENT_ERROR bad command line termination\r\n")
    _exchange(out, b"version\r\n", UNAUTHENTICATED)


def test_login_over_several_reads(out: Wire) -> None:
    out.send_slowly(b"set x 0 0 11\r\nbob hunter2\r\n", chunk=3)
    out.expect(b"STORED\r\n")
    out.sync()


def test_logged_in_connection_is_served(out: Wire) -> None:
    _exchange(out, _login_block(b"bob hunter2"), b"STORED\r\n")
    out.call(b"set auth.k 5 0 2\r\nhi\r\n", b"STORED\r\n")
    out.call(b"get auth.k\r\n", b"VALUE auth.k 5 2\r\nhi\r\nEND\r\n")
    out.call(b"delete auth.k\r\n", b"DELETED\r\n")
    out.call(b"set x 0 0 11\r\nbob hunter2\r\n", b"STORED\r\n")  # now a set like any other
    out.call(b"get x\r\n", b"VALUE x 0 11\r\nbob hunter2\r\nEND\r\n")


def test_a_login_is_per_connection(ascii_server: Server, out: Wire) -> None:
    _exchange(out, _login_block(b"bob hunter2"), b"STORED\r\n")
    with Wire.connect(ascii_server.address) as other:
        _exchange(other, b"get x\r\n", UNAUTHENTICATED)


def test_long_line_while_out_closes(out: Wire) -> None:
    out.send(b"a" * 3000)
    assert out.wait_closed() == b""


def _stat(wire: Wire, group: bytes, name: bytes) -> bytes:
    reply = wire.request(b"stats %s\r\n" % group if group else b"stats\r\n")
    for line in reply.split(b"\r\n"):
        if line.startswith(b"STAT %s " % name):
            return line.split(b" ", 2)[2]
    raise AssertionError(f"no {name!r} in {reply!r}")


def test_login_counters_and_settings(ascii_server: Server, auth_file: str, out: Wire) -> None:
    with Wire.connect(ascii_server.address) as admin:
        _exchange(admin, _login_block(b"alice s3cr3t"), b"STORED\r\n")
        cmds, errors = int(_stat(admin, b"", b"auth_cmds")), int(_stat(admin, b"", b"auth_errors"))
        _exchange(out, _login_block(b"bob nope"), AUTH_FAILURE)
        _exchange(out, _login_block(b"bob"), BAD_TOKEN)  # not counted: no user was checked
        _exchange(out, b"get x\r\n", UNAUTHENTICATED)  # not counted
        _exchange(out, _login_block(b"bob hunter2"), b"STORED\r\n")
        assert int(_stat(admin, b"", b"auth_cmds")) == cmds + 2
        assert int(_stat(admin, b"", b"auth_errors")) == errors + 1
        assert _stat(admin, b"settings", b"auth_enabled_ascii") == auth_file.encode()
        assert _stat(admin, b"settings", b"auth_enabled_sasl") == b"no"


# -- SASL PLAIN over the binary protocol --------------------------------------------------------

@pytest.fixture(scope="module")
def sasl_setup(tmp_path_factory: pytest.TempPathFactory, auth_file: str) -> dict[str, tuple[list[str], dict[str, str]]]:
    """Per kind, the extra flags and environment of a -S server with the users of USERS."""
    setups: dict[str, tuple[list[str], dict[str, str]]] = {"kvshard": (["-S", "--sasl-pwdb", auth_file], {})}
    if "memcached" in server_kinds():
        saslpasswd2 = require_tool("saslpasswd2")
        folder = tmp_path_factory.mktemp("sasl")
        for user, password in USERS.items():
            subprocess.run([saslpasswd2, "-p", "-c", "-f", str(folder / "sasldb"), "-a", "memcached", user.decode()],
                           input=password, check=True, capture_output=True, timeout=30)
        (folder / "memcached.conf").write_text(f"mech_list: plain\nsasldb_path: {folder / 'sasldb'}\n")
        setups["memcached"] = (["-S"], {"SASL_CONF_PATH": str(folder)})
    return setups


@pytest.fixture(scope="module", params=server_kinds())
def sasl_server(request: pytest.FixtureRequest, sasl_setup: dict[str, tuple[list[str], dict[str, str]]]) -> Iterator[Server]:
    flags, env = sasl_setup[request.param]
    with start_server(request.param, *flags, ready=answers_binary_version, env=env) as server:
        yield server


@pytest.fixture
def locked(sasl_server: Server) -> Iterator[BinWire]:
    wire = BinWire(sasl_server.address)
    yield wire
    wire.close()


def auth(data: bytes, mechanism: bytes = b"PLAIN", opaque: int = 7, step: bool = False, extras: bytes = b"") -> bytes:
    return req(b.OP_SASL_STEP if step else b.OP_SASL_AUTH, key=mechanism, value=data, opaque=opaque, extras=extras)


def _reply(opcode: int, status: int, opaque: int = 7, value: bytes = b"") -> Packet:
    return Packet(opcode, status, opaque, 0, value=value)


AUTHENTICATED = _reply(b.OP_SASL_AUTH, b.ST_OK, value=b"Authenticated")
FAILED = _reply(b.OP_SASL_AUTH, b.ST_AUTH_ERROR, value=b"Auth failure.")


def _next(wire: BinWire) -> Packet | None:
    return wire.read_packet()


def _still_locked(wire: BinWire) -> None:
    """A NOOP is refused with Auth failure and the connection closes."""
    assert wire.closes_after(req(b.OP_NOOP, opaque=9)) == [_reply(b.OP_NOOP, b.ST_AUTH_ERROR, 9, b"Auth failure.")]


def _unlocked(wire: BinWire) -> None:
    wire.send(req(b.OP_NOOP, opaque=9))
    assert _next(wire) == _reply(b.OP_NOOP, b.ST_OK, 9)


def test_mechanisms_listed(locked: BinWire) -> None:
    locked.send(req(b.OP_SASL_LIST_MECHS, opaque=3))
    assert _next(locked) == _reply(b.OP_SASL_LIST_MECHS, b.ST_OK, 3, b"PLAIN")


def test_version_is_open_while_locked(locked: BinWire) -> None:
    locked.send(req(b.OP_VERSION, opaque=3))
    packet = _next(locked)
    assert packet is not None and (packet.opcode, packet.status, packet.opaque) == (b.OP_VERSION, b.ST_OK, 3)
    _still_locked(locked)


@pytest.mark.parametrize("request_bytes", [
    req(b.OP_GET, key=b"foo", opaque=9), req(b.OP_NOOP, opaque=9), req(b.OP_QUIT, opaque=9), req(b.OP_STAT, opaque=9),
    req(b.OP_SET, key=b"foo", extras=store_extras(), value=b"v", opaque=9), req(0x50, opaque=9),
])
def test_anything_else_is_refused_and_closes(locked: BinWire, request_bytes: bytes) -> None:
    opcode = request_bytes[1]
    assert locked.closes_after(request_bytes) == [_reply(opcode, b.ST_AUTH_ERROR, 9, b"Auth failure.")]


@pytest.mark.parametrize("data", [b"\0bob\0hunter2", b"bob\0bob\0hunter2", b"\0alice\0s3cr3t"])
@pytest.mark.parametrize("mechanism", [b"PLAIN", b"plain"])
def test_plain_login(locked: BinWire, data: bytes, mechanism: bytes) -> None:
    locked.send(auth(data, mechanism))
    assert _next(locked) == AUTHENTICATED
    locked.send(req(b.OP_SET, key=b"sasl.k", extras=store_extras(3), value=b"v", opaque=1) + req(b.OP_GET, key=b"sasl.k", opaque=2))
    stored, got = _next(locked), _next(locked)
    assert stored is not None and (stored.status, stored.opaque) == (b.ST_OK, 1)
    assert got is not None and (got.status, got.extras, got.value) == (b.ST_OK, b"\0\0\0\3", b"v")


@pytest.mark.parametrize("data", [
    b"\0bob\0nope", b"\0bob\0s3cr3t", b"\0carol\0hunter2", b"alice\0bob\0hunter2", b"\0\0", b"garbage",
    b"\0bob\0hunter2\0", b"\0" + b"b" * 300 + b"\0x",
])
def test_plain_login_refused_connection_stays(locked: BinWire, data: bytes) -> None:
    locked.send(auth(data))
    assert _next(locked) == FAILED
    locked.send(auth(b"\0bob\0hunter2", opaque=8))
    assert _next(locked) == _reply(b.OP_SASL_AUTH, b.ST_OK, 8, b"Authenticated")
    _unlocked(locked)


def test_unknown_mechanism(locked: BinWire) -> None:
    locked.send(auth(b"\0bob\0hunter2", b"CRAM-MD5"))
    assert _next(locked) == FAILED
    _still_locked(locked)


def test_login_in_two_steps(locked: BinWire) -> None:
    locked.send(auth(b""))
    assert _next(locked) == _reply(b.OP_SASL_AUTH, b.ST_AUTH_CONTINUE)
    locked.send(auth(b"\0bob\0hunter2", step=True, opaque=8))
    assert _next(locked) == _reply(b.OP_SASL_STEP, b.ST_OK, 8, b"Authenticated")
    _unlocked(locked)


def test_step_without_auth_fails(locked: BinWire) -> None:
    locked.send(auth(b"\0bob\0hunter2", step=True))
    assert _next(locked) == _reply(b.OP_SASL_STEP, b.ST_AUTH_ERROR, value=b"Auth failure.")
    _still_locked(locked)


def test_a_failed_login_locks_again(locked: BinWire) -> None:
    # in one write: the second AUTH's failure applies to the NOOP behind it
    locked.send(auth(b"\0bob\0hunter2") + auth(b"\0bob\0nope", opaque=8) + req(b.OP_NOOP, opaque=9))
    assert _next(locked) == AUTHENTICATED
    assert _next(locked) == _reply(b.OP_SASL_AUTH, b.ST_AUTH_ERROR, 8, b"Auth failure.")
    assert _next(locked) == _reply(b.OP_NOOP, b.ST_AUTH_ERROR, 9, b"Auth failure.")
    assert _next(locked) is None


def test_login_and_request_in_one_write(locked: BinWire) -> None:
    locked.send(auth(b"\0bob\0hunter2") + req(b.OP_NOOP, opaque=9))
    assert _next(locked) == AUTHENTICATED
    assert _next(locked) == _reply(b.OP_NOOP, b.ST_OK, 9)


@pytest.mark.parametrize("request_bytes", [
    auth(b"\0bob\0hunter2", extras=b"abcd"), auth(b"\0bob\0hunter2", mechanism=b""),
    req(b.OP_SASL_LIST_MECHS, key=b"x", opaque=7), req(b.OP_SASL_LIST_MECHS, value=b"x", opaque=7),
])
def test_malformed_sasl_packets_close(locked: BinWire, request_bytes: bytes) -> None:
    opcode = request_bytes[1]
    assert locked.closes_after(request_bytes) == [_reply(opcode, b.ST_INVALID, value=b"Invalid arguments")]


def test_ascii_is_not_spoken(sasl_server: Server) -> None:
    with Wire.connect(sasl_server.address) as wire:
        wire.send(b"get foo bar baz qux quux\r\n")  # longer than a binary header
        assert wire.wait_closed() == b""


def _auth_stats(sasl_server: Server) -> dict[bytes, bytes]:
    wire = BinWire(sasl_server.address)
    try:
        wire.send(auth(b"\0alice\0s3cr3t") + req(b.OP_STAT, opaque=1))
        assert _next(wire) == AUTHENTICATED
        found = {}
        while (packet := _next(wire)) is not None and packet.key:
            found[packet.key] = packet.value
        return found
    finally:
        wire.close()


def test_counters(sasl_server: Server, locked: BinWire) -> None:
    before = _auth_stats(sasl_server)
    locked.send(auth(b"\0bob\0nope"))  # counted, failed
    assert _next(locked) == FAILED
    locked.send(auth(b""))  # not counted: it only asks for the challenge
    assert _next(locked) == _reply(b.OP_SASL_AUTH, b.ST_AUTH_CONTINUE)
    locked.send(auth(b"\0bob\0hunter2", step=True))  # counted
    assert _next(locked) == _reply(b.OP_SASL_STEP, b.ST_OK, value=b"Authenticated")
    after = _auth_stats(sasl_server)
    # the stats connection's own login counts once each time
    assert int(after[b"auth_cmds"]) - int(before[b"auth_cmds"]) == 2 + 1
    assert int(after[b"auth_errors"]) - int(before[b"auth_errors"]) == 1


def test_sasl_settings(sasl_server: Server) -> None:
    wire = BinWire(sasl_server.address)
    try:
        wire.send(auth(b"\0alice\0s3cr3t") + req(b.OP_STAT, key=b"settings", opaque=1))
        assert _next(wire) == AUTHENTICATED
        found = {}
        while (packet := _next(wire)) is not None and packet.key:
            found[packet.key] = packet.value
        assert found[b"auth_enabled_sasl"] == b"yes"
        assert found[b"auth_enabled_ascii"] == b"no"
        assert found[b"binding_protocol"] == b"binary"
    finally:
        wire.close()


@pytest.mark.parametrize("kind", server_kinds())
def test_no_login_without_sasl(kind: str) -> None:
    """Without -S the SASL opcodes are unknown commands and nothing is locked."""
    with start_server(kind) as server:
        wire = BinWire(server.address)
        try:
            wire.send(auth(b"\0bob\0hunter2"))
            assert _next(wire) == _reply(b.OP_SASL_AUTH, 0x81, value=b"Unknown command")
        finally:
            wire.close()
        wire = BinWire(server.address)
        try:
            _unlocked(wire)
        finally:
            wire.close()
