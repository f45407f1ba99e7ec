"""TCP segments: parse and check one, build one (RFC 9293 section 3.1, options from RFC 9293,
RFC 7323 and RFC 2018).

Receive path rules, each refusal a drop reason the stack counts: the segment must hold its
20-byte header and its data offset must be 5..15 words and fit the segment, and every option
must be whole (kind 0 ends the list, 1 is one byte, any other kind has a length byte >= 2 that
fits), else ``tcp_malformed``; the checksum over the pseudo-header must be right, else
``tcp_bad_checksum``. Options we use are decoded (MSS, window scale, SACK permitted,
timestamps); others are skipped by their length. A window-scale shift over 14 is taken as 14
(RFC 7323 section 2.3).

Send path: options are written in the order Linux uses for a SYN (MSS, SACK permitted,
timestamps, NOP, window scale) and padded with NOPs to a multiple of four bytes; the checksum
is always computed.
"""

from __future__ import annotations

import struct
from typing import Final, NamedTuple

from ..checksum import internet_checksum, pseudo_header_sum

__all__ = [
    "TcpOptions", "TcpSegment", "parse_tcp", "build_tcp", "NO_OPTIONS",
    "FIN", "SYN", "RST", "PSH", "ACK", "URG", "ECE", "CWR",
    "HEADER_LEN", "MALFORMED", "BAD_CHECKSUM", "MAX_WINDOW_SHIFT",
]

FIN: Final = 0x01
SYN: Final = 0x02
RST: Final = 0x04
PSH: Final = 0x08
ACK: Final = 0x10
URG: Final = 0x20
ECE: Final = 0x40
CWR: Final = 0x80

HEADER_LEN: Final = 20
MAX_WINDOW_SHIFT: Final = 14
MALFORMED: Final = "tcp_malformed"
BAD_CHECKSUM: Final = "tcp_bad_checksum"
_HEADER: Final = struct.Struct("!HHIIBBHHH")
_PROTO_TCP: Final = 6


class TcpOptions(NamedTuple):
    mss: int | None = None
    window_shift: int | None = None
    sack_permitted: bool = False
    timestamp: tuple[int, int] | None = None  # (TSval, TSecr)


NO_OPTIONS: Final = TcpOptions()


class TcpSegment(NamedTuple):
    src_port: int
    dst_port: int
    seq: int
    ack: int
    flags: int
    window: int
    urgent: int
    options: TcpOptions
    payload: memoryview


def _parse_options(raw: memoryview) -> TcpOptions | None:
    mss = shift = stamp = None
    sack = False
    i, end = 0, len(raw)
    while i < end:
        kind = raw[i]
        if kind == 0:  # end of option list
            break
        if kind == 1:  # no-operation
            i += 1
            continue
        if i + 1 >= end:
            return None
        length = raw[i + 1]
        if length < 2 or i + length > end:
            return None
        if kind == 2 and length == 4:
            mss = (raw[i + 2] << 8) | raw[i + 3]
        elif kind == 3 and length == 3:
            shift = min(raw[i + 2], MAX_WINDOW_SHIFT)
        elif kind == 4 and length == 2:
            sack = True
        elif kind == 8 and length == 10:
            stamp = (int.from_bytes(raw[i + 2 : i + 6], "big"), int.from_bytes(raw[i + 6 : i + 10], "big"))
        i += length
    return TcpOptions(mss, shift, sack, stamp)


def parse_tcp(segment: memoryview, src: bytes, dst: bytes) -> TcpSegment | str:
    """The segment, or the drop reason."""
    if len(segment) < HEADER_LEN:
        return MALFORMED
    src_port, dst_port, seq, ack, offset, flags, window, _checksum, urgent = _HEADER.unpack_from(segment)
    header_len = (offset >> 4) * 4
    if header_len < HEADER_LEN or header_len > len(segment):
        return MALFORMED
    if internet_checksum(segment, pseudo_header_sum(src, dst, _PROTO_TCP, len(segment))) != 0:
        return BAD_CHECKSUM
    options = NO_OPTIONS
    if header_len > HEADER_LEN:
        parsed = _parse_options(segment[HEADER_LEN:header_len])
        if parsed is None:
            return MALFORMED
        options = parsed
    return TcpSegment(src_port, dst_port, seq, ack, flags, window, urgent, options, segment[header_len:])


def _build_options(options: TcpOptions) -> bytes:
    out = b""
    if options.mss is not None:
        out += b"\x02\x04" + options.mss.to_bytes(2, "big")
    if options.sack_permitted:
        out += b"\x04\x02"
    if options.timestamp is not None:
        out += b"\x08\x0a" + options.timestamp[0].to_bytes(4, "big") + options.timestamp[1].to_bytes(4, "big")
    if options.window_shift is not None:
        out += b"\x01\x03\x03" + bytes((options.window_shift,))
    return out + b"\x01" * (-len(out) % 4)


def build_tcp(
    src: bytes, dst: bytes, src_port: int, dst_port: int, seq: int, ack: int, flags: int, window: int,
    payload: bytes = b"", options: TcpOptions = NO_OPTIONS, urgent: int = 0,
) -> bytes:
    """A whole segment with its checksum.

    The checksum is summed from the fields as integers (see checksum.py: the sum is the data
    as one number modulo 0xFFFF, and the header's length is even, so header, options, payload
    and pseudo-header sums simply add), so the header is packed once."""
    raw_options = _build_options(options) if options is not NO_OPTIONS else b""
    header_len = HEADER_LEN + len(raw_options)
    seq &= 0xFFFFFFFF
    ack &= 0xFFFFFFFF
    offset_flags = ((header_len // 4) << 12) | flags
    total = (src_port + dst_port + seq + ack + offset_flags + window + urgent + int.from_bytes(raw_options, "big")
             + int.from_bytes(src, "big") + int.from_bytes(dst, "big") + _PROTO_TCP + header_len + len(payload))
    if payload:
        total += int.from_bytes(payload, "big") << (8 if len(payload) & 1 else 0)
    folded = total % 0xFFFF  # never 0 for a real header: the offset field alone is non-zero
    checksum = 0xFFFF - folded if folded else 0
    return _HEADER.pack(src_port, dst_port, seq, ack, offset_flags >> 8, flags, window, checksum, urgent) + raw_options + payload
