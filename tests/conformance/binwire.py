"""A raw-socket client for the binary protocol: packets out, parsed packets in.

:meth:`BinWire.call` sends requests followed by a NOOP with a marker opaque and reads every
response up to that NOOP's, so a missing or an extra response (quiet commands!) shows as a
difference in the returned list. CAS values differ between servers, so tests compare
:class:`Packet` fields and check CAS values by their relations (non-zero, equal, changed).
"""

from __future__ import annotations

import socket
import struct
import time
from dataclasses import dataclass

from kvshard.protocol import binary as b

__all__ = ["BinWire", "Packet", "req", "SYNC_OPAQUE"]

SYNC_OPAQUE = 0x5F5F5F5F
_TIMEOUT = 5.0


def req(
    opcode: int, key: bytes = b"", extras: bytes = b"", value: bytes = b"",
    cas: int = 0, opaque: int = 0x01020304, magic: int = b.REQUEST_MAGIC,
) -> bytes:
    body = len(extras) + len(key) + len(value)
    return b.HEADER.pack(magic, opcode, len(key), len(extras), 0, 0, body, opaque, cas) + extras + key + value


def store_extras(flags: int = 0, exptime: int = 0) -> bytes:
    return struct.pack(">II", flags, exptime)


def arith_extras(delta: int, initial: int = 0, exptime: int = 0xFFFFFFFF) -> bytes:
    return struct.pack(">QQI", delta, initial, exptime)


@dataclass(frozen=True)
class Packet:
    opcode: int
    status: int
    opaque: int
    cas: int
    extras: bytes = b""
    key: bytes = b""
    value: bytes = b""

    def same(self, other: "Packet") -> bool:
        """Equal but for the CAS value (which only has to be zero in both or in neither)."""
        return (self.opcode, self.status, self.opaque, self.extras, self.key, self.value, bool(self.cas)) == (
            other.opcode, other.status, other.opaque, other.extras, other.key, other.value, bool(other.cas)
        )


class BinWire:
    def __init__(self, address: tuple[str, int]) -> None:
        self.sock = socket.create_connection(address, timeout=_TIMEOUT)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._buf = b""
        self.closed = False

    def close(self) -> None:
        self.sock.close()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _fill(self, want: int, deadline: float) -> bool:
        while len(self._buf) < want:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"timeout: have {self._buf!r}")
            self.sock.settimeout(left)
            data = self.sock.recv(65536)
            if not data:
                self.closed = True
                return False
            self._buf += data
        return True

    def read_packet(self, timeout: float = _TIMEOUT) -> Packet | None:
        """The next response, or None if the server closed the connection."""
        deadline = time.monotonic() + timeout
        if not self._fill(24, deadline):
            return None
        magic, opcode, key_len, extras_len, _dt, status, body_len, opaque, cas = b.HEADER.unpack_from(self._buf)
        assert magic == b.RESPONSE_MAGIC, self._buf[:24]
        if not self._fill(24 + body_len, deadline):
            return None
        body = self._buf[24 : 24 + body_len]
        self._buf = self._buf[24 + body_len :]
        return Packet(opcode, status, opaque, cas, body[:extras_len], body[extras_len : extras_len + key_len], body[extras_len + key_len :])

    def call(self, *requests: bytes) -> list[Packet]:
        """Send ``requests`` and a NOOP; return the responses before the NOOP's."""
        self.send(b"".join(requests) + req(b.OP_NOOP, opaque=SYNC_OPAQUE))
        out: list[Packet] = []
        while True:
            packet = self.read_packet()
            assert packet is not None, f"connection closed after {out}"
            if packet.opcode == b.OP_NOOP and packet.opaque == SYNC_OPAQUE:
                return out
            out.append(packet)

    def one(self, request: bytes) -> Packet:
        (packet,) = self.call(request)
        return packet

    def closes_after(self, data: bytes) -> list[Packet]:
        """Send ``data``; return the responses read until the server closes."""
        self.send(data)
        out: list[Packet] = []
        while True:
            packet = self.read_packet()
            if packet is None:
                return out
            out.append(packet)
