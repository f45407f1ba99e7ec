"""memcached's UDP transport (``-U``) against kvshard and (where installed) memcached: the
8-byte frame header, answers split over datagrams and reassembled, malformed headers dropped,
binary and meta commands over UDP, keys of every shard, and UDP off by default."""

from __future__ import annotations

import socket
import struct
from typing import Iterator

import pytest

from tests.servers import Server, answers_binary_version, answers_version, server_kinds, start_server

HEADER = struct.Struct(">HHHH")
Datagram = tuple[int, int, int, int, bytes]  # request id, sequence, count, reserved, payload


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module", params=server_kinds())
def udp_server(request: pytest.FixtureRequest) -> Iterator[tuple[Server, int]]:
    port = free_udp_port()
    with start_server(request.param, "-U", str(port)) as srv:
        yield srv, port


class UdpClient:
    def __init__(self, port: int) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.connect(("127.0.0.1", port))

    def close(self) -> None:
        self.sock.close()

    def send(self, payload: bytes, request_id: int = 1, sequence: int = 0, count: int = 1, reserved: int = 0) -> None:
        self.sock.send(HEADER.pack(request_id, sequence, count, reserved) + payload)

    def receive(self, quiet: float = 0.2, first: float = 5.0) -> list[Datagram]:
        """Every datagram until none arrives for ``quiet`` seconds (waiting up to ``first``
        seconds for the first one)."""
        out: list[Datagram] = []
        self.sock.settimeout(first)
        try:
            while True:
                data = self.sock.recv(65536)
                out.append((*HEADER.unpack_from(data), data[HEADER.size:]))  # type: ignore[arg-type]
                self.sock.settimeout(quiet)
        except socket.timeout:
            return out

    def call(self, payload: bytes, request_id: int = 1) -> bytes:
        """Send one request; return the answer reassembled (payloads in arrival order, every
        datagram carrying this request id)."""
        self.send(payload, request_id)
        datagrams = self.receive()
        assert datagrams, f"no answer to {payload[:60]!r}"
        assert all(d[0] == request_id and d[3] == 0 for d in datagrams), datagrams
        return b"".join(d[4] for d in datagrams)


@pytest.fixture
def udp(udp_server: tuple[Server, int]) -> Iterator[UdpClient]:
    client = UdpClient(udp_server[1])
    yield client
    client.close()


def test_set_and_get_through_the_frame_header(udp: UdpClient) -> None:
    key = b"udp-frame"
    udp.send(b"set " + key + b" 3 0 5\r\nhello\r\n", request_id=0x1234)
    assert udp.receive() == [(0x1234, 0, 1, 0, b"STORED\r\n")]
    udp.send(b"get " + key + b"\r\n", request_id=0xBEEF, sequence=5, reserved=9)  # not checked
    assert udp.receive() == [(0xBEEF, 0, 1, 0, b"VALUE " + key + b" 3 5\r\nhello\r\nEND\r\n")]
    udp.send(b"set " + key + b" 0 0 1 noreply\r\nx\r\n")
    assert udp.receive(first=0.5) == []  # noreply: no datagram at all
    assert udp.call(b"get " + key + b"\r\n") == b"VALUE " + key + b" 0 1\r\nx\r\nEND\r\n"


def test_multi_datagram_answer_is_numbered_and_reassembles(udp: UdpClient) -> None:
    """5029 answer bytes: four datagrams of at most 1400 bytes (1392 of answer each),
    sequence 0..3, count 4."""
    value = bytes(range(256)) * 19 + b"z" * 136  # 5000 bytes, every byte value
    assert udp.call(b"set udp-big 0 0 5000\r\n" + value + b"\r\n") == b"STORED\r\n"
    udp.send(b"get udp-big\r\n", request_id=77)
    datagrams = udp.receive()
    assert [(d[0], d[1], d[2], len(d[4])) for d in datagrams] == [
        (77, 0, 4, 1392), (77, 1, 4, 1392), (77, 2, 4, 1392), (77, 3, 4, 5029 - 3 * 1392),
    ]
    answer = b"".join(d[4] for d in sorted(datagrams, key=lambda d: d[1]))
    assert answer == b"VALUE udp-big 0 5000\r\n" + value + b"\r\nEND\r\n"


@pytest.mark.parametrize(
    "datagram",
    [b"", b"\x00\x01\x00", b"\x00\x01\x00\x00\x00\x01\x00\x00",  # 8 bytes or less
     HEADER.pack(1, 0, 2, 0) + b"get x\r\n",  # a multi-datagram request
     HEADER.pack(1, 0, 0, 0) + b"get x\r\n"],
    ids=["empty", "short", "header-only", "count-2", "count-0"],
)
def test_malformed_datagrams_are_dropped_without_harm(udp: UdpClient, udp_server: tuple[Server, int], datagram: bytes) -> None:
    udp.sock.send(datagram)
    assert udp.receive(first=0.5) == []
    assert udp.call(b"version\r\n").startswith(b"VERSION ")
    with socket.create_connection(udp_server[0].address, timeout=5) as tcp:  # TCP unharmed
        tcp.sendall(b"version\r\n")
        assert tcp.recv(100).startswith(b"VERSION ")


def test_binary_and_meta_over_udp(udp: UdpClient) -> None:
    assert udp.call(b"ms udp-meta 2 T0\r\nhi\r\nmg udp-meta v\r\nmn\r\n") == b"HD\r\nVA 2\r\nhi\r\nMN\r\n"
    get = struct.pack(">BBHBBHIIQ", 0x80, 0x00, 8, 0, 0, 0, 8, 0xABCD, 0) + b"udp-meta"
    answer = udp.call(get)
    magic, opcode, _, extras_len, _, status, body, opaque, _ = struct.unpack_from(">BBHBBHIIQ", answer)
    assert (magic, opcode, extras_len, status, body, opaque) == (0x81, 0, 4, 0, 6, 0xABCD)
    assert answer[24:] == b"\x00\x00\x00\x00hi"


def test_keys_of_every_shard(udp: UdpClient, udp_server: tuple[Server, int]) -> None:
    """One client socket reaches one shard; keys the other shard owns are forwarded and the
    answer is still one reply per command, in order."""
    keys = [b"udp-spread-%d" % i for i in range(30)]
    sets = b"".join(b"set %s 0 0 %d\r\n%d\r\n" % (key, len(b"%d" % i), i) for i, key in enumerate(keys))
    assert udp.call(sets) == b"STORED\r\n" * len(keys)
    request = b"".join(b"mg %s v k\r\n" % key for key in keys) + b"mn\r\n"
    expected = b"".join(b"VA %d k%s\r\n%d\r\n" % (len(b"%d" % i), key, i) for i, key in enumerate(keys)) + b"MN\r\n"
    if udp_server[0].kind == "kvshard":
        udp.send(request, request_id=5)
        datagrams = udp.receive()
        # kvshard numbers the whole answer as one sequence
        assert [(d[1], d[2]) for d in datagrams] == [(0, 1)]
        assert datagrams[0][4] == expected
    else:
        assert udp.call(request, request_id=5) == expected


@pytest.mark.parametrize("kind", server_kinds())
@pytest.mark.parametrize("protocol", ["ascii", "binary"])
def test_protocol_binding_is_for_tcp_only(kind: str, protocol: str) -> None:
    """-B binds TCP connections; a datagram's first byte still picks its protocol, as in
    memcached (its UDP reads choose per datagram)."""
    port = free_udp_port()
    ready = answers_binary_version if protocol == "binary" else answers_version
    with start_server(kind, "-U", str(port), "-B", protocol, ready=ready):
        udp = UdpClient(port)
        try:
            assert udp.call(b"version\r\n").startswith(b"VERSION 1.6.18")
            answer = udp.call(struct.pack(">BBHBBHIIQ", 0x80, 0x0B, 0, 0, 0, 0, 0, 0x77, 0))
            assert answer[:2] == b"\x81\x0b" and answer[12:16] == b"\x00\x00\x00\x77"
        finally:
            udp.close()


def test_udp_is_off_by_default(server: Server) -> None:
    """Without -U nothing listens on UDP (the kernel answers port unreachable)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.connect(("127.0.0.1", server.port))
        s.settimeout(2)
        s.send(HEADER.pack(1, 0, 1, 0) + b"version\r\n")
        with pytest.raises((ConnectionRefusedError, socket.timeout)):
            s.recv(100)
