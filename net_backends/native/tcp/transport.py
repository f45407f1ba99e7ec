"""asyncio's Transport for a native TCP connection, so the memcached connection handler (an
``asyncio.Protocol``) runs on the native stack unchanged.

Writes go to the connection's send buffer and out at once (the stack's pending frames are
flushed). ``pause_reading`` holds received data in the transport until ``resume_reading``, and what is
held shrinks the receive window the connection advertises (flow control: a paused reader
ends at a zero window, and the sender probes it);
``pause_writing``/``resume_writing`` are called on the protocol when the unacknowledged and
unsent bytes pass the high-water mark and fall back under the low one. ``close`` sends a FIN
after the buffered data; ``abort`` sends an RST. ``connection_lost`` is called exactly once.
"""

from __future__ import annotations

import asyncio
import ipaddress
from typing import TYPE_CHECKING, Any, Iterable

if TYPE_CHECKING:
    from ..stack import NativeStack
    from .connection import TcpConnection

__all__ = ["NativeTransport", "HIGH_WATER", "LOW_WATER"]

HIGH_WATER = 64 * 1024
LOW_WATER = 16 * 1024


class NativeTransport(asyncio.Transport):
    def __init__(self, conn: "TcpConnection", stack: "NativeStack") -> None:
        super().__init__()
        self._conn = conn
        self._stack = stack
        self._protocol: asyncio.Protocol | None = None
        self._closing = False
        self._lost = False
        self._paused_reading = False
        self._held: list[bytes] = []
        self.held_size = 0  # bytes received and not yet given to the protocol (they shrink the window)
        self._eof_held = False
        self._writing_paused = False
        self._high, self._low = HIGH_WATER, LOW_WATER

    def start(self, protocol: asyncio.Protocol) -> None:
        self._protocol = protocol
        protocol.connection_made(self)

    # ----- from the connection ---------------------------------------------------------------

    def deliver(self, data: bytes) -> None:
        if self._paused_reading:
            self._held.append(data)
            self.held_size += len(data)
        elif self._protocol is not None and not self._lost:
            self._protocol.data_received(data)
        if self._writing_paused or len(self._conn.send_buffer) > self._high:
            self._check_write_pressure()
        self._stack.flush()

    def deliver_eof(self) -> None:
        if self._paused_reading:
            self._eof_held = True
            return
        self._eof()

    def _eof(self) -> None:
        if self._protocol is None or self._lost:
            return
        keep_open = self._protocol.eof_received()
        if not keep_open:
            self.close()
        self._stack.flush()

    def deliver_lost(self, error: Exception | None) -> None:
        if self._lost:
            return
        self._lost = True
        self._closing = True
        if self._protocol is not None:
            self._protocol.connection_lost(error)

    # ----- asyncio.Transport -------------------------------------------------------------------

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self._closing or not data:
            return
        conn = self._conn
        conn.write(data if type(data) is bytes else bytes(data))
        if self._writing_paused or len(conn.send_buffer) > self._high:
            self._check_write_pressure()
        self._stack.flush()

    def writelines(self, list_of_data: Iterable[bytes | bytearray | memoryview]) -> None:
        self.write(b"".join(bytes(d) for d in list_of_data))

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        self._conn.close()
        self._stack.flush()

    def close(self) -> None:
        if self._closing:
            return
        self._closing = True
        self._conn.close()
        self._stack.flush()

    def abort(self) -> None:
        self._closing = True
        self._conn.abort()
        self._stack.flush()

    def is_closing(self) -> bool:
        return self._closing

    def pause_reading(self) -> None:
        self._paused_reading = True

    def resume_reading(self) -> None:
        if not self._paused_reading:
            return
        self._paused_reading = False
        held, self._held = self._held, []
        self.held_size = 0
        for data in held:
            self.deliver(data)
        if self._eof_held and not self._paused_reading:
            self._eof_held = False
            self._eof()
        self._conn.window_opened()
        self._stack.flush()

    def is_reading(self) -> bool:
        return not self._paused_reading

    def get_write_buffer_size(self) -> int:
        return len(self._conn.send_buffer)

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return self._low, self._high

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        self._high = HIGH_WATER if high is None else high
        self._low = self._high // 4 if low is None else low
        self._check_write_pressure()

    def _check_write_pressure(self) -> None:
        size = self.get_write_buffer_size()
        protocol = self._protocol
        if protocol is None:
            return
        if not self._writing_paused and size > self._high:
            self._writing_paused = True
            protocol.pause_writing()
        elif self._writing_paused and size <= self._low:
            self._writing_paused = False
            protocol.resume_writing()

    def get_protocol(self) -> Any:
        return self._protocol

    def set_protocol(self, protocol: Any) -> None:
        self._protocol = protocol

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        if name == "peername":
            return (str(ipaddress.IPv4Address(self._conn.remote[0])), self._conn.remote[1])
        if name == "sockname":
            return (str(ipaddress.IPv4Address(self._conn.local[0])), self._conn.local[1])
        return default
