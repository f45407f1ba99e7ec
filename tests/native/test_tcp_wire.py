"""Two native stacks joined by the impairment wire, on a simulated clock: many connections,
a large transfer through loss, reordering and duplication, resets, half-close, TIME-WAIT."""

from __future__ import annotations

import asyncio
import hashlib
from typing import Callable

import pytest

from net_backends.native.stack import NativeStack, StackAddress
from net_backends.native.tcp.connection import CLOSED, ESTABLISHED, RECEIVE_BUFFER, TIME_WAIT, WINDOW_SHIFT, TcpConnection
from net_backends.native.tcp.segment import ACK, FIN, PSH, RST, SYN, TcpOptions, TcpSegment, build_tcp, parse_tcp
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


class _Paused(asyncio.Protocol):
    """Stops reading as soon as it connects; hashes what it gets once reading resumes."""

    def __init__(self, results: list[tuple[int, str]]) -> None:
        self.sink = Sink(results)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        transport.pause_reading()  # type: ignore[attr-defined]

    def data_received(self, data: bytes) -> None:
        self.sink.data_received(data)

    def eof_received(self) -> bool:
        return self.sink.eof_received()


def test_window_scaling_is_negotiated_and_used() -> None:
    """Both SYNs offer the scale, so windows past 64 KiB are used: more than 65535 bytes fly
    at once on a clean wire."""
    net = Net(8)
    data = bytes(range(256)) * 8000  # 2 MB
    results: list[tuple[int, str]] = []
    lost: list[Exception | None] = []
    net.tcp_b.listen(9000, lambda: Sink(results))
    conn = net.tcp_a.connect(net.b.address.ip, 9000, lambda: Sender(data, lost))
    most_in_flight = 0

    def done() -> bool:
        nonlocal most_in_flight
        most_in_flight = max(most_in_flight, conn.flight)
        return bool(results and lost) and not net.tcp_a.connections and not net.tcp_b.connections

    net.run(done)
    assert results == [(len(data), hashlib.sha256(data).hexdigest())] and lost == [None]
    assert conn.snd_shift == WINDOW_SHIFT and conn.rcv_shift == WINDOW_SHIFT
    assert most_in_flight > 65535


def test_a_paused_reader_closes_the_window_and_probes_reopen_it() -> None:
    """A server that does not read: its window fills (what it holds never passes the receive
    buffer), the sender probes the zero window with growing gaps, and when the server reads
    again the window update and the rest of the transfer follow."""
    net = Net(9)
    data = bytes(range(256)) * 4000  # 1 MB, four receive buffers
    results: list[tuple[int, str]] = []
    lost: list[Exception | None] = []
    servers: list[_Paused] = []
    net.tcp_b.listen(9000, lambda: servers.append(_Paused(results)) or servers[-1])  # type: ignore[func-returns-value]
    client = net.tcp_a.connect(net.b.address.ip, 9000, lambda: Sender(data, lost))
    net.run(lambda: net.a.events("tcp_window_probes") >= 3)
    server_transport = servers[0].transport
    # full up to the window's granularity (a window under 2**WINDOW_SHIFT bytes reads as 0)
    assert RECEIVE_BUFFER - (1 << WINDOW_SHIFT) < server_transport.held_size <= RECEIVE_BUFFER  # type: ignore[attr-defined]
    assert client.snd_wnd == 0 and client.flight == 0 and len(client.send_buffer) > 0
    assert results == []
    probes_at = net.now
    net.run(lambda: net.a.events("tcp_window_probes") >= 5, max_seconds=60)
    assert net.now - probes_at > 1.0  # the probe interval doubles
    server_transport.resume_reading()  # type: ignore[attr-defined]
    net.run(lambda: bool(results and lost) and not net.tcp_a.connections and not net.tcp_b.connections)
    assert results == [(len(data), hashlib.sha256(data).hexdigest())] and lost == [None]


def test_zero_window_survives_a_lossy_wire() -> None:
    """The same with 10% loss: a lost window update is repaired by the next probe."""
    net = Net(10, loss=0.1)
    data = bytes(range(256)) * 2000
    results: list[tuple[int, str]] = []
    lost: list[Exception | None] = []
    servers: list[_Paused] = []
    net.tcp_b.listen(9000, lambda: servers.append(_Paused(results)) or servers[-1])  # type: ignore[func-returns-value]
    net.tcp_a.connect(net.b.address.ip, 9000, lambda: Sender(data, lost))
    net.run(lambda: net.a.events("tcp_window_probes") >= 2)
    servers[0].transport.resume_reading()  # type: ignore[attr-defined]
    net.run(lambda: bool(results and lost) and not net.tcp_a.connections and not net.tcp_b.connections)
    assert results == [(len(data), hashlib.sha256(data).hexdigest())] and lost == [None]


def _step(net: Net, seconds: float) -> None:
    """Move frames and the clock in 1 ms steps for ``seconds``."""
    end = net.now + seconds
    while net.now < end:
        net.pair.a.flush()
        net.pair.b.flush()
        net.a.poll()
        net.b.poll()
        net.now += 0.001


def test_delayed_ack_rides_on_the_reply_or_waits_for_its_timer() -> None:
    """A request answered within the delay costs one segment each way (the reply carries the
    ACK); one that is not answered is acknowledged when the delayed-ACK timer runs out; two
    full segments are acknowledged at once."""
    net = Net(12)
    replies: list[bytes] = []

    class Server(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.transport = transport

        def data_received(self, data: bytes) -> None:
            if data.startswith(b"get"):
                self.transport.write(b"VALUE\r\n")  # type: ignore[attr-defined]

    class Client(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.transport = transport

        def data_received(self, data: bytes) -> None:
            replies.append(data)

    net.tcp_b.listen(9000, Server)
    clients: list[Client] = []
    net.tcp_a.connect(net.b.address.ip, 9000, lambda: clients.append(Client()) or clients[-1])  # type: ignore[func-returns-value]
    _step(net, 0.1)
    client = clients[0]

    sent_before = net.b.events("tcp_segments_sent")
    client.transport.write(b"get k\r\n")  # type: ignore[attr-defined]
    _step(net, 0.1)
    assert replies == [b"VALUE\r\n"] and net.b.events("tcp_segments_sent") - sent_before == 1
    assert net.b.events("tcp_delayed_acks") == 0

    sent_before = net.b.events("tcp_segments_sent")
    client.transport.write(b"set k\r\n")  # no reply: the ACK waits for the timer
    _step(net, 0.03)
    assert net.b.events("tcp_segments_sent") == sent_before
    _step(net, 0.02)
    assert net.b.events("tcp_segments_sent") - sent_before == 1 and net.b.events("tcp_delayed_acks") == 1

    sent_before = net.b.events("tcp_segments_sent")
    client.transport.write(b"x" * (2 * net.tcp_a.mss))  # two full segments: acknowledged at once
    _step(net, 0.005)
    assert net.b.events("tcp_segments_sent") - sent_before == 1 and net.b.events("tcp_delayed_acks") == 1


def test_simultaneous_open() -> None:
    """Each side connects to the other's port at the same moment: the SYNs cross, both go
    through SYN-RECEIVED and both connections carry data."""
    net = Net(13)
    got_a: list[bytes] = []
    got_b: list[bytes] = []

    class Peer(asyncio.Protocol):
        def __init__(self, greeting: bytes, got: list[bytes]) -> None:
            self.greeting, self.got = greeting, got

        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            transport.write(self.greeting)  # type: ignore[attr-defined]

        def data_received(self, data: bytes) -> None:
            self.got.append(data)

    conn_a = net.tcp_a.connect(net.b.address.ip, 5001, lambda: Peer(b"from a", got_a), local_port=5000)
    conn_b = net.tcp_b.connect(net.a.address.ip, 5000, lambda: Peer(b"from b", got_b), local_port=5001)
    net.run(lambda: bool(got_a and got_b), max_seconds=10)
    assert got_a == [b"from b"] and got_b == [b"from a"]
    assert conn_a.state == conn_b.state == ESTABLISHED
    assert net.a.events("tcp_simultaneous_opens") == 1 and net.b.events("tcp_simultaneous_opens") == 1


def _raw_peer(net: Net) -> Callable[..., list[TcpSegment]]:
    """Send hand-made segments from a's address through a's end of the wire; return what b
    answers (a's stack is bypassed)."""
    from net_backends.native import ipv4
    from net_backends.native.ethernet import ETHERTYPE_IPV4, HEADER_LEN, build_ethernet

    a_ip, b_ip = net.a.address.ip, net.b.address.ip

    def send(**fields: object) -> list[TcpSegment]:
        segment = build_tcp(a_ip, b_ip, **fields)  # type: ignore[arg-type]
        packet = ipv4.build_ipv4(a_ip, b_ip, ipv4.PROTO_TCP, len(segment), 1) + segment
        net.pair.a.send_burst([build_ethernet(net.b.mac, net.pair.a.mac, ETHERTYPE_IPV4) + packet])
        net.pair.a.flush()
        net.b.poll()
        net.pair.b.flush()
        answers = []
        for frame in net.pair.a.receive_burst(64):
            view = memoryview(frame)[HEADER_LEN:]
            header = ipv4.parse_ipv4(view)
            assert isinstance(header, ipv4.Ipv4Header)
            seg = parse_tcp(view[header.header_len : header.total_len], b_ip, a_ip)
            assert isinstance(seg, TcpSegment)
            answers.append(seg)
        return answers

    return send


@pytest.mark.parametrize("peer_shift", [None, 7])
def test_window_scale_only_when_the_syn_offers_it(peer_shift: int | None) -> None:
    """A SYN without the option gets a SYN-ACK without it and no scaling either way; with it,
    the SYN-ACK offers ours, its window is unscaled, and the peer's later windows are scaled."""
    net = Net(14)
    net.tcp_b.listen(9000, asyncio.Protocol)
    send = _raw_peer(net)
    (syn_ack,) = send(src_port=4000, dst_port=9000, seq=1000, ack=0, flags=SYN, window=512,
                      options=TcpOptions(mss=1460, window_shift=peer_shift))
    assert syn_ack.flags == SYN | ACK and syn_ack.ack == 1001
    assert syn_ack.options.window_shift == (None if peer_shift is None else WINDOW_SHIFT)
    assert syn_ack.window == 0xFFFF  # the buffer is larger than a SYN can say
    conn = net.tcp_b.connections[(net.a.address.ip, 4000, 9000)]
    assert conn.snd_wnd == 512  # a SYN's window is never scaled
    send(src_port=4000, dst_port=9000, seq=1001, ack=syn_ack.seq + 1, flags=ACK, window=512)
    assert conn.state == ESTABLISHED
    assert conn.snd_wnd == 512 << (peer_shift or 0)
    ack = syn_ack.seq + 1
    assert send(src_port=4000, dst_port=9000, seq=1001, ack=ack, flags=ACK | PSH, window=512, payload=b"y" * 1460) == []
    (answer,) = send(src_port=4000, dst_port=9000, seq=2461, ack=ack, flags=ACK | PSH, window=512, payload=b"z" * 1460)
    # two full segments owed: acknowledged at once (the first waited), with the scaled window
    assert answer.ack == 3921 and answer.flags == ACK
    assert answer.window == min(0xFFFF, RECEIVE_BUFFER >> (WINDOW_SHIFT if peer_shift is not None else 0))


def test_time_wait_acknowledges_a_retransmitted_fin_and_restarts() -> None:
    """The server closes first; its peer (hand-made segments) sends its FIN twice, as if our
    ACK were lost: TIME-WAIT acknowledges both and the 2 MSL wait starts over."""

    class Closer(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            transport.close()

    net = Net(15)
    net.tcp_b.listen(9000, Closer)
    send = _raw_peer(net)
    (syn_ack,) = send(src_port=4000, dst_port=9000, seq=1000, ack=0, flags=SYN, window=8000)
    ours = syn_ack.seq + 1
    (fin,) = send(src_port=4000, dst_port=9000, seq=1001, ack=ours, flags=ACK, window=8000)
    assert fin.flags & FIN and fin.seq == ours
    (ack,) = send(src_port=4000, dst_port=9000, seq=1001, ack=ours + 1, flags=FIN | ACK, window=8000)
    conn = net.tcp_b.connections[(net.a.address.ip, 4000, 9000)]
    assert conn.state == TIME_WAIT and ack.ack == 1002
    first_deadline = conn.time_wait_until
    net.now += 0.5
    (again,) = send(src_port=4000, dst_port=9000, seq=1001, ack=ours + 1, flags=FIN | ACK, window=8000)
    assert again.flags == ACK and again.ack == 1002
    assert conn.state == TIME_WAIT and conn.time_wait_until == first_deadline + 0.5


def _server_in_state(state: str) -> tuple[Net, Callable[..., list[TcpSegment]], TcpConnection, int, int]:
    """A server connection of stack b driven into ``state`` by hand-made peer segments;
    returns (net, send, connection, the peer's next sequence number, our next one)."""
    close_at_start = state in ("FIN-WAIT-1", "FIN-WAIT-2", "CLOSING", "TIME-WAIT")

    class Server(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.transport = transport
            if close_at_start:
                transport.close()

        def eof_received(self) -> bool:
            return state != "LAST-ACK"  # LAST-ACK: close when the peer does

    net = Net(16)
    net.tcp_b.listen(9000, Server)
    send = _raw_peer(net)
    (syn_ack,) = send(src_port=4000, dst_port=9000, seq=1000, ack=0, flags=SYN, window=8000)
    conn = net.tcp_b.connections[(net.a.address.ip, 4000, 9000)]
    peer, ours = 1001, syn_ack.seq + 1
    if state != "SYN-RECEIVED":
        send(src_port=4000, dst_port=9000, seq=peer, ack=ours, flags=ACK, window=8000)
    if close_at_start:
        ours += 1  # our FIN
        if state in ("FIN-WAIT-2", "TIME-WAIT"):
            send(src_port=4000, dst_port=9000, seq=peer, ack=ours, flags=ACK, window=8000)
        if state in ("CLOSING", "TIME-WAIT"):
            send(src_port=4000, dst_port=9000, seq=peer, ack=ours - (state == "CLOSING"), flags=FIN | ACK, window=8000)
            peer += 1
    elif state in ("CLOSE-WAIT", "LAST-ACK"):
        send(src_port=4000, dst_port=9000, seq=peer, ack=ours, flags=FIN | ACK, window=8000)
        peer += 1
        ours += state == "LAST-ACK"
    assert conn.state == state
    return net, send, conn, peer, ours


_ALL_SERVER_STATES = ["SYN-RECEIVED", "ESTABLISHED", "CLOSE-WAIT", "LAST-ACK", "FIN-WAIT-1", "FIN-WAIT-2", "CLOSING", "TIME-WAIT"]


@pytest.mark.parametrize("state", _ALL_SERVER_STATES)
def test_rst_in_every_state(state: str) -> None:
    """An RST inside the window closes the connection in every state; one outside it is
    dropped without an answer (RFC 9293 section 3.10.7.4) and the connection stays."""
    net, send, conn, peer, ours = _server_in_state(state)
    assert send(src_port=4000, dst_port=9000, seq=peer + 100_000_000, ack=ours, flags=RST | ACK, window=8000) == []
    assert conn.state == state and net.b.drops("tcp_unacceptable") == 1
    send(src_port=4000, dst_port=9000, seq=peer, ack=ours, flags=RST | ACK, window=8000)
    assert conn.state == CLOSED and (net.a.address.ip, 4000, 9000) not in net.tcp_b.connections
    assert net.b.events("tcp_resets_received") == 1


@pytest.mark.parametrize("state", ["ESTABLISHED", "FIN-WAIT-1", "FIN-WAIT-2"])
def test_fin_in_the_states_that_take_one(state: str) -> None:
    """The peer's FIN moves ESTABLISHED to CLOSE-WAIT, FIN-WAIT-1 to CLOSING and FIN-WAIT-2
    to TIME-WAIT, and is acknowledged."""
    net, send, conn, peer, ours = _server_in_state(state)
    answers = send(src_port=4000, dst_port=9000, seq=peer, ack=ours - (state == "FIN-WAIT-1"), flags=FIN | ACK, window=8000)
    assert answers and answers[-1].ack == peer + 1
    assert conn.state == {"ESTABLISHED": "CLOSE-WAIT", "FIN-WAIT-1": "CLOSING", "FIN-WAIT-2": "TIME-WAIT"}[state]
