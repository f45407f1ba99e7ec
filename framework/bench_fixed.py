"""The two ends of :mod:`framework.bench`'s fixed one-way workload, compiled like a shard's
request path, so that the workload measures the channel rather than a Python loop around it.

* :func:`send_burst` sends one-way fixed records in a loop that, compiled, reaches
  :meth:`Messenger.send_fixed` with one C call per record (interpreted: the same loop).
* :class:`CountingSink` is a :class:`FixedTarget`: the receiving channel runs it with one C call
  per record, as it runs a server's KVService.
"""

from __future__ import annotations

from .channel import FixedTarget, Messenger

__all__ = ["CountingSink", "send_burst"]


class CountingSink(FixedTarget):
    """Counts the fixed messages it runs; answers a call with no bytes."""

    def __init__(self) -> None:
        self.received = 0

    def run_fixed(self, handler_id: int, key: bytes, value: bytes | None, a: int, b: int, c: int) -> bytes:
        self.received += 1
        return b""


def send_burst(messenger: Messenger, shard: int, handler_id: int, key: bytes, first: int, count: int) -> int:
    """Send ``count`` one-way fixed records ``handler_id(key, None, first + i, 0, 0)`` to
    ``shard``; return how many were queued before the link refused one (full)."""
    sent = 0
    while sent < count:
        if not messenger.send_fixed(shard, handler_id, key, None, first + sent, 0, 0):
            break
        sent += 1
    return sent
