"""Two native stacks joined by the impairment wire, on a simulated clock: many connections,
a large transfer through loss, reordering and duplication, resets, half-close, TIME-WAIT."""

from __future__ import annotations

import asyncio
import hashlib
from typing import Callable

import pytest

from net_backends.native.stack import NativeStack, StackAddress
from net_backends.native.tcp.connection import TIME_WAIT
from net_backends.native.wire import WirePair

TIME_WAIT_SECONDS = 1.0


class Net:
    """Client stack ``a`` (10.0.0.1) and server stack ``b`` (10.0.0.2) on one wire; ``run``
    moves frames and, when nothing moves, the clock (10 ms steps)."""

    def __init__(self, seed: int = 1, **impairments: float) -> None:
        self.now = 0.0
        clock = lambda: self.now  # noqa: E731
        self.pair = WirePair(seed, clock=clock, **impairments)
        self.a = NativeStack(self.pair.a, StackAddress("10.0.0.1", "255.255.255.0"), clock=clock)
        self.b = NativeStack(self.pair.b, StackAddress("10.0.0.2", "255.255.255.0"), clock=clock)
        self.tcp_a = self.a.enable_tcp(time_wait=TIME_WAIT_SECONDS)
        self.tcp_b = self.b.enable_tcp(time_wait=TIME_WAIT_SECONDS)

    def run(self, done: Callable[[], bool], max_seconds: float = 600.0) -> None:
        start = self.now
        while not done():
            assert self.now - start < max_seconds, "the simulation did not finish"
            self.pair.a.flush()
            self.pair.b.flush()
            if not (self.a.poll() | self.b.poll()):
                self.now += 0.01


class Sink(asyncio.Protocol):
    """Hashes what it receives; records the total at EOF; closes its side then."""

    def __init__(self, results: list[tuple[int, str]]) -> None:
        self.results = results
        self.hash = hashlib.sha256()
        self.size = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.hash.update(data)
        self.size += len(data)

    def eof_received(self) -> bool:
        self.results.append((self.size, self.hash.hexdigest()))
        return False


class Sender(asyncio.Protocol):
    def __init__(self, data: bytes, lost: list[Exception | None]) -> None:
        self.data, self.lost = data, lost

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport.write(self.data)  # type: ignore[attr-defined]
        transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost.append(exc)


def test_100_mb_through_loss_reordering_and_duplication() -> None:
    net = Net(11, loss=0.05, reorder=0.05, duplicate=0.01)
    data = bytes(range(256)) * (100_000_000 // 256)
    results: list[tuple[int, str]] = []
    lost: list[Exception | None] = []
    net.tcp_b.listen(9000, lambda: Sink(results))
    net.tcp_a.connect(net.b.address.ip, 9000, lambda: Sender(data, lost))
    net.run(lambda: bool(results and lost) and not net.tcp_a.connections and not net.tcp_b.connections, 3600)
    assert results == [(len(data), hashlib.sha256(data).hexdigest())] and lost == [None]
    assert net.pair.a.dropped_loss > 1000 and net.pair.a.reordered > 1000 and net.pair.a.duplicated > 100
    assert net.a.events("tcp_fast_retransmits") > 0 and net.a.events("tcp_retransmissions") > 0


def test_1000_connections_open_transfer_and_close() -> None:
    net = Net(3)
    results: list[tuple[int, str]] = []
    lost: list[Exception | None] = []
    net.tcp_b.listen(9000, lambda: Sink(results))
    for i in range(1000):
        payload = b"connection %d" % i
        net.tcp_a.connect(net.b.address.ip, 9000, lambda payload=payload: Sender(payload, lost))  # type: ignore[misc]
    net.run(lambda: len(lost) == 1000 and not net.tcp_a.connections and not net.tcp_b.connections)
    expected = sorted((len(b"connection %d" % i), hashlib.sha256(b"connection %d" % i).hexdigest()) for i in range(1000))
    assert sorted(results) == expected and lost == [None] * 1000


def test_refused_and_reset() -> None:
    net = Net(4)
    lost: list[Exception | None] = []
    net.tcp_a.connect(net.b.address.ip, 9999, lambda: Sender(b"x", lost))
    net.run(lambda: bool(lost))
    assert isinstance(lost[0], ConnectionRefusedError) and net.b.drops("tcp_closed_port") == 1

    server_lost: list[Exception | None] = []

    class Aborter(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            transport.abort()

    class Waiter(asyncio.Protocol):
        def connection_lost(self, exc: Exception | None) -> None:
            server_lost.append(exc)

    net.tcp_b.listen(9000, Waiter)
    net.tcp_a.connect(net.b.address.ip, 9000, Aborter)
    net.run(lambda: bool(server_lost) and not net.tcp_b.connections)
    assert isinstance(server_lost[0], ConnectionResetError)


def test_half_close_server_keeps_sending() -> None:
    """The client closes its side first; the server still sends 200 KB, then closes."""
    net = Net(5, loss=0.02)
    reply = bytes(range(256)) * 800
    got: list[bytes] = []
    closed: list[Exception | None] = []

    class Server(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.transport = transport

        def eof_received(self) -> bool:
            self.transport.write(reply)  # type: ignore[attr-defined]
            self.transport.close()
            return True

    class Client(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            transport.write(b"request")  # type: ignore[attr-defined]
            transport.write_eof()  # type: ignore[attr-defined]

        def data_received(self, data: bytes) -> None:
            got.append(data)

        def eof_received(self) -> bool:
            return False

        def connection_lost(self, exc: Exception | None) -> None:
            closed.append(exc)

    net.tcp_b.listen(9000, Server)
    net.tcp_a.connect(net.b.address.ip, 9000, Client)
    net.run(lambda: bool(closed) and not net.tcp_a.connections and not net.tcp_b.connections)
    assert b"".join(got) == reply and closed == [None]


def test_time_wait_holds_the_tuple_then_closes() -> None:
    """The side that closes first waits TIME-WAIT (here 1 s, shortened) before forgetting."""
    net = Net(6)
    results: list[tuple[int, str]] = []
    lost: list[Exception | None] = []
    net.tcp_b.listen(9000, lambda: Sink(results))
    conn = net.tcp_a.connect(net.b.address.ip, 9000, lambda: Sender(b"bye", lost))
    net.run(lambda: conn.state == TIME_WAIT)
    entered = net.now
    gauges = {dict(labels)["state"]: value for name, _, _, labels, value in net.a._registry.collect()
              if name == "native_tcp_connections"}
    assert gauges["TIME-WAIT"] == 1 and sum(gauges.values()) == 1
    assert not net.tcp_b.connections  # the passive closer is gone at its last ACK
    net.run(lambda: not net.tcp_a.connections)
    assert TIME_WAIT_SECONDS <= net.now - entered <= TIME_WAIT_SECONDS + 0.1
    assert results == [(3, hashlib.sha256(b"bye").hexdigest())] and lost == [None]


@pytest.mark.parametrize("seed", range(20, 26))
def test_transfers_survive_many_seeds(seed: int) -> None:
    net = Net(seed, loss=0.05, reorder=0.05, duplicate=0.01, corrupt=0.01)
    data = bytes(range(256)) * 1200
    results: list[tuple[int, str]] = []
    lost: list[Exception | None] = []
    net.tcp_b.listen(9000, lambda: Sink(results))
    net.tcp_a.connect(net.b.address.ip, 9000, lambda: Sender(data, lost))
    net.run(lambda: bool(results and lost) and not net.tcp_a.connections and not net.tcp_b.connections)
    assert results == [(len(data), hashlib.sha256(data).hexdigest())] and lost == [None]


def test_syn_backlog_limit_drops_then_retries_succeed() -> None:
    """A listener with a backlog of 8 connections in SYN-RECEIVED drops the SYNs past it
    (counted); the clients' SYN retransmissions get in later."""
    net = Net(7)
    net.tcp_b.backlog = 8
    results: list[tuple[int, str]] = []
    lost: list[Exception | None] = []
    net.tcp_b.listen(9000, lambda: Sink(results))
    for i in range(50):
        net.tcp_a.connect(net.b.address.ip, 9000, lambda i=i: Sender(b"%d" % i, lost))  # type: ignore[misc]
    net.run(lambda: len(lost) == 50 and not net.tcp_a.connections and not net.tcp_b.connections)
    assert lost == [None] * 50 and len(results) == 50
    assert net.b.drops("tcp_backlog_full") > 0 and net.a.events("tcp_retransmissions") > 0
