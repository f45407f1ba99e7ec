"""The retransmission timeout, after RFC 6298.

Rules: before any measurement RTO is :data:`INITIAL_RTO` (1 s). The first RTT sample R sets
SRTT = R, RTTVAR = R/2; each later one sets RTTVAR = 3/4 RTTVAR + 1/4 |SRTT - R|, then
SRTT = 7/8 SRTT + 1/8 R. RTO = SRTT + max(G, 4 RTTVAR), clamped to [``minimum``, :data:`MAX_RTO`]
(RFC 6298 asks for a 1 s minimum; like Linux we default to 200 ms, which the RFC allows as a
local choice, and tests can lower it). A timeout doubles RTO (exponential backoff, up to the
maximum) until the next valid sample. Samples come only from segments that were not
retransmitted (Karn's algorithm); the caller sees to that, or uses timestamps.
"""

from __future__ import annotations

from typing import Final

__all__ = ["RtoEstimator", "INITIAL_RTO", "MIN_RTO", "MAX_RTO", "CLOCK_GRANULARITY"]

INITIAL_RTO: Final = 1.0
MIN_RTO: Final = 0.2
MAX_RTO: Final = 60.0
CLOCK_GRANULARITY: Final = 0.001  # G: our timers are float seconds, far finer than this


class RtoEstimator:
    def __init__(self, minimum: float = MIN_RTO, maximum: float = MAX_RTO) -> None:
        self.minimum = minimum
        self.maximum = maximum
        self.srtt: float | None = None
        self.rttvar = 0.0
        self.rto = INITIAL_RTO
        self.backoffs = 0

    def sample(self, rtt: float) -> None:
        """A round-trip time measured on a segment sent once."""
        if rtt < 0:
            return
        if self.srtt is None:
            self.srtt = rtt
            self.rttvar = rtt / 2
        else:
            self.rttvar = 0.75 * self.rttvar + 0.25 * abs(self.srtt - rtt)
            self.srtt = 0.875 * self.srtt + 0.125 * rtt
        self.backoffs = 0
        self.rto = min(self.maximum, max(self.minimum, self.srtt + max(CLOCK_GRANULARITY, 4 * self.rttvar)))

    def back_off(self) -> float:
        """The retransmission timer expired: double RTO (at most the maximum); return it."""
        self.backoffs += 1
        self.rto = min(self.maximum, self.rto * 2)
        return self.rto
