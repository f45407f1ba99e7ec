"""Initial sequence numbers after RFC 6528: ``ISN = M + F(4-tuple, secret)``.

``M`` is a clock ticking every 4 microseconds (RFC 9293 section 3.4.1), so a new incarnation of
a connection starts beyond the old one's sequence space; ``F`` is a keyed hash (BLAKE2s with a
random 128-bit secret per stack) of the local and remote address and port, so an off-path
attacker cannot predict the ISN of a connection it did not see, while one 4-tuple's ISNs still
grow with time.
"""

from __future__ import annotations

import hashlib
import os
import time
from typing import Callable, Final

__all__ = ["IsnGenerator", "TICK_SECONDS"]

TICK_SECONDS: Final = 4e-6


class IsnGenerator:
    def __init__(self, secret: bytes | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self._secret = secret if secret is not None else os.urandom(16)
        self._clock = clock

    def __call__(self, local_ip: bytes, local_port: int, remote_ip: bytes, remote_port: int) -> int:
        tuple_bytes = local_ip + local_port.to_bytes(2, "big") + remote_ip + remote_port.to_bytes(2, "big")
        digest = hashlib.blake2s(tuple_bytes, key=self._secret, digest_size=4).digest()
        ticks = int(self._clock() / TICK_SECONDS)
        return (ticks + int.from_bytes(digest, "big")) & 0xFFFFFFFF
