"""TCP segments: the kernel's SYN parsed and rebuilt byte for byte, options, refusals."""

from __future__ import annotations

import pytest

from net_backends.native.tcp.segment import (
    ACK, BAD_CHECKSUM, FIN, MALFORMED, PSH, SYN, TcpOptions, TcpSegment, build_tcp, parse_tcp,
)

from net_backends.native.checksum import internet_checksum, pseudo_header_sum

from .frames import KERNEL_IP, KERNEL_SYN, STACK_IP

SYN_SEGMENT = KERNEL_SYN[34:]


def parse(segment: bytes, src: bytes = KERNEL_IP, dst: bytes = STACK_IP) -> TcpSegment | str:
    return parse_tcp(memoryview(segment), src, dst)


def test_kernel_syn_parses_and_rebuilds_byte_for_byte() -> None:
    syn = parse(SYN_SEGMENT)
    assert isinstance(syn, TcpSegment)
    assert (syn.src_port, syn.dst_port, syn.seq, syn.ack, syn.flags, syn.window) == (51066, 11211, 2535929761, 0, SYN, 64240)
    assert syn.options == TcpOptions(mss=1460, window_shift=10, sack_permitted=True, timestamp=(3504257060, 0))
    assert len(syn.payload) == 0
    rebuilt = build_tcp(KERNEL_IP, STACK_IP, syn.src_port, syn.dst_port, syn.seq, syn.ack, syn.flags, syn.window, options=syn.options)
    assert rebuilt == SYN_SEGMENT


def test_data_segment_round_trip() -> None:
    segment = build_tcp(STACK_IP, KERNEL_IP, 11211, 51066, 1000, 2000, ACK | PSH, 512, b"VALUE k 0 1\r\nx\r\nEND\r\n")
    parsed = parse(segment, STACK_IP, KERNEL_IP)
    assert isinstance(parsed, TcpSegment)
    assert (parsed.seq, parsed.ack, parsed.flags, parsed.window, parsed.options) == (1000, 2000, ACK | PSH, 512, TcpOptions())
    assert bytes(parsed.payload) == b"VALUE k 0 1\r\nx\r\nEND\r\n"
    wrapped = parse(build_tcp(STACK_IP, KERNEL_IP, 1, 2, 2**32 + 5, -1, FIN | ACK, 0), STACK_IP, KERNEL_IP)
    assert isinstance(wrapped, TcpSegment) and (wrapped.seq, wrapped.ack) == (5, 2**32 - 1)  # modulo 2**32


def test_options_are_padded_and_shift_capped() -> None:
    segment = build_tcp(STACK_IP, KERNEL_IP, 1, 2, 0, 0, SYN, 100, options=TcpOptions(mss=1400))
    assert len(segment) == 24
    raw = bytearray(build_tcp(KERNEL_IP, STACK_IP, 1, 2, 0, 0, SYN, 100, options=TcpOptions(window_shift=14)))
    raw[-1] = 20  # a shift of 20: read as 14 (RFC 7323)
    parsed = parse(with_checksum(raw))
    assert isinstance(parsed, TcpSegment) and parsed.options.window_shift == 14


def with_checksum(segment: bytearray) -> bytes:
    """``segment`` (from the kernel to our stack) with its checksum recomputed."""
    segment[16:18] = b"\0\0"
    segment[16:18] = internet_checksum(segment, pseudo_header_sum(KERNEL_IP, STACK_IP, 6, len(segment))).to_bytes(2, "big")
    return bytes(segment)


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda s: s[:19], MALFORMED),                                          # short header
        (lambda s: with_checksum(bytearray(s[:12] + b"\x40" + s[13:])), MALFORMED),   # data offset 4
        (lambda s: with_checksum(bytearray(s[:12] + b"\xf0" + s[13:])), MALFORMED),   # offset past the end
        (lambda s: with_checksum(bytearray(s[:20] + b"\x02\x00" + s[22:])), MALFORMED),  # option length 0
        (lambda s: with_checksum(bytearray(s[:20] + b"\x02\x30" + s[22:])), MALFORMED),  # option overruns
        (lambda s: s[:30] + bytes((s[30] ^ 1,)) + s[31:], BAD_CHECKSUM),
    ],
    ids=["short", "offset-4", "offset-too-big", "option-len-0", "option-overrun", "checksum"],
)
def test_refusals(mutate, reason: str) -> None:  # type: ignore[no-untyped-def]
    assert parse(mutate(SYN_SEGMENT)) == reason


def test_pseudo_header_is_checked() -> None:
    assert parse(SYN_SEGMENT, KERNEL_IP, bytes([10, 77, 0, 9])) == BAD_CHECKSUM
