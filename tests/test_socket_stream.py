"""net_backends.posix.socket_stream against the Linux kernel's TCP: reads, queued writes and
flow control, closing in every way, end of input, resets, and the listener.

Each test runs a uvloop loop with a :class:`SocketListener` on a loopback port and drives it
with a plain blocking client socket from a worker thread (``to_thread``), so the server side
sees real partial writes and real FIN/RST. It runs compiled and, with KVSHARD_NO_EXTENSIONS=1,
interpreted (scripts/test.sh)."""

from __future__ import annotations

import asyncio
import socket
import struct
from typing import Any, Awaitable, Callable

import pytest
import uvloop

from net_backends.posix import overlaps, resolve_passive
from net_backends.posix.socket_stream import (
    HIGH_WATER, POLL_EVENTS, SocketListener, SocketTransport, listening_sockets, read_poller, shared_sockets,
)


class Recorder:
    """A protocol that records what the transport told it."""

    def __init__(self) -> None:
        self.transport: Any = None
        self.data = bytearray()
        self.events: list[str] = []
        self.lost: list[BaseException | None] = []
        self.lost_fd_open: bool | None = None
        self.got_data = asyncio.Event()
        self.closed = asyncio.Event()
        self.keep_open_on_eof = False
        self.answer: Callable[[bytes], bytes | None] = lambda data: None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        self.events.append("made")

    def data_received(self, data: bytes) -> None:
        assert type(data) is bytes
        self.data += data
        self.got_data.set()
        reply = self.answer(data)
        if reply:
            self.transport.write(reply)

    def eof_received(self) -> bool:
        self.events.append("eof")
        return self.keep_open_on_eof

    def pause_writing(self) -> None:
        self.events.append("pause_writing")

    def resume_writing(self) -> None:
        self.events.append("resume_writing")

    def connection_lost(self, exc: BaseException | None) -> None:
        self.events.append("lost")
        self.lost.append(exc)
        sock = self.transport.get_extra_info("socket")
        self.lost_fd_open = sock.fileno() >= 0
        self.closed.set()


def run(test: Callable[[SocketListener, tuple[str, int], list[Recorder]], Awaitable[None]]) -> None:
    """Run ``test(listener, address, protocols)`` on a fresh uvloop loop."""

    async def main() -> None:
        loop = asyncio.get_running_loop()
        protocols: list[Recorder] = []

        def factory() -> Recorder:
            protocols.append(Recorder())
            return protocols[-1]

        sock = listening_sockets("127.0.0.1", 0, 16)[0]
        listener = SocketListener(loop, sock, factory)
        try:
            await asyncio.wait_for(test(listener, sock.getsockname(), protocols), 20)
        finally:
            listener.close()

    loop = uvloop.new_event_loop()
    try:
        loop.run_until_complete(main())
    finally:
        loop.close()


async def accepted(protocols: list[Recorder], count: int = 1) -> Recorder:
    while len(protocols) < count:
        await asyncio.sleep(0.005)
    return protocols[count - 1]


def client(address: tuple[str, int]) -> socket.socket:
    sock = socket.create_connection(address, timeout=10)
    return sock


def read_all(sock: socket.socket) -> bytes:
    """Everything until the server's FIN."""
    chunks = []
    while True:
        chunk = sock.recv(1 << 16)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


def test_reads_reach_the_protocol_and_writes_the_client() -> None:
    async def body(listener: SocketListener, address: tuple[str, int], protocols: list[Recorder]) -> None:
        sock = client(address)
        proto = await accepted(protocols)
        proto.answer = lambda data: data.upper()
        assert isinstance(proto.transport, SocketTransport)
        assert proto.transport.get_extra_info("peername") == sock.getsockname()
        assert proto.transport.get_extra_info("sockname") == address
        sock.sendall(b"hello")
        assert await asyncio.to_thread(sock.recv, 100) == b"HELLO"
        assert proto.data == b"hello"
        assert proto.transport.get_extra_info("socket").getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
        sock.close()
        await proto.closed.wait()
        assert proto.events == ["made", "eof", "lost"] and proto.lost == [None]

    run(body)


def test_a_write_the_kernel_cannot_take_is_queued_and_sent_in_order() -> None:
    """A client that does not read: the kernel takes part, the rest queues, the protocol is
    asked to pause above the high-water mark and to resume once the queue drained."""
    payload = bytes(range(256)) * (40 * 1024)  # 10 MiB, far beyond both socket buffers

    async def body(listener: SocketListener, address: tuple[str, int], protocols: list[Recorder]) -> None:
        sock = client(address)
        proto = await accepted(protocols)
        proto.transport.write(payload)
        queued = proto.transport.get_write_buffer_size()
        assert HIGH_WATER < queued < len(payload)
        assert proto.events == ["made", "pause_writing"]
        proto.transport.write(b"tail")  # behind the queue, not before it
        assert proto.transport.get_write_buffer_size() == queued + 4
        received = await asyncio.to_thread(recv_exactly, sock, len(payload) + 4)
        assert received == payload + b"tail"
        while proto.transport.get_write_buffer_size():
            await asyncio.sleep(0.005)
        assert proto.events == ["made", "pause_writing", "resume_writing"]
        sock.close()

    run(body)


def test_close_sends_what_is_queued_then_fin() -> None:
    payload = b"x" * (4 << 20)

    async def body(listener: SocketListener, address: tuple[str, int], protocols: list[Recorder]) -> None:
        sock = client(address)
        proto = await accepted(protocols)
        proto.transport.write(payload)
        assert proto.transport.get_write_buffer_size() > 0
        proto.transport.close()
        assert proto.transport.is_closing()
        proto.transport.write(b"dropped")  # after close: dropped, as asyncio drops it
        assert not proto.closed.is_set()  # waits for the queue
        assert await asyncio.to_thread(read_all, sock) == payload
        await proto.closed.wait()
        assert proto.lost == [None] and proto.lost_fd_open
        assert proto.transport.get_extra_info("socket").fileno() == -1  # closed after connection_lost
        sock.close()

    run(body)


def test_abort_drops_the_queue_and_connection_lost_comes_once() -> None:
    async def body(listener: SocketListener, address: tuple[str, int], protocols: list[Recorder]) -> None:
        sock = client(address)
        proto = await accepted(protocols)
        proto.transport.write(b"y" * (8 << 20))
        proto.transport.abort()
        proto.transport.abort()
        proto.transport.close()
        await proto.closed.wait()
        await asyncio.sleep(0.01)
        assert proto.events.count("lost") == 1 and proto.lost == [None]
        received = await asyncio.to_thread(_read_until_error, sock)
        assert len(received) < 8 << 20
        sock.close()

    run(body)


def _read_until_error(sock: socket.socket) -> bytes:
    chunks = []
    try:
        while chunk := sock.recv(1 << 20):
            chunks.append(chunk)
    except ConnectionResetError:
        pass
    return b"".join(chunks)


def test_end_of_input_kept_open_by_the_protocol_can_still_be_written() -> None:
    """eof_received answering True keeps the transport: the reply still goes out (a client
    that half-closes after its last request)."""
    async def body(listener: SocketListener, address: tuple[str, int], protocols: list[Recorder]) -> None:
        sock = client(address)
        proto = await accepted(protocols)
        proto.keep_open_on_eof = True
        sock.sendall(b"last request")
        sock.shutdown(socket.SHUT_WR)
        while "eof" not in proto.events:
            await asyncio.sleep(0.005)
        assert proto.data == b"last request" and not proto.transport.is_reading()
        proto.transport.write(b"answer")
        proto.transport.close()
        assert await asyncio.to_thread(read_all, sock) == b"answer"
        await proto.closed.wait()
        assert proto.events == ["made", "eof", "lost"]
        sock.close()

    run(body)


def test_write_eof_sends_fin_after_the_queue_and_reading_goes_on() -> None:
    async def body(listener: SocketListener, address: tuple[str, int], protocols: list[Recorder]) -> None:
        sock = client(address)
        proto = await accepted(protocols)
        assert proto.transport.can_write_eof()
        proto.transport.write(b"z" * (2 << 20))
        proto.transport.write_eof()
        proto.transport.write(b"not sent")  # after write_eof: dropped
        assert await asyncio.to_thread(read_all, sock) == b"z" * (2 << 20)
        sock.sendall(b"still heard")
        await proto.got_data.wait()
        assert proto.data == b"still heard"
        sock.close()
        await proto.closed.wait()
        assert proto.lost == [None]

    run(body)


def test_a_reset_reaches_connection_lost_as_an_error() -> None:
    async def body(listener: SocketListener, address: tuple[str, int], protocols: list[Recorder]) -> None:
        sock = client(address)
        proto = await accepted(protocols)
        sock.sendall(b"a")
        await proto.got_data.wait()
        proto.transport.write(b"unread by the client")
        await asyncio.sleep(0.05)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()  # unread input and linger 0: RST
        await proto.closed.wait()
        assert isinstance(proto.lost[0], ConnectionResetError)

    run(body)


def test_paused_reading_holds_input_in_the_kernel() -> None:
    async def body(listener: SocketListener, address: tuple[str, int], protocols: list[Recorder]) -> None:
        sock = client(address)
        proto = await accepted(protocols)
        proto.transport.pause_reading()
        assert not proto.transport.is_reading()
        sock.sendall(b"held")
        await asyncio.sleep(0.05)
        assert proto.data == b""
        proto.transport.resume_reading()
        await proto.got_data.wait()
        assert proto.data == b"held"
        sock.close()

    run(body)


def test_the_listener_serves_many_connections_and_close_stops_accepting() -> None:
    async def body(listener: SocketListener, address: tuple[str, int], protocols: list[Recorder]) -> None:
        socks = await asyncio.to_thread(lambda: [client(address) for _ in range(100)])  # beyond the backlog of 16
        await accepted(protocols, 100)
        for number, proto in enumerate(protocols):
            proto.answer = lambda data, number=number: b"%d" % number
        for number, sock in enumerate(socks):
            sock.sendall(b"?")
            assert await asyncio.to_thread(sock.recv, 10) == b"%d" % number
        assert listener.is_serving() and len(listener.sockets) == 1
        listener.close()
        assert not listener.is_serving() and listener.sockets == ()
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(address, timeout=2)
        socks[0].sendall(b"!")  # connections already made go on
        assert await asyncio.to_thread(socks[0].recv, 10) == b"0"
        for sock in socks:
            sock.close()

    run(body)


def test_one_poller_per_loop_reads_every_ready_connection() -> None:
    """All of a loop's connections are in its ReadPoller (the loop watches only the poller's
    descriptor); more ready connections than one poll takes are all served, the rest at the
    next turn; a closed connection leaves the poller."""
    count = POLL_EVENTS + 24

    async def body(listener: SocketListener, address: tuple[str, int], protocols: list[Recorder]) -> None:
        poller = read_poller(asyncio.get_running_loop())
        socks: list[socket.socket] = []
        while len(socks) < count:  # ten at a time: the listener's backlog is 16
            socks += await asyncio.to_thread(lambda: [client(address) for _ in range(10)])
            await accepted(protocols, len(socks))
        watched = poller.watched()
        assert all(any(proto.transport is transport for transport in watched) for proto in protocols)
        for sock in socks:  # every connection ready at once: more than one poll's worth
            sock.sendall(b"ping")
        while sum(len(proto.data) for proto in protocols) < 4 * count:
            await asyncio.sleep(0.005)
        assert all(proto.data == b"ping" for proto in protocols)
        socks[0].close()
        await protocols[0].closed.wait()
        assert not any(transport is protocols[0].transport for transport in poller.watched())
        for sock in socks[1:]:
            sock.close()

    run(body)


def test_listening_sockets_share_the_port_and_report_a_taken_one() -> None:
    first = listening_sockets("127.0.0.1", 0, 8)
    port = first[0].getsockname()[1]
    second = listening_sockets("127.0.0.1", port, 8)  # SO_REUSEPORT: another shard's
    try:
        plain = socket.socket()
        plain.bind(("127.0.0.1", 0))
        taken = plain.getsockname()[1]
        with pytest.raises(OSError, match="error while attempting to bind on address"):
            listening_sockets("127.0.0.1", taken, 8)
        plain.close()
    finally:
        for sock in first + second:
            sock.close()


def test_shared_udp_sockets_on_every_address() -> None:
    """``""``: one socket per address family of the machine, each shareable (SO_REUSEPORT)."""
    first = shared_sockets("", 0, socket.SOCK_DGRAM)
    port = first[0].getsockname()[1]
    try:
        assert {sock.family for sock in first} >= {socket.AF_INET}
        assert all(sock.type == socket.SOCK_DGRAM for sock in first)
        second = shared_sockets("127.0.0.1", port, socket.SOCK_DGRAM)  # another shard's, on one address
        second[0].close()
    finally:
        for sock in first:
            sock.close()


def test_addresses_that_overlap() -> None:
    """What a memcached binding one after the other without SO_REUSEPORT fails on."""
    v4, v6 = socket.AF_INET, socket.AF_INET6
    assert overlaps((v4, "127.0.0.1", 5), (v4, "127.0.0.1", 5))
    assert overlaps((v4, "0.0.0.0", 5), (v4, "127.0.0.1", 5)) and overlaps((v6, "::1", 5), (v6, "::", 5))
    assert not overlaps((v4, "127.0.0.1", 5), (v4, "127.0.0.1", 6))
    assert not overlaps((v4, "127.0.0.1", 5), (v4, "127.0.0.2", 5))
    assert not overlaps((v4, "0.0.0.0", 5), (v6, "::", 5))  # IPv6 sockets are IPv6-only here
    assert resolve_passive("", 5)[0][2] == 5 and (v4, "0.0.0.0", 5) in resolve_passive("", 5)


def recv_exactly(sock: socket.socket, size: int) -> bytes:
    chunks, got = [], 0
    while got < size:
        chunk = sock.recv(min(1 << 20, size - got))
        if not chunk:
            break
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)
