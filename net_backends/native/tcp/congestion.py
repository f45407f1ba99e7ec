"""Congestion control: slow start and congestion avoidance (RFC 5681) with NewReno's fast
recovery (RFC 6582), as a small state object the connection drives.

Rules, with SMSS the sender's maximum segment size and all sizes in bytes:
  * initial window: ``min(10 * SMSS, max(2 * SMSS, 14600))`` (RFC 6928); ssthresh starts
    "arbitrarily high";
  * each ACK of new data outside recovery: below ssthresh, cwnd += min(acked, SMSS) (slow
    start, RFC 3465's byte counting limited to one SMSS); at or above it, cwnd grows by about
    one SMSS per round trip (SMSS * SMSS / cwnd per ACK, at least 1 byte);
  * the third duplicate ACK: ssthresh = max(flight / 2, 2 * SMSS), recover = the highest
    sequence sent, retransmit the first unacked segment, cwnd = ssthresh + 3 * SMSS; further
    duplicates inflate cwnd by SMSS;
  * in recovery, an ACK covering ``recover`` ends it (cwnd = min(ssthresh, flight + SMSS));
    a partial ACK retransmits the next unacked segment and deflates cwnd by the amount
    acked, adding back one SMSS when that amount was at least SMSS (RFC 6582 section 3.2);
  * a retransmission timeout: ssthresh = max(flight / 2, 2 * SMSS), cwnd = one SMSS (the loss
    window), recovery abandoned.
"""

from __future__ import annotations

from .sequence import seq_ge

__all__ = ["NewReno", "DUPACK_THRESHOLD"]

DUPACK_THRESHOLD = 3


class NewReno:
    def __init__(self, smss: int) -> None:
        self.smss = smss
        self.cwnd = min(10 * smss, max(2 * smss, 14600))
        self.ssthresh = 1 << 30
        self.dupacks = 0
        self.in_recovery = False
        self.recover = 0  # the highest sequence number sent when recovery began

    def on_new_ack(self, acked: int, flight_after: int, ack: int) -> bool:
        """New data acknowledged (``acked`` bytes; ``flight_after`` still outstanding). Returns
        True when, in recovery, a partial ACK asks for the next segment to be resent."""
        self.dupacks = 0
        smss = self.smss
        if self.in_recovery:
            if seq_ge(ack, self.recover):
                self.in_recovery = False
                self.cwnd = min(self.ssthresh, flight_after + smss)
                return False
            self.cwnd = max(smss, self.cwnd - acked + (smss if acked >= smss else 0))
            return True
        if self.cwnd < self.ssthresh:
            self.cwnd += min(acked, smss)
        else:
            self.cwnd += max(1, smss * smss // self.cwnd)
        return False

    def on_duplicate_ack(self, flight: int, highest_sent: int) -> bool:
        """A duplicate ACK; True when it is the one that starts fast retransmit."""
        if self.in_recovery:
            self.cwnd += self.smss
            return False
        self.dupacks += 1
        if self.dupacks < DUPACK_THRESHOLD:
            return False
        self.ssthresh = max(flight // 2, 2 * self.smss)
        self.cwnd = self.ssthresh + DUPACK_THRESHOLD * self.smss
        self.in_recovery = True
        self.recover = highest_sent
        return True

    def on_timeout(self, flight: int) -> None:
        self.ssthresh = max(flight // 2, 2 * self.smss)
        self.cwnd = self.smss
        self.dupacks = 0
        self.in_recovery = False
