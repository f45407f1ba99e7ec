"""A TCP connection (RFC 9293): the transmission control block and one handler per state.

Theory of operation
-------------------
A connection is created by the listener when a SYN arrives for a listening port (passive
open: it starts in SYN-RECEIVED, having sent SYN-ACK), or by ``connect`` (active open: it
starts in SYN-SENT, having sent SYN). Its states and the events that move it:

    SYN-SENT      --SYN-ACK acknowledging our SYN-->  ESTABLISHED (our ACK sent; app told)
                  --acceptable RST-->                 CLOSED (connection refused)
    SYN-RECEIVED  --ACK of our SYN-->                 ESTABLISHED (the application is told)
    ESTABLISHED   --FIN from the peer-->              CLOSE-WAIT  (the application sees EOF)
                  --close() and our FIN sent-->       FIN-WAIT-1
    CLOSE-WAIT    --close() and our FIN sent-->       LAST-ACK
    FIN-WAIT-1    --ACK of our FIN-->                 FIN-WAIT-2
                  --FIN from the peer-->              CLOSING
    FIN-WAIT-2    --FIN from the peer-->              TIME-WAIT
    CLOSING       --ACK of our FIN-->                 TIME-WAIT
    LAST-ACK      --ACK of our FIN-->                 CLOSED
    TIME-WAIT     --2 MSL pass-->                     CLOSED
    any           --acceptable RST, or abort()-->     CLOSED

Each state has its handler (``_in_syn_sent``, ``_in_syn_received``, ``_in_established`` for the
states that take data, ``_in_peer_closed`` once the peer's FIN is in, ``_in_time_wait``), picked
by :meth:`TcpConnection.handle` from a table; TIME-WAIT answers a retransmitted FIN with its ACK
again and restarts the 2 MSL wait. Rules every synchronized state keeps (RFC 9293 section
3.10.7.4, in this order, :meth:`TcpConnection._checks`): a segment must be
acceptable (some of it inside the receive window, or an empty segment at ``rcv_nxt``), else it
is answered with an ACK and dropped (``tcp_unacceptable``); an RST inside the window closes
the connection (reset); a SYN on a synchronized connection is answered with a challenge ACK;
an ACK that acknowledges something not yet sent is answered with an ACK and dropped. Then the
ACK field advances ``snd_una`` (taking an RTT sample from a segment sent once: Karn), the
payload at ``rcv_nxt`` is delivered in order (a segment beyond a hole waits, at most
:data:`MAX_OUT_OF_ORDER` of them), and a FIN at ``rcv_nxt`` is taken.

Sending: ``write`` appends to the send buffer; :meth:`TcpConnection.push` sends what the peer's
window and the congestion window allow, in segments of at most the MSS. Every byte sent and not
acknowledged is kept; when the retransmission timer (RFC 6298) expires, everything from
``snd_una`` on is sent again as the (collapsed) congestion window allows (go-back-N); three
duplicate ACKs resend the first unacknowledged segment, and in recovery each partial ACK the
next one (NewReno). A connection whose retransmissions back off :attr:`max_retries` times is
aborted (TimeoutError). The peer's window is taken only from segments newer than the one that
last set it (SND.WL1/WL2). When it is zero, data waits and nothing is in flight, the persist
timer sends zero-window probes (an ACK one below ``snd_una``, which any peer answers with its
window) at RTO, doubling to :data:`PERSIST_MAX`, for as long as the peer answers.

Windows (RFC 7323 section 2): both SYNs carry the window-scale option or neither scales. We
offer :data:`WINDOW_SHIFT`; windows in SYNs are never scaled. The receive window is the room left
in :data:`RECEIVE_BUFFER` by data the application has not taken (the transport holds it while
reading is paused), so a reader that stops reading ends at a zero window; when it takes the
data, a window update goes out once the window has grown by two segments or half the buffer.

Acknowledgements (RFC 9293 section 3.8.6.3, RFC 5681 section 4.2): a segment we send carries
the ACK (the reply to a request, usually, so a request/response exchange costs two segments).
Data not acknowledged that way by the end of the stack's poll is acknowledged then if two full
segments (or a FIN) are owed, else when the delayed-ACK timer (:data:`DELAYED_ACK`) runs out;
an out-of-order or duplicate segment is acknowledged at once (the duplicate ACK fast
retransmit needs). Sequence numbers are compared by ``sequence.py``'s rules; the per-segment
path inlines the same modulo-2**32 arithmetic where a call would show in profiles.

Simultaneous open (RFC 9293 figure 8): a SYN without ACK in SYN-SENT moves to SYN-RECEIVED and
answers with a SYN-ACK; the crossing SYN-ACKs are each unacceptable to the other side, whose
ACK completes the handshake.

Not here: timestamps (RFC 7323 section 3; RTT samples follow Karn's rule instead, and we offer
no timestamps option, so peers send none) and SACK (RFC 2018).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Final

from .congestion import NewReno
from .rto import RtoEstimator
from .segment import ACK, FIN, PSH, RST, SYN, TcpOptions, TcpSegment
from .sequence import seq_add, seq_diff, seq_ge, seq_gt, seq_in_window, seq_le, seq_lt

if TYPE_CHECKING:
    from .endpoint import TcpEndpoint

__all__ = [
    "TcpConnection", "SYN_SENT", "SYN_RECEIVED", "ESTABLISHED", "CLOSE_WAIT", "FIN_WAIT_1", "FIN_WAIT_2",
    "CLOSING", "LAST_ACK", "TIME_WAIT", "CLOSED", "STATES", "MAX_OUT_OF_ORDER", "RECEIVE_BUFFER", "WINDOW_SHIFT",
    "DELAYED_ACK", "PERSIST_MAX",
]

SYN_SENT: Final = "SYN-SENT"
SYN_RECEIVED: Final = "SYN-RECEIVED"
ESTABLISHED: Final = "ESTABLISHED"
CLOSE_WAIT: Final = "CLOSE-WAIT"
FIN_WAIT_1: Final = "FIN-WAIT-1"
FIN_WAIT_2: Final = "FIN-WAIT-2"
CLOSING: Final = "CLOSING"
LAST_ACK: Final = "LAST-ACK"
TIME_WAIT: Final = "TIME-WAIT"
CLOSED: Final = "CLOSED"

MAX_OUT_OF_ORDER: Final = 256
RECEIVE_BUFFER: Final = 256 * 1024  # what the receive window can offer (data held while reading is paused counts)
WINDOW_SHIFT: Final = 3  # the scale we offer: RECEIVE_BUFFER >> 3 fits the 16-bit field (RFC 7323)
DELAYED_ACK: Final = 0.04  # the longest an ACK waits for a segment to ride on (Linux's minimum; RFC 9293: < 0.5 s)
PERSIST_MAX: Final = 60.0  # the longest interval between zero-window probes
STATES: Final = (SYN_SENT, SYN_RECEIVED, ESTABLISHED, CLOSE_WAIT, FIN_WAIT_1, FIN_WAIT_2, CLOSING, LAST_ACK, TIME_WAIT)
_RECEIVING: Final = frozenset((ESTABLISHED, FIN_WAIT_1, FIN_WAIT_2))  # states that take data
_CONTROL: Final = SYN | RST | FIN
_SYNCHRONIZED: Final = frozenset((ESTABLISHED, CLOSE_WAIT, FIN_WAIT_1, FIN_WAIT_2, CLOSING, LAST_ACK, TIME_WAIT))


class TcpConnection:
    """One connection's TCB. The endpoint feeds it segments and timer expiries; it calls the
    endpoint to emit segments and the application's callbacks (via its transport)."""

    def __init__(
        self, endpoint: "TcpEndpoint", local: tuple[bytes, int], remote: tuple[bytes, int],
        iss: int, mss: int, peer_syn: TcpSegment | None = None,
        factory: Callable[[], Any] | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.local = local
        self.remote = remote
        self.factory = factory  # the protocol of an active open (a listener's otherwise)
        self.state = SYN_RECEIVED if peer_syn is not None else SYN_SENT
        # send side
        self.iss = iss
        self.snd_una = iss
        self.snd_nxt = seq_add(iss, 1)  # our SYN
        self.snd_wnd = peer_syn.window if peer_syn is not None else 0  # a SYN's window is never scaled
        self.snd_wl1 = peer_syn.seq if peer_syn is not None else 0  # the segment that last set snd_wnd
        self.snd_wl2 = iss
        # window scaling is on when both SYNs carry the option (RFC 7323 section 2.2)
        peer_shift = peer_syn.options.window_shift if peer_syn is not None else None
        self.snd_shift = peer_shift or 0
        self.rcv_shift = WINDOW_SHIFT if peer_syn is None or peer_shift is not None else 0
        self.our_mss = mss
        self.mss = min(mss, peer_syn.options.mss or 536) if peer_syn is not None else mss
        self.send_buffer = bytearray()  # bytes from snd_una on (sent or not); SYN/FIN not in it
        self.fin_queued = False  # close() asked: a FIN follows the buffered data
        self.fin_sent = False  # our FIN is inside [snd_una, snd_nxt)
        self.fin_seq: int | None = None  # where our FIN is, once sent
        self.snd_max = self.snd_nxt  # the highest sequence number sent so far (snd_nxt goes back after a timeout)
        # receive side
        self.irs = peer_syn.seq if peer_syn is not None else 0
        self.rcv_nxt = seq_add(peer_syn.seq, 1) if peer_syn is not None else 0
        self.rcv_adv = 0  # the window last advertised (bytes, after scaling)
        self.out_of_order: dict[int, tuple[bytes, bool]] = {}  # seq -> (payload, fin)
        # timers and control
        self.rto = RtoEstimator(endpoint.min_rto)
        self.congestion = NewReno(self.mss)
        self.retransmit_at: float | None = None
        self.timed: tuple[int, float] | None = None  # (seq acked by the sample, time sent)
        self.time_wait_until: float | None = None
        self.transport: Any = None  # set by the endpoint once ESTABLISHED
        self.close_error: Exception | None = None  # why it closed (None: an orderly close)
        self.ack_pending = False  # received data awaits an ACK (see _ack_soon)
        self.ack_quickly = False  # ... and it is not to be delayed past this poll
        self.ack_queued = False  # on the endpoint's list for the end of this poll
        self.unacked_bytes = 0  # received since our last ACK
        self.delack_at: float | None = None  # the delayed-ACK deadline
        self.persist_at: float | None = None  # the next zero-window probe
        self.persist_interval = 0.0
        self.on_closed: Callable[["TcpConnection"], None] | None = None
        self._send_syn()
        self._arm_retransmit()

    def _send_syn(self) -> None:
        flags = SYN | ACK if self.state == SYN_RECEIVED else SYN
        shift = self.rcv_shift if self.state == SYN_RECEIVED else WINDOW_SHIFT
        self._emit(flags, self.iss, options=TcpOptions(mss=self.our_mss, window_shift=shift if self.rcv_shift else None))

    @property
    def rcv_wnd(self) -> int:
        """Room in the receive buffer: what the application has not taken yet is held there."""
        transport = self.transport
        return RECEIVE_BUFFER - transport.held_size if transport is not None else RECEIVE_BUFFER

    # ----- output ------------------------------------------------------------------------

    def _emit(self, flags: int, seq: int, payload: bytes = b"", options: TcpOptions | None = None) -> None:
        ack = self.rcv_nxt if flags & ACK else 0
        if flags & ACK:  # this segment carries the acknowledgement
            self.ack_pending = self.ack_quickly = False
            self.unacked_bytes = 0
            self.delack_at = None
        if flags & SYN:
            window = min(self.rcv_wnd, 0xFFFF)  # never scaled in a SYN
        else:
            window = min(self.rcv_wnd >> self.rcv_shift, 0xFFFF)
        self.rcv_adv = window << self.rcv_shift
        self.endpoint.send(self.local, self.remote, seq, ack, flags, window, payload, options)

    def _ack_now(self) -> None:
        self._emit(ACK, self.snd_nxt)

    def _ack_soon(self, received: int, quickly: bool) -> None:
        """Received data (or a FIN) is owed an ACK. A segment we send meanwhile (the reply,
        most often) carries it; else it goes out at the end of the poll when ``quickly`` or
        when two full segments are owed, and after at most :data:`DELAYED_ACK` otherwise."""
        self.unacked_bytes += received
        self.ack_quickly = self.ack_quickly or quickly
        self.ack_pending = True
        if not self.ack_queued:
            self.ack_queued = True
            self.endpoint.ack_later(self)

    def send_pending_ack(self) -> None:
        """The end of a poll: send the ACK owed, or start the delayed-ACK timer."""
        self.ack_queued = False
        if not self.ack_pending or self.state == CLOSED:
            return
        if self.ack_quickly or self.unacked_bytes >= 2 * self.mss:
            self._ack_now()
        elif self.delack_at is None:
            self.delack_at = self.endpoint.clock() + DELAYED_ACK
            self.endpoint.delayed_ack_armed(self.delack_at)

    def window_opened(self) -> None:
        """The application took held data: tell the peer once the window has grown enough to
        be worth a segment (RFC 9293 section 3.8.6.2.2: by two segments or half the buffer)."""
        if self.state in _SYNCHRONIZED and self.rcv_wnd - self.rcv_adv >= min(RECEIVE_BUFFER // 2, 2 * self.mss):
            self._ack_now()

    def _arm_retransmit(self) -> None:
        self.retransmit_at = self.endpoint.clock() + self.rto.rto

    @property
    def flight(self) -> int:
        return seq_diff(self.snd_nxt, self.snd_una)

    def write(self, data: bytes) -> None:
        if self.fin_queued or self.state not in (ESTABLISHED, CLOSE_WAIT, SYN_RECEIVED):
            return
        self.send_buffer += data
        self.push()

    def close(self) -> None:
        """Send a FIN after the buffered data (half-close: receiving goes on)."""
        if self.fin_queued or self.state not in (ESTABLISHED, CLOSE_WAIT, SYN_RECEIVED):
            return
        self.fin_queued = True
        self.push()

    def abort(self, error: Exception | None = None) -> None:
        if self.state in _SYNCHRONIZED or self.state == SYN_RECEIVED:
            self._emit(RST | ACK, self.snd_nxt)
        elif self.state == SYN_SENT:
            self._emit(RST, self.snd_nxt)
        self._enter_closed(error)

    def push(self) -> None:
        """Send new data (and the FIN) as far as the windows allow; with data waiting, nothing
        in flight and a zero window, start probing the window."""
        state = self.state
        if state == SYN_RECEIVED or state == SYN_SENT:
            return  # data waits for the handshake
        if self.snd_wnd:
            self.persist_at = None
        if self.fin_sent:
            return  # the FIN went after all the data: nothing is left to send (a timeout resends)
        buffer = self.send_buffer
        flight = sent_offset = (self.snd_nxt - self.snd_una) & 0xFFFFFFFF  # snd_nxt is never behind snd_una
        if sent_offset >= len(buffer) and not self.fin_queued:
            return  # nothing new (the common case: an ACK arrived)
        window = min(self.snd_wnd, self.congestion.cwnd)
        mss = self.mss
        while True:
            unsent = len(buffer) - sent_offset
            room = window - flight
            if unsent <= 0 or room <= 0:
                break
            size = min(unsent, room, mss)
            chunk = bytes(buffer[sent_offset : sent_offset + size]) if size < len(buffer) else bytes(buffer)
            snd_nxt = self.snd_nxt
            if self.timed is None:
                self.timed = (seq_add(snd_nxt, size), self.endpoint.clock())
            self._emit(ACK | PSH, snd_nxt, chunk)
            self.snd_nxt = snd_nxt = (snd_nxt + size) & 0xFFFFFFFF
            if seq_gt(snd_nxt, self.snd_max):
                self.snd_max = snd_nxt
            sent_offset += size
            flight += size
            if self.retransmit_at is None:
                self._arm_retransmit()
        if self.fin_queued and not self.fin_sent and sent_offset >= len(self.send_buffer):
            self._emit(FIN | ACK, self.snd_nxt)
            self.fin_seq = self.snd_nxt
            self.snd_nxt = seq_add(self.snd_nxt, 1)
            if seq_gt(self.snd_nxt, self.snd_max):
                self.snd_max = self.snd_nxt
            self.fin_sent = True
            if self.state == ESTABLISHED:
                self.state = FIN_WAIT_1
            elif self.state == CLOSE_WAIT:
                self.state = LAST_ACK
            if self.retransmit_at is None:
                self._arm_retransmit()
        if not self.snd_wnd and self.persist_at is None and self.flight == 0 and len(self.send_buffer) > sent_offset:
            self.persist_interval = self.rto.rto
            self.persist_at = self.endpoint.clock() + self.persist_interval

    def _retransmit_first(self) -> None:
        """Resend the oldest unacknowledged thing: SYN-ACK, a data segment, or the FIN."""
        if self.state in (SYN_RECEIVED, SYN_SENT):
            self._send_syn()
            return
        if self.send_buffer:
            chunk = bytes(self.send_buffer[: self.mss])
            self._emit(ACK | PSH, self.snd_una, chunk)
        elif self.fin_sent:
            self._emit(FIN | ACK, self.snd_una)

    def on_timer(self, now: float) -> None:
        if self.time_wait_until is not None and now >= self.time_wait_until:
            self._enter_closed(None)
            return
        if self.delack_at is not None and now >= self.delack_at:
            self.endpoint.count("tcp_delayed_acks")
            self._ack_now()
        if self.persist_at is not None and now >= self.persist_at:
            # a zero-window probe: an old sequence number, so the peer answers with an ACK that
            # carries its window whatever that window is; probing goes on while it answers
            # (RFC 1122 section 4.2.2.17), the interval doubling up to PERSIST_MAX
            self.endpoint.count("tcp_window_probes")
            self._emit(ACK, seq_add(self.snd_una, -1))
            self.persist_interval = min(PERSIST_MAX, self.persist_interval * 2)
            self.persist_at = now + self.persist_interval
        if self.retransmit_at is not None and now >= self.retransmit_at:
            if self.rto.backoffs >= self.endpoint.max_retries:
                self.endpoint.count("tcp_timeouts")
                self.abort(TimeoutError("connection timed out"))
                return
            self.endpoint.count("tcp_retransmissions")
            self.congestion.on_timeout(self.flight)
            self.timed = None  # Karn: nothing retransmitted is timed
            self.rto.back_off()
            if self.state in (SYN_RECEIVED, SYN_SENT):
                self._send_syn()
            else:
                # go back N: everything after snd_una is sent again as the window opens
                self.snd_nxt = self.snd_una
                self.fin_sent = False
                self.push()
            self._arm_retransmit()

    # ----- input -------------------------------------------------------------------------

    def handle(self, seg: TcpSegment) -> None:
        """A segment for this connection: its state's handler takes it."""
        _HANDLERS[self.state](self, seg)

    def _checks(self, seg: TcpSegment) -> bool:
        """RFC 9293 section 3.10.7.4's first steps for a synchronized (or SYN-RECEIVED)
        connection: acceptability, RST, SYN, and an ACK being there; False if that is the end
        of the segment."""
        flags = seg.flags
        length = len(seg.payload) + (1 if flags & SYN else 0) + (1 if flags & FIN else 0)
        if not self._acceptable(seg.seq, length):
            self.endpoint.drop("tcp_unacceptable")
            if not flags & RST:
                self._ack_now()
            return False
        if flags & RST:
            self.endpoint.count("tcp_resets_received")
            self._enter_closed(ConnectionResetError("connection reset by peer"))
            return False
        if flags & SYN:
            if self.state == SYN_RECEIVED and seg.seq == self.irs:
                self._retransmit_first()  # the peer did not see our SYN-ACK
            else:
                self._ack_now()  # challenge ACK (RFC 5961)
            return False
        return bool(flags & ACK)

    def _in_closed(self, seg: TcpSegment) -> None:
        """CLOSED: the endpoint is about to forget us; nothing is taken."""

    def _in_syn_received(self, seg: TcpSegment) -> None:
        """SYN-RECEIVED: our SYN-ACK is out; the ACK of it establishes the connection (and
        the segment may carry data already)."""
        if not self._checks(seg):
            return
        ack = seg.ack
        if not (seq_lt(self.snd_una, ack) and seq_le(ack, self.snd_nxt)):
            self.endpoint.reset_for(seg, self.local, self.remote)
            return
        self.snd_una = ack
        self._update_window(seg)
        self.retransmit_at = None
        self.rto.backoffs = 0
        self.state = ESTABLISHED
        self.endpoint.established(self)
        self.push()
        if self._on_ack(seg) and self.state in _RECEIVING:
            self._receive_data(seg)

    def _in_established(self, seg: TcpSegment) -> None:
        """ESTABLISHED, FIN-WAIT-1 and FIN-WAIT-2: ACKs, data and the peer's FIN."""
        flags = seg.flags
        if not (not flags & _CONTROL and flags & ACK and seg.seq == self.rcv_nxt and (not seg.payload or self.rcv_wnd)):
            # not the common case, acceptable at a glance (the next data or a pure ACK, no
            # SYN, RST or FIN, and room for it): the full checks
            if not self._checks(seg):
                return
        if self._on_ack(seg) and self.state in _RECEIVING:
            self._receive_data(seg)

    def _in_peer_closed(self, seg: TcpSegment) -> None:
        """CLOSE-WAIT, CLOSING and LAST-ACK: the peer's FIN is in, so only the ACK field
        matters (it may acknowledge our data and FIN)."""
        if self._checks(seg):
            self._on_ack(seg)

    def _in_time_wait(self, seg: TcpSegment) -> None:
        """TIME-WAIT: a retransmitted FIN (our last ACK was lost) is acknowledged again and
        the 2 MSL wait starts over; anything else gets the usual checks."""
        if seg.flags & FIN and not seg.flags & RST and seq_add(seg.seq, len(seg.payload) + 1) == self.rcv_nxt:
            self._ack_now()
            self.time_wait_until = self.endpoint.clock() + self.endpoint.time_wait
            return
        if self._checks(seg):
            self._on_ack(seg)

    def _in_syn_sent(self, seg: TcpSegment) -> None:
        """RFC 9293 section 3.10.7.3: our SYN is out; wait for the SYN-ACK."""
        ack_ok = bool(seg.flags & ACK) and seq_lt(self.iss, seg.ack) and seq_le(seg.ack, self.snd_nxt)
        if seg.flags & ACK and not ack_ok:
            if not seg.flags & RST:
                self.endpoint.reset_for(seg, self.local, self.remote)
            return
        if seg.flags & RST:
            if ack_ok:
                self.endpoint.count("tcp_connections_refused")
                self._enter_closed(ConnectionRefusedError("connection refused"))
            return
        if not seg.flags & SYN:
            return
        self.irs = seg.seq
        self.rcv_nxt = seq_add(seg.seq, 1)
        self.snd_wnd = seg.window  # unscaled in a SYN
        self.snd_wl1 = seg.seq
        self.mss = min(self.our_mss, seg.options.mss or 536)
        self.congestion = NewReno(self.mss)
        if seg.options.window_shift is not None:
            self.snd_shift = seg.options.window_shift
        else:
            self.snd_shift = self.rcv_shift = 0
        if not ack_ok:
            # simultaneous open (RFC 9293 figure 8): the peer's SYN crossed ours; answer with
            # a SYN-ACK and wait for its ACK in SYN-RECEIVED
            self.state = SYN_RECEIVED
            self.endpoint.count("tcp_simultaneous_opens")
            self._send_syn()
            return
        self.snd_una = seg.ack
        self.snd_wl2 = seg.ack
        self.retransmit_at = None
        self.rto.backoffs = 0
        self.state = ESTABLISHED
        self._ack_now()
        self.endpoint.established(self)
        self.push()

    def _acceptable(self, seq: int, length: int) -> bool:
        window = self.rcv_wnd
        if window == 0:
            return length == 0 and seq == self.rcv_nxt
        if length == 0:
            return seq_in_window(seq, self.rcv_nxt, window)
        end = seq_add(seq, length - 1)
        return seq_in_window(seq, self.rcv_nxt, window) or seq_in_window(end, self.rcv_nxt, window)

    def _on_ack(self, seg: TcpSegment) -> bool:
        """Process the ACK field of a synchronized connection; False if the segment is to be
        dropped."""
        ack = seg.ack
        if ack != self.snd_nxt:
            if seq_gt(ack, self.snd_max):
                self._ack_now()  # acknowledges something never sent
                return False
            if seq_gt(ack, self.snd_nxt):  # after going back N: the peer had it all along
                self.snd_nxt = ack
                self.fin_sent = self.fin_seq is not None and seq_gt(ack, self.fin_seq)
        acked = (ack - self.snd_una) & 0xFFFFFFFF
        if 0 < acked < 0x80000000:  # ack after snd_una: new data acknowledged
            fin_acked = self.fin_seq is not None and ack == seq_add(self.fin_seq, 1)
            data_acked = acked - fin_acked
            buffer = self.send_buffer
            del buffer[:data_acked]
            self.snd_una = ack
            timed = self.timed
            if timed is not None and seq_ge(ack, timed[0]):
                self.rto.sample(self.endpoint.clock() - timed[1])
                self.timed = None
            flight = (self.snd_nxt - ack) & 0xFFFFFFFF
            if self.congestion.on_new_ack(data_acked, flight, ack):
                self._retransmit_first()  # a partial ACK in recovery: the next hole
            self.retransmit_at = None if flight == 0 else self.endpoint.clock() + self.rto.rto
            self._update_window(seg)
            if fin_acked:
                self._our_fin_acked()
                if self.state == CLOSED:
                    return False
            if len(buffer) > flight or self.fin_queued or self.persist_at is not None:
                self.push()  # something may wait for the room this ACK made
        elif ack == self.snd_una:
            window = seg.window << self.snd_shift
            if len(seg.payload) == 0 and not seg.flags & FIN and window == self.snd_wnd and self.flight > 0:
                if self.congestion.on_duplicate_ack(self.flight, self.snd_nxt):
                    self.endpoint.count("tcp_fast_retransmits")
                    self._retransmit_first()
            self._update_window(seg)
            self.push()
        return True

    def _update_window(self, seg: TcpSegment) -> None:
        """Take the peer's window from ``seg`` unless an older segment than the one that last
        set it (RFC 9293 section 3.10.7.4: SND.WL1 and SND.WL2)."""
        wl1, seq = self.snd_wl1, seg.seq
        if 0 < ((seq - wl1) & 0xFFFFFFFF) < 0x80000000 or (wl1 == seq and seq_le(self.snd_wl2, seg.ack)):
            self.snd_wnd = seg.window << self.snd_shift
            self.snd_wl1 = seg.seq
            self.snd_wl2 = seg.ack

    def _our_fin_acked(self) -> None:
        if self.state == FIN_WAIT_1:
            self.state = FIN_WAIT_2
        elif self.state == CLOSING:
            self._enter_time_wait()
        elif self.state == LAST_ACK:
            self._enter_closed(None)

    def _receive_data(self, seg: TcpSegment) -> None:
        fin = bool(seg.flags & FIN)
        seq = seg.seq
        if seq == self.rcv_nxt and not self.out_of_order:  # in order with no hole: the common case
            if not seg.payload and not fin:
                return
            data = bytes(seg.payload)
            self.rcv_nxt = (seq + len(data) + fin) & 0xFFFFFFFF
            self._ack_soon(len(data), fin)
            if data and self.transport is not None:
                self.transport.deliver(data)
            if fin:
                self._peer_fin()
            return
        payload = bytes(seg.payload)
        if seq_lt(seq, self.rcv_nxt):  # the start was received already: trim it
            skip = seq_diff(self.rcv_nxt, seq)
            if skip > len(payload) or (skip == len(payload) and not fin):
                self._ack_now()  # all of it was received before: say where we are
                return
            payload, seq = payload[skip:], self.rcv_nxt
        if seq != self.rcv_nxt:
            if len(self.out_of_order) < MAX_OUT_OF_ORDER:
                self.out_of_order.setdefault(seq, (payload, fin))
            else:
                self.endpoint.drop("tcp_out_of_order_full")
            self._ack_now()  # a duplicate ACK tells the peer about the hole
            return
        delivered = bytearray(payload)
        self.rcv_nxt = seq_add(self.rcv_nxt, len(payload))
        while not fin and self.rcv_nxt in self.out_of_order:
            payload, fin = self.out_of_order.pop(self.rcv_nxt)
            delivered += payload
            self.rcv_nxt = seq_add(self.rcv_nxt, len(payload))
        for stale in [s for s in self.out_of_order if seq_lt(s, self.rcv_nxt)]:
            del self.out_of_order[stale]
        if fin:
            self.rcv_nxt = seq_add(self.rcv_nxt, 1)
        if delivered or fin:
            self._ack_soon(len(delivered), fin)
        if delivered and self.transport is not None:
            self.transport.deliver(bytes(delivered))
        if fin:
            self._peer_fin()

    def _peer_fin(self) -> None:
        if self.state == ESTABLISHED:
            self.state = CLOSE_WAIT
            if self.transport is not None:
                self.transport.deliver_eof()
        elif self.state == FIN_WAIT_1:
            self.state = CLOSING
        elif self.state == FIN_WAIT_2:
            self._enter_time_wait()

    def _enter_time_wait(self) -> None:
        self.state = TIME_WAIT
        self.retransmit_at = None
        self.time_wait_until = self.endpoint.clock() + self.endpoint.time_wait
        if self.transport is not None:
            self.transport.deliver_lost(None)

    def _enter_closed(self, error: Exception | None) -> None:
        if self.state == CLOSED:
            return
        self.state = CLOSED
        self.close_error = error
        self.retransmit_at = None
        self.time_wait_until = None
        if self.transport is not None:
            self.transport.deliver_lost(error)
        self.endpoint.forget(self)


_HANDLERS: Final[dict[str, Callable[[TcpConnection, TcpSegment], None]]] = {
    SYN_SENT: TcpConnection._in_syn_sent,
    SYN_RECEIVED: TcpConnection._in_syn_received,
    ESTABLISHED: TcpConnection._in_established,
    FIN_WAIT_1: TcpConnection._in_established,
    FIN_WAIT_2: TcpConnection._in_established,
    CLOSE_WAIT: TcpConnection._in_peer_closed,
    CLOSING: TcpConnection._in_peer_closed,
    LAST_ACK: TcpConnection._in_peer_closed,
    TIME_WAIT: TcpConnection._in_time_wait,
    CLOSED: TcpConnection._in_closed,
}
