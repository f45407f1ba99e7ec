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
