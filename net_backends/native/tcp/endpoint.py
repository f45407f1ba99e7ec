"""The TCP endpoint of one stack: listeners, the connection table, segments in and out, timers.

Theory of operation
-------------------
Receive path: a segment that fails ``parse_tcp`` is dropped under its reason. One that belongs
to a connection (remote address and port, local port) goes to it. Otherwise: a SYN (without ACK
or RST) to a listening port creates a connection in SYN-RECEIVED, unless the port's backlog of
connections not yet established is full (``tcp_backlog_full``, dropped: the peer retries);
anything else but an RST is answered with an RST (RFC 9293 section 3.10.7.1) and counted
(``tcp_closed_port``).

Send path: :meth:`TcpEndpoint.send` builds the segment and hands it to the stack's IPv4 send
path. Timers: :meth:`TcpEndpoint.run_timers` lets every connection check its deadlines; the
stack calls it on every poll and the owner calls it at least every :data:`TIMER_TICK` seconds.
"""

from __future__ import annotations

import asyncio
import random
import time
from typing import TYPE_CHECKING, Callable, Final

from .connection import STATES, TcpConnection
from .isn import IsnGenerator
from .segment import ACK, FIN, NO_OPTIONS, RST, SYN, TcpOptions, TcpSegment, build_tcp, parse_tcp
from .sequence import seq_add
from .transport import NativeTransport

if TYPE_CHECKING:
    from ..stack import NativeStack

__all__ = ["TcpEndpoint", "TIMER_TICK", "TIMER_SCAN", "DEFAULT_BACKLOG", "TIME_WAIT_SECONDS"]

TIMER_TICK: Final = 0.05
TIMER_SCAN: Final = 0.005  # the finest grain of timers other than the delayed ACK
EPHEMERAL_PORTS: Final = (32768, 61000)  # Linux's default ip_local_port_range
DEFAULT_BACKLOG: Final = 1024  # memcached -b default
TIME_WAIT_SECONDS: Final = 60.0  # 2 MSL with MSL = 30 s, as Linux; tests shorten it
_PROTO_TCP: Final = 6

ProtocolFactory = Callable[[], asyncio.Protocol]


class TcpEndpoint:
    def __init__(
        self,
        stack: "NativeStack",
        clock: Callable[[], float] = time.monotonic,
        isn: IsnGenerator | None = None,
        min_rto: float = 0.2,
        time_wait: float = TIME_WAIT_SECONDS,
        max_retries: int = 8,
        backlog: int = DEFAULT_BACKLOG,
    ) -> None:
        self.stack = stack
        self.clock = clock
        self.isn = isn or IsnGenerator(clock=clock)
        self.min_rto = min_rto
        self.time_wait = time_wait
        self.max_retries = max_retries
        self.backlog = backlog
        self.mss = stack.device.mtu - 40
        self.connections: dict[tuple[bytes, int, int], TcpConnection] = {}
        self.listeners: dict[int, ProtocolFactory] = {}
        self._embryonic: dict[int, int] = {}  # port -> connections in SYN-RECEIVED
        self._rng = random.Random()
        self._received = stack.event_counter("tcp_segments_received")
        self._sent = stack.event_counter("tcp_segments_sent")
        self._acks: list[TcpConnection] = []  # connections owing an ACK at the end of this poll
        self._last_scan = float("-inf")
        self.next_delayed_ack: float | None = None  # the earliest delayed-ACK deadline (for the sleeper)
        for state in STATES:  # read at collection time
            stack.gauge(
                "native_tcp_connections", "TCP connections by state", {"state": state},
                lambda state=state: sum(1 for c in self.connections.values() if c.state == state),  # type: ignore[misc]
            )

    def listen(self, port: int, factory: ProtocolFactory) -> None:
        if port in self.listeners:
            raise OSError(f"TCP port {port} is already listening")
        self.listeners[port] = factory

    def count(self, event: str) -> None:
        self.stack.count(event)

    def drop(self, reason: str) -> None:
        self.stack.drop(reason)

    # ----- receive path ---------------------------------------------------------------------

    def receive(self, body: memoryview, src: bytes, dst: bytes) -> None:
        seg = parse_tcp(body, src, dst)
        if type(seg) is str:
            self.stack.drop(seg)
            return
        assert isinstance(seg, TcpSegment)
        self._received.value += 1
        conn = self.connections.get((src, seg.src_port, seg.dst_port))
        if conn is not None:
            conn.handle(seg)
            return
        factory = self.listeners.get(seg.dst_port)
        if factory is not None and seg.flags & (SYN | ACK | RST) == SYN:
            if self._embryonic.get(seg.dst_port, 0) >= self.backlog:
                self.stack.drop("tcp_backlog_full")
                return
            local, remote = (dst, seg.dst_port), (src, seg.src_port)
            iss = self.isn(dst, seg.dst_port, src, seg.src_port)
            conn = TcpConnection(self, local, remote, iss, self.mss, peer_syn=seg)
            self.connections[(src, seg.src_port, seg.dst_port)] = conn
            self._embryonic[seg.dst_port] = self._embryonic.get(seg.dst_port, 0) + 1
            return
        if not seg.flags & RST:
            self.stack.drop("tcp_closed_port")
            self.reset_for(seg, (dst, seg.dst_port), (src, seg.src_port))

    def reset_for(self, seg: TcpSegment, local: tuple[bytes, int], remote: tuple[bytes, int]) -> None:
        """The RST that answers ``seg`` (RFC 9293 section 3.10.7.1)."""
        if seg.flags & ACK:
            seq, ack, flags = seg.ack, 0, RST
        else:
            length = len(seg.payload) + (1 if seg.flags & SYN else 0) + (1 if seg.flags & FIN else 0)
            seq, ack, flags = 0, seq_add(seg.seq, length), RST | ACK
        self.send(local, remote, seq, ack, flags, 0, b"", None)

    # ----- send path ------------------------------------------------------------------------

    def send(
        self, local: tuple[bytes, int], remote: tuple[bytes, int], seq: int, ack: int, flags: int,
        window: int, payload: bytes, options: TcpOptions | None,
    ) -> None:
        """Build a segment and hand it to the IPv4 send path (connections call this directly)."""
        segment = build_tcp(local[0], remote[0], local[1], remote[1], seq, ack, flags, window, payload,
                            options if options is not None else NO_OPTIONS)
        self._sent.value += 1
        self.stack.send_ipv4(remote[0], _PROTO_TCP, segment)

    # ----- connection life ------------------------------------------------------------------

    def connect(
        self, remote_ip: bytes, remote_port: int, factory: ProtocolFactory, local_port: int | None = None,
    ) -> TcpConnection:
        """Active open to ``remote_ip:remote_port`` from ``local_port`` or a free ephemeral
        port; the protocol ``factory()`` makes is connected once the handshake completes
        (``connection_lost`` with ConnectionRefusedError if it is refused)."""
        local_ip = self.stack.address.ip
        if local_port is not None:
            port = local_port
            if (remote_ip, remote_port, port) in self.connections:
                raise OSError(f"TCP port {port} is already connected to that peer")
        else:
            for _ in range(64):
                port = self._rng.randrange(EPHEMERAL_PORTS[0], EPHEMERAL_PORTS[1])
                if (remote_ip, remote_port, port) not in self.connections and port not in self.listeners:
                    break
            else:
                raise OSError("no free ephemeral port")
        iss = self.isn(local_ip, port, remote_ip, remote_port)
        conn = TcpConnection(self, (local_ip, port), (remote_ip, remote_port), iss, self.mss, factory=factory)
        self.connections[(remote_ip, remote_port, port)] = conn
        self.stack.flush()
        return conn

    def established(self, conn: TcpConnection) -> None:
        port = conn.local[1]
        factory = conn.factory
        if factory is None:
            self._embryonic[port] = max(0, self._embryonic.get(port, 0) - 1)
            factory = self.listeners.get(port)
        if factory is None:
            conn.abort()
            return
        transport = NativeTransport(conn, self.stack)
        conn.transport = transport
        transport.start(factory())

    def forget(self, conn: TcpConnection) -> None:
        key = (conn.remote[0], conn.remote[1], conn.local[1])
        if self.connections.get(key) is conn:
            del self.connections[key]
        if conn.transport is None and conn.factory is None:  # a passive open that never completed
            port = conn.local[1]
            self._embryonic[port] = max(0, self._embryonic.get(port, 0) - 1)
        if conn.transport is None and conn.factory is not None:  # an active open that failed
            protocol = conn.factory()
            protocol.connection_lost(conn.close_error)

    def ack_later(self, conn: TcpConnection) -> None:
        self._acks.append(conn)

    def send_pending_acks(self) -> None:
        """The ACKs no outgoing segment carried during this poll: sent now, or delayed."""
        acks, self._acks = self._acks, []
        for conn in acks:
            conn.send_pending_ack()

    def delayed_ack_armed(self, deadline: float) -> None:
        if self.next_delayed_ack is None or deadline < self.next_delayed_ack:
            self.next_delayed_ack = deadline

    def run_timers(self) -> None:
        """Let every connection check its deadlines: when a delayed ACK is due, else at most
        every :data:`TIMER_SCAN` seconds (the stack calls this on every poll, and a busy
        shard polls far more often than any other timer needs)."""
        now = self.clock()
        delayed_ack_due = self.next_delayed_ack is not None and now >= self.next_delayed_ack
        if not delayed_ack_due and now - self._last_scan < TIMER_SCAN:
            return
        self._last_scan = now
        self.next_delayed_ack = None
        for conn in list(self.connections.values()):
            conn.on_timer(now)
            if conn.delack_at is not None:
                self.delayed_ack_armed(conn.delack_at)

    def states(self) -> dict[str, int]:
        """Connections by state (for the metrics)."""
        out: dict[str, int] = {}
        for conn in self.connections.values():
            out[conn.state] = out.get(conn.state, 0) + 1
        return out

    def __repr__(self) -> str:  # pragma: no cover - debugging aid
        return f"<TcpEndpoint {len(self.connections)} connections, listening on {sorted(self.listeners)}>"
