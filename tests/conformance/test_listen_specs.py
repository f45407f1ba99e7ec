"""``-l`` with memcached 1.6.18's per-listener forms, against kvshard and memcached alike.

The server listens on ``127.0.0.1`` at ``-p`` (start_server's ``-l``) and on three more
listeners, each with its own port: ``proto[ascii]``, ``proto[binary]`` and
``proto[negotiating]`` with a tag on ``[::1]``. Under ``-B ascii`` the ``proto[binary]``
listener still speaks binary only and the negotiating one both; under ``-B binary`` a
``proto[ascii]`` listener speaks ASCII. ``stats settings`` shows the list as given (``inter``)
and ``stats conns`` every listener at its own port.
"""

from __future__ import annotations

from typing import Iterator

import pytest

from kvshard.protocol import binary as b
from tests.servers import Server, answers_binary_version, free_port, server_kinds, start_server

from .binwire import BinWire, req
from .conftest import server_with
from .test_ascii_stats import read_stats
from .wire import Wire

ASCII_PORT, BINARY_PORT, NEGOTIATING_PORT, ASCII_UNDER_BINARY_PORT = (free_port() for _ in range(4))
LISTENERS = [
    f"proto[ascii]:127.0.0.1:{ASCII_PORT}",
    f"proto[binary]:127.0.0.1:{BINARY_PORT}",
    f"proto[negotiating]:tag[edge]:[::1]:{NEGOTIATING_PORT}",
]

server = server_with("-B", "ascii", *(flag for spec in LISTENERS for flag in ("-l", spec)))


@pytest.fixture(scope="module", params=server_kinds())
def binary_server(request: pytest.FixtureRequest) -> Iterator[Server]:
    """-B binary, with one proto[ascii] listener."""
    with start_server(request.param, "-B", "binary", "-l", f"proto[ascii]:127.0.0.1:{ASCII_UNDER_BINARY_PORT}",
                      ready=answers_binary_version) as started:
        yield started


def _version(host: str, port: int) -> bytes:
    with Wire.connect((host, port)) as wire:
        return wire.request(b"version\r\n", b"\r\n")


def _binary_version(host: str, port: int) -> tuple[int, int]:
    wire = BinWire((host, port))
    try:
        (answer,) = wire.call(req(b.OP_VERSION))
        return answer.opcode, answer.status
    finally:
        wire.close()


def test_settings_show_the_list_as_given(conn: Wire, server: Server) -> None:
    settings = read_stats(conn, b" settings")
    assert settings["inter"] == ",".join(["127.0.0.1", *LISTENERS])
    assert (settings["tcpport"], settings["binding_protocol"]) == (str(server.port), "ascii")


def test_the_ascii_listener_speaks_ascii(server: Server) -> None:
    assert _version("127.0.0.1", ASCII_PORT).startswith(b"VERSION ")
    with Wire.connect(("127.0.0.1", ASCII_PORT)) as wire:  # a binary request is text here, as under -B ascii
        wire.send(req(b.OP_VERSION))
        assert wire.recv_available(wait=0.3) == b""
        wire.call(b"\r\n", b"ERROR\r\n")


def test_the_binary_listener_speaks_binary_whatever_b_says(server: Server) -> None:
    assert _binary_version("127.0.0.1", BINARY_PORT) == (b.OP_VERSION, b.ST_OK)
    wire = BinWire(("127.0.0.1", BINARY_PORT))
    try:
        assert wire.closes_after(b"version\r\n" + b"x" * 15) == []  # 24 bytes of a header with a bad magic
    finally:
        wire.close()


def test_the_negotiating_listener_on_ipv6_speaks_both(server: Server) -> None:
    assert _version("::1", NEGOTIATING_PORT).startswith(b"VERSION ")
    assert _binary_version("::1", NEGOTIATING_PORT) == (b.OP_VERSION, b.ST_OK)


def test_the_default_listener_keeps_b(server: Server) -> None:
    with Wire.connect(server.address) as wire:
        wire.send(req(b.OP_VERSION))
        assert wire.recv_available(wait=0.3) == b""
        wire.call(b"\r\n", b"ERROR\r\n")


def test_stats_conns_shows_every_listener_at_its_port(server: Server) -> None:
    with Wire.connect(("127.0.0.1", ASCII_PORT)) as wire:
        fields: dict[str, dict[str, str]] = {}
        for name, value in read_stats(wire, b" conns").items():
            conn_id, field = name.split(":", 1)
            fields.setdefault(conn_id, {})[field] = value
        client = "tcp:%s:%d" % wire.sock.getsockname()[:2]
    listening = {entry["addr"] for entry in fields.values() if entry["state"] == "conn_listening"}
    assert listening == {f"tcp:127.0.0.1:{server.port}", f"tcp:127.0.0.1:{ASCII_PORT}", f"tcp:127.0.0.1:{BINARY_PORT}",
                         f"tcp6:[::1]:{NEGOTIATING_PORT}"}
    (me,) = [entry for entry in fields.values() if entry["addr"] == client]
    assert me["listen_addr"] == f"tcp:127.0.0.1:{ASCII_PORT}"


def test_an_ascii_listener_under_b_binary(binary_server: Server) -> None:
    assert _version("127.0.0.1", ASCII_UNDER_BINARY_PORT).startswith(b"VERSION ")
    assert _binary_version("127.0.0.1", binary_server.port) == (b.OP_VERSION, b.ST_OK)
