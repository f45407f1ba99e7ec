"""The login pieces alone: the password file, SASL PLAIN's message, and the ASCII login gate's
limits (what the conformance suite cannot show against memcached)."""

from __future__ import annotations

from pathlib import Path

import pytest

from kvshard.auth import CredentialsError, load_credentials, plain_login
from kvshard.protocol.ascii_login import (
    MAX_LOGIN_BLOCK, R_BAD_TOKEN, R_LOGGED_IN, R_UNAUTHENTICATED, AsciiLogin,
)
from kvshard.protocol.ascii import MAX_LINE
from tests.codec_checks import USERS


def test_password_file_forms(tmp_path: Path) -> None:
    path = tmp_path / "users"
    path.write_bytes(b"bob:hunter2\r\n\nalice:a:b:c\ncarol:\n")
    credentials = load_credentials(str(path))
    assert credentials.entries == ((b"bob", b"hunter2"), (b"alice", b"a:b:c"), (b"carol", b""))
    assert credentials.check(b"bob", b"hunter2") and credentials.check(b"alice", b"a:b:c")
    assert not credentials.check(b"bob", b"hunter2\r") and not credentials.check(b"bob", b"a:b:c")
    assert not credentials.check(b"dave", b"")


def test_ascii_entries_must_fit_a_login_block(tmp_path: Path) -> None:
    path = tmp_path / "users"
    path.write_bytes(b"bob:" + b"x" * MAX_LOGIN_BLOCK + b"\n")
    load_credentials(str(path))  # fine for SASL
    with pytest.raises(CredentialsError, match="longer than an ASCII login may be"):
        load_credentials(str(path), ascii_login=True)


@pytest.mark.parametrize(("message", "ok"), [
    (b"\0bob\0hunter2", True), (b"bob\0bob\0hunter2", True), (b"\0alice\0s3cr3t", True),
    (b"alice\0bob\0hunter2", False), (b"\0bob\0hunter2\0", False), (b"bob\0hunter2", False),
    (b"\0\0hunter2", False), (b"\0bob\0", False), (b"", False),
])
def test_plain_message(message: bytes, ok: bool) -> None:
    assert plain_login(message, USERS) is ok


def test_gate_hands_over_what_follows_the_login() -> None:
    gate = AsciiLogin(USERS.check)
    step = gate.feed(b"get a\r\nset k 0 0 11\r\nbob hunter2\r\nget a\r\nset b 0 0 1\r")
    assert step.replies == [R_UNAUTHENTICATED, R_LOGGED_IN]
    assert step.rest == b"get a\r\nset b 0 0 1\r" and not step.close


def test_gate_swallows_a_block_too_long_for_any_user() -> None:
    gate = AsciiLogin(USERS.check)
    size = MAX_LOGIN_BLOCK * 4
    step = gate.feed(b"set k 0 0 %d\r\n" % size)
    assert step.replies == [] and gate.reading_data
    for _ in range(size // 1000):
        assert gate.feed(b"b" * 1000).replies == []  # dropped as it comes, nothing held
    step = gate.feed(b"b" * (size % 1000) + b"\r\nget x\r\n")
    assert step.replies == [R_BAD_TOKEN, R_UNAUTHENTICATED] and step.rest is None


def test_gate_closes_on_a_line_without_end() -> None:
    gate = AsciiLogin(USERS.check)
    assert not gate.feed(b"x" * MAX_LINE).close
    assert gate.feed(b"x").close
