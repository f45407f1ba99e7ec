"""What ``verbosity`` and ``watch`` change in a running kvshard of two shards: the shards' log
on standard error (``<fd get k`` lines at level 2, none at 0, as memcached -vv), and the lines a
watcher gets from both shards. Answers are compared with memcached's in
tests/conformance/test_verbosity.py and test_watch.py."""

from __future__ import annotations

import re
import tempfile
import time
from pathlib import Path
from typing import IO, Iterator

import pytest

from kvshard.routing import owner_of
from tests.conformance.wire import Wire
from tests.conformance.binwire import BinWire
from tests.servers import Server, free_port, server_kinds, start_server


@pytest.fixture(scope="module")
def logged() -> Iterator[tuple[Server, IO[bytes]]]:
    with tempfile.TemporaryFile() as stderr, start_server("kvshard", stderr=stderr) as server:
        yield server, stderr


def _log(stderr: IO[bytes]) -> str:
    stderr.seek(0)
    return stderr.read().decode(errors="replace")


def _wait_for(stderr: IO[bytes], pattern: str, timeout: float = 5.0) -> str:
    deadline = time.monotonic() + timeout
    while not re.search(pattern, text := _log(stderr)):
        assert time.monotonic() < deadline, f"{pattern!r} not logged:\n{text[-2000:]}"
        time.sleep(0.05)
    return text


def test_verbosity_two_logs_commands_and_answers_and_zero_stops(logged: tuple[Server, IO[bytes]]) -> None:
    server, stderr = logged
    with Wire.connect(server.address) as conn:
        conn.call(b"get before-verbosity\r\n", b"END\r\n")
        conn.call(b"verbosity 2\r\n", b"OK\r\n")
        conn.call(b"set traced 0 0 2\r\nhi\r\n", b"STORED\r\n")
        conn.call(b"get traced\r\n", b"VALUE traced 0 2\r\nhi\r\nEND\r\n")
        text = _wait_for(stderr, r"kvshard\.commands DEBUG >\d+ END")
        for line in (r"<(\d+) set traced 0 0 2\n", r">\d+ STORED\n", r"<\d+ get traced\n", r">\d+ sending key traced\n"):
            assert re.search(line, text), line
        assert "before-verbosity" not in text and "\nhi\n" not in text  # data blocks are not commands
        with Wire.connect(server.address) as other:  # every shard traces, new connections too
            other.call(b"get other-connection\r\n", b"END\r\n")
        _wait_for(stderr, r"<\d+ connection closed\.")
        conn.call(b"verbosity 0\r\n", b"OK\r\n")
        conn.call(b"get after-verbosity\r\n", b"END\r\n")
        with Wire.connect(server.address) as other:
            other.call(b"get after-verbosity-elsewhere\r\n", b"END\r\n")
    time.sleep(0.3)
    text = _log(stderr)
    assert "<" in text and "other-connection" in text
    assert "after-verbosity" not in text


def test_a_watcher_hears_lookups_of_both_shards(logged: tuple[Server, IO[bytes]]) -> None:
    server, _ = logged
    names = [b"both-shards-%d" % i for i in range(16)]
    assert {owner_of(name, 2) for name in names} == {0, 1}
    watchers = []
    try:
        for _ in range(4):  # connections land on either shard: some watcher is on each
            watcher = Wire.connect(server.address)
            watchers.append(watcher)
            watcher.send(b"watch fetchers\r\n")
            watcher.expect(b"OK\r\n")
        with Wire.connect(server.address) as client:
            for name in names:
                client.call(b"get " + name + b"\r\n", b"END\r\n")
        for watcher in watchers:
            seen = set()
            while len(seen) < len(names):
                line = watcher.recv_until(b"\n").decode()
                match = re.fullmatch(r"ts=\d+\.\d+ gid=\d+ type=item_get key=(\S+) status=not_found clsid=0 cfd=-?\d+ size=0\n", line)
                assert match is not None, line
                seen.add(match.group(1).encode())
            assert seen == set(names)
    finally:
        for watcher in watchers:
            watcher.close()


def test_dash_vv_traces_from_the_start(tmp_path: Path) -> None:
    with (tmp_path / "stderr").open("w+b") as stderr, start_server("kvshard", "-vv", stderr=stderr) as server:
        with Wire.connect(server.address) as conn:
            conn.call(b"get from-the-start\r\n", b"END\r\n")
            conn.call(b"stats settings\r\n", b"", sync=False)
            assert b"STAT verbosity 2\r\n" in conn.recv_until(b"END\r\n")
        _wait_for(stderr, r"<\d+ get from-the-start\n")


@pytest.mark.parametrize("protocol, line", [
    (None, "new auto-negotiating client connection"),
    ("ascii", "new ascii client connection."),
])
def test_dash_vv_names_the_bound_protocol_of_a_new_connection(tmp_path: Path, protocol: str | None, line: str) -> None:
    """memcached -vv's line for a new connection says what -B bound it to."""
    flags = ("-vv",) if protocol is None else ("-vv", "-B", protocol)
    with (tmp_path / "stderr").open("w+b") as stderr, start_server("kvshard", *flags, stderr=stderr) as server:
        with Wire.connect(server.address) as conn:
            conn.call(b"get named\r\n", b"END\r\n")
        _wait_for(stderr, r"<\d+ " + re.escape(line) + r"\n")


@pytest.mark.parametrize("kind", server_kinds())
def test_dash_vv_names_the_protocol_of_a_listener(tmp_path: Path, kind: str) -> None:
    """At -vv each listening socket is logged with its protocol, and a connection to an ``-l
    proto[binary]:`` listener is a binary one, whatever -B says (run against memcached too)."""
    port = free_port()
    with (tmp_path / "stderr").open("w+b") as stderr, start_server(
        kind, "-vv", "-B", "ascii", "-l", f"proto[binary]:127.0.0.1:{port}", stderr=stderr,
    ):
        _wait_for(stderr, r"<\d+ server listening \(ascii\)\n")
        _wait_for(stderr, r"<\d+ server listening \(binary\)\n")
        BinWire(("127.0.0.1", port)).close()
        _wait_for(stderr, r"<\d+ new binary client connection\.\n")
