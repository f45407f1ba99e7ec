"""``noreply``: every command that takes it does its work and sends nothing back.

Each case runs a setup (reply checked), then the noreply command, then a check whose reply
proves both that nothing was sent for the noreply command (``Wire.call`` reads the exact bytes
plus a sync reply) and that the command had its effect.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import pytest

from .conftest import Keys
from .wire import Wire, parse_values, storage, value


class Case(NamedTuple):
    setup: bytes
    setup_reply: bytes
    command: bytes
    check: bytes
    check_reply: bytes


def _set(k: bytes, data: bytes = b"v") -> bytes:
    return storage(b"set", k, data)


def _get(k: bytes) -> bytes:
    return b"get " + k + b"\r\n"


STORED = b"STORED\r\n"
MISS = b"END\r\n"

CASES: dict[str, Callable[[bytes], Case]] = {
    "set": lambda k: Case(b"", b"", storage(b"set", k, b"new", 3, noreply=True), _get(k), value(k, b"new", 3) + MISS),
    "add-stored": lambda k: Case(b"", b"", storage(b"add", k, b"a", noreply=True), _get(k), value(k, b"a") + MISS),
    "add-not-stored": lambda k: Case(
        _set(k), STORED, storage(b"add", k, b"a", noreply=True), _get(k), value(k, b"v") + MISS
    ),
    "replace-stored": lambda k: Case(
        _set(k), STORED, storage(b"replace", k, b"r", 1, noreply=True), _get(k), value(k, b"r", 1) + MISS
    ),
    "replace-not-stored": lambda k: Case(b"", b"", storage(b"replace", k, b"r", noreply=True), _get(k), MISS),
    "append": lambda k: Case(
        _set(k), STORED, storage(b"append", k, b"+", noreply=True), _get(k), value(k, b"v+") + MISS
    ),
    "append-not-stored": lambda k: Case(b"", b"", storage(b"append", k, b"+", noreply=True), _get(k), MISS),
    "prepend": lambda k: Case(
        _set(k), STORED, storage(b"prepend", k, b"-", noreply=True), _get(k), value(k, b"-v") + MISS
    ),
    "prepend-not-stored": lambda k: Case(b"", b"", storage(b"prepend", k, b"-", noreply=True), _get(k), MISS),
    "cas-not-found": lambda k: Case(b"", b"", storage(b"cas", k, b"c", cas=1, noreply=True), _get(k), MISS),
    "incr": lambda k: Case(_set(k, b"41"), STORED, b"incr " + k + b" 1 noreply\r\n", _get(k), value(k, b"42") + MISS),
    "incr-not-found": lambda k: Case(b"", b"", b"incr " + k + b" 1 noreply\r\n", _get(k), MISS),
    "decr": lambda k: Case(_set(k, b"43"), STORED, b"decr " + k + b" 1 noreply\r\n", _get(k), value(k, b"42") + MISS),
    "touch": lambda k: Case(_set(k), STORED, b"touch " + k + b" -1 noreply\r\n", _get(k), MISS),
    "touch-not-found": lambda k: Case(b"", b"", b"touch " + k + b" 10 noreply\r\n", _get(k), MISS),
    "delete": lambda k: Case(_set(k), STORED, b"delete " + k + b" noreply\r\n", _get(k), MISS),
    "delete-0": lambda k: Case(_set(k), STORED, b"delete " + k + b" 0 noreply\r\n", _get(k), MISS),
    "delete-not-found": lambda k: Case(b"", b"", b"delete " + k + b" noreply\r\n", storage(b"add", k, b"x"), STORED),
    "verbosity": lambda k: Case(b"", b"", b"verbosity 0 noreply\r\n", _get(k), MISS),
}


@pytest.mark.parametrize("case", list(CASES.values()), ids=list(CASES))
def test_noreply(conn: Wire, keys: Keys, case: Callable[[bytes], Case]) -> None:
    """The noreply command sends nothing and takes effect."""
    c = case(keys())
    conn.call(c.setup, c.setup_reply)
    conn.call(c.command, b"")
    conn.call(c.check, c.check_reply)


def test_cas_noreply_stored_and_exists(conn: Wire, keys: Keys) -> None:
    """``cas ... noreply`` is silent whether it stores (right unique) or not (stale one)."""
    k = keys()
    conn.call(storage(b"set", k, b"a"), b"STORED\r\n")
    (item,) = parse_values(conn.request(b"gets " + k + b"\r\n"))
    assert item.cas is not None
    conn.call(storage(b"cas", k, b"b", 2, cas=item.cas, noreply=True), b"")
    conn.call(b"get " + k + b"\r\n", value(k, b"b", 2) + b"END\r\n")
    conn.call(storage(b"cas", k, b"c", cas=item.cas, noreply=True), b"")
    conn.call(b"get " + k + b"\r\n", value(k, b"b", 2) + b"END\r\n")


def test_many_noreply_commands_then_one_reply(conn: Wire, keys: Keys) -> None:
    """A batch of noreply commands in one send yields only the final get's reply."""
    k = keys()
    batch = storage(b"set", k, b"1", noreply=True)
    batch += (b"incr " + k + b" 10 noreply\r\n") * 10
    batch += storage(b"append", k, b"0", noreply=True)
    batch += b"decr " + k + b" 1 noreply\r\n"
    conn.call(batch + b"get " + k + b"\r\n", value(k, b"1009") + b"END\r\n")


def test_noreply_silences_client_errors(conn: Wire, keys: Keys) -> None:
    """With noreply even CLIENT_ERROR replies are dropped (a bad data block is still followed
    by ERROR for the rest of the line, which is read as a command)."""
    k = keys()
    conn.call(storage(b"set", k, b"abc"), b"STORED\r\n")
    conn.call(b"incr " + k + b" 1 noreply\r\n", b"")
    conn.call(b"incr " + k + b" x noreply\r\n", b"")
    conn.call(b"set " + k + b" x 0 1 noreply\r\nq\r\n", b"ERROR\r\n")
    conn.call(b"set " + k + b" 0 0 1 noreply\r\nxyz\r\n", b"ERROR\r\n")
    conn.call(b"get " + k + b"\r\n", value(k, b"abc") + b"END\r\n")


def test_noreply_is_only_recognised_as_the_last_token(conn: Wire, keys: Keys) -> None:
    """``noreply`` in the wrong place makes the line too long for the command: ERROR."""
    k = keys()
    conn.call(b"set " + k + b" 0 0 1 noreply extra\r\nx\r\n", b"ERROR\r\nERROR\r\n")
    conn.call(b"get " + k + b"\r\n", b"END\r\n")
