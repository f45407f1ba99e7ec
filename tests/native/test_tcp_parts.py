"""TCP's pure parts: initial sequence numbers (RFC 6528) and the retransmission timeout
(RFC 6298)."""

from __future__ import annotations

import pytest

from net_backends.native.tcp.isn import TICK_SECONDS, IsnGenerator
from net_backends.native.tcp.rto import INITIAL_RTO, MAX_RTO, RtoEstimator

A, B = bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2])


def test_isn_grows_with_the_clock_and_depends_on_the_tuple() -> None:
    now = [100.0]
    isn = IsnGenerator(b"k" * 16, clock=lambda: now[0])
    first = isn(A, 11211, B, 40000)
    assert isn(A, 11211, B, 40000) == first  # same instant, same tuple
    now[0] += 1.0
    assert (isn(A, 11211, B, 40000) - first) % 2**32 == round(1.0 / TICK_SECONDS)  # 250,000 ticks a second
    others = {isn(A, 11211, B, port) for port in range(40001, 40101)}
    assert len(others) == 100  # F differs per tuple
    assert IsnGenerator(b"j" * 16, clock=lambda: now[0])(A, 11211, B, 40000) != isn(A, 11211, B, 40000)  # keyed
    assert all(0 <= x < 2**32 for x in others)


def test_rto_follows_rfc_6298() -> None:
    rto = RtoEstimator(minimum=0.0)
    assert rto.rto == INITIAL_RTO
    rto.sample(0.100)
    assert rto.srtt == pytest.approx(0.100) and rto.rttvar == pytest.approx(0.050)
    assert rto.rto == pytest.approx(0.100 + 4 * 0.050)
    rto.sample(0.200)
    assert rto.rttvar == pytest.approx(0.75 * 0.050 + 0.25 * 0.100)
    assert rto.srtt == pytest.approx(0.875 * 0.100 + 0.125 * 0.200)
    assert rto.rto == pytest.approx(rto.srtt + 4 * rto.rttvar)


def test_rto_minimum_backoff_and_maximum() -> None:
    rto = RtoEstimator()  # 200 ms minimum
    rto.sample(0.001)
    assert rto.rto == pytest.approx(0.2)
    assert [rto.back_off() for _ in range(3)] == pytest.approx([0.4, 0.8, 1.6])
    for _ in range(20):
        rto.back_off()
    assert rto.rto == MAX_RTO and rto.backoffs == 23
    rto.sample(0.05)  # a valid sample ends the backoff
    assert rto.backoffs == 0 and rto.rto < 1.0


def test_sequence_arithmetic_wraps() -> None:
    from net_backends.native.tcp.sequence import seq_add, seq_diff, seq_ge, seq_gt, seq_in_window, seq_le, seq_lt

    top = 2**32 - 10
    assert seq_add(top, 20) == 10
    assert seq_lt(top, 10) and seq_gt(10, top) and not seq_lt(10, top)
    assert seq_diff(10, top) == 20 and seq_diff(top, 10) == -20
    assert seq_le(5, 5) and seq_ge(5, 5) and not seq_lt(5, 5)
    assert seq_in_window(2, top, 20) and not seq_in_window(10, top, 20) and not seq_in_window(top, top, 0)
    assert not seq_lt(0, 2**31) and not seq_lt(2**31, 0)  # exactly half apart: neither is before


def test_newreno_slow_start_avoidance_recovery_timeout() -> None:
    from net_backends.native.tcp.congestion import NewReno

    cc = NewReno(1000)
    assert cc.cwnd == 10_000  # RFC 6928's initial window, 10 segments of 1000
    cc.on_new_ack(1000, 0, 1000)
    assert cc.cwnd == 11_000  # slow start: one SMSS per SMSS acked
    cc.ssthresh = 11_000
    cc.on_new_ack(1000, 0, 2000)
    assert cc.cwnd == 11_000 + 1000 * 1000 // 11_000  # avoidance
    flight = 20_000
    assert [cc.on_duplicate_ack(flight, 50_000) for _ in range(3)] == [False, False, True]
    assert cc.in_recovery and cc.ssthresh == 10_000 and cc.cwnd == 13_000 and cc.recover == 50_000
    cc.on_duplicate_ack(flight, 50_000)
    assert cc.cwnd == 14_000  # inflation
    assert cc.on_new_ack(3000, 17_000, 33_000) is True  # partial ACK: resend the next hole
    assert cc.cwnd == 14_000 - 3000 + 1000
    assert cc.on_new_ack(17_000, 0, 50_000) is False and not cc.in_recovery
    assert cc.cwnd == min(10_000, 0 + 1000)
    cc.on_timeout(8000)
    assert (cc.cwnd, cc.ssthresh, cc.in_recovery) == (1000, 4000, False)
