"""memcached's UDP transport (``-U PORT``, off by default), served by every shard.

Theory of operation
-------------------
Each shard binds its own UDP socket on the port with ``SO_REUSEPORT``, like its TCP listener;
the kernel sends all datagrams of one client socket to the same shard.

A request is one datagram: an 8-byte frame header (request id, sequence number, datagram
count, reserved; big-endian 16-bit words) and then commands, ASCII or binary, exactly as on
TCP; its first byte decides which, whatever ``-B`` says (memcached's ``-B`` binds TCP only).
A datagram with more commands than ``-R`` allows yields like a TCP read; its answer still
leaves whole, once every command ran. As in memcached, a datagram of 8 bytes or less, or one
whose count is not 1 (a multi-datagram request), is dropped without an answer; the sequence
number and the reserved word are not checked.

Each datagram is served by a fresh :class:`DatagramSession`: a
:class:`~kvshard.connection.ClientConnection` whose transport only collects the answer, so
every command, local or forwarded to another shard, behaves as on TCP. When no reply is
outstanding any more, the whole answer leaves in datagrams of at most 1400 bytes: the header
(the request id, sequence 0..n-1, count n, 0) and up to 1392 bytes of answer each, the split
memcached makes. A datagram whose commands answer nothing (``noreply``, quiet meta commands)
gets no datagram back.

Differences from memcached 1.6.18, on purpose: memcached sends each internal response object
(one per key of a multi-get, one per command) as its own datagram sequence starting again at
0, so a client that reassembles by sequence numbers cannot tell where the answer ends; kvshard
numbers the whole answer to a request as one sequence. memcached keeps one parser state for
its UDP socket, so a command cut at the end of one datagram continues with the next datagram
from any client; kvshard drops the cut command. memcached answers ``quit`` with an empty
datagram; kvshard sends nothing.
"""

from __future__ import annotations

import asyncio
import struct
from typing import TYPE_CHECKING, Any, Final

from .connection import ClientConnection

if TYPE_CHECKING:
    from .context import ShardContext

__all__ = ["UdpEndpoint", "DatagramSession", "FRAME_HEADER", "MAX_DATAGRAM", "MAX_PAYLOAD"]

FRAME_HEADER: Final = struct.Struct(">HHHH")
MAX_DATAGRAM: Final = 1400
MAX_PAYLOAD: Final = MAX_DATAGRAM - FRAME_HEADER.size


class UdpEndpoint(asyncio.DatagramProtocol):
    """A shard's UDP socket: unwraps requests and sends answers in frames."""

    def __init__(self, ctx: "ShardContext") -> None:
        self._ctx = ctx
        self._transport: asyncio.DatagramTransport | None = None
        self.dropped = 0  # malformed datagrams

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None

    def datagram_received(self, data: bytes, addr: Any) -> None:
        if len(data) <= FRAME_HEADER.size:
            self.dropped += 1
            return
        request_id, _sequence, count, _reserved = FRAME_HEADER.unpack_from(data)
        if count != 1:
            self.dropped += 1
            return
        DatagramSession(self._ctx, self, addr, request_id).serve(data[FRAME_HEADER.size:])

    def send_answer(self, addr: Any, request_id: int, answer: bytes) -> None:
        transport = self._transport
        if transport is None:
            return
        count = -(-len(answer) // MAX_PAYLOAD)
        if count > 0xFFFF:  # cannot be numbered: memcached would not send it either
            return
        for sequence in range(count):
            chunk = answer[sequence * MAX_PAYLOAD : (sequence + 1) * MAX_PAYLOAD]
            transport.sendto(FRAME_HEADER.pack(request_id, sequence, count, 0) + chunk, addr)


class _AnswerBuffer:
    """The transport a datagram session writes to: it only collects."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.parts.append(data)

    def close(self) -> None:  # quit: nothing to close on UDP
        pass

    def is_closing(self) -> bool:
        return False

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return default


class DatagramSession(ClientConnection):
    """One request datagram, served like a TCP connection's reads; the answer is sent when
    no reply is outstanding."""

    def __init__(self, ctx: "ShardContext", endpoint: UdpEndpoint, addr: Any, request_id: int) -> None:
        super().__init__(ctx, "auto")  # -B is for TCP: each datagram's first byte decides, as in memcached
        self._endpoint = endpoint
        self._addr = addr
        self._request_id = request_id
        self._answer = _AnswerBuffer()
        self._use_transport(self._answer)
        self._counted = True  # served, but not a connection in the statistics

    def serve(self, request: bytes) -> None:
        self.data_received(request)
        self._send_if_complete()

    def _write_out(self) -> None:
        super()._write_out()
        self._send_if_complete()

    def _send_if_complete(self) -> None:
        answer = self._answer
        if self._dispatcher.owed or not answer.parts or self._deferred is not None:
            return  # (commands held for a later turn, -R: the answer is not whole yet)
        data = b"".join(answer.parts)
        answer.parts.clear()
        self._endpoint.send_answer(self._addr, self._request_id, data)
