"""The ``watch`` command's arguments: memcached 1.6's log stream names and their bits.

``watch [stream ...]`` asks for one or more of memcached's log streams (logger.h's ``LOG_*``
bits, kept at memcached's values). Without a stream name it means ``fetchers``. Any other word,
``noreply`` included, makes the whole command ``ERROR`` (which ``noreply`` then silences, as in
memcached 1.6.18, whose loop over the arguments sees the ``noreply`` token too).

Streams kvshard accepts but never writes to (it has nothing that logs there): ``rawcmds``
(memcached 1.6.18 does not log there either), ``sysevents`` (LRU crawler and slab mover
events), ``proxyreqs``, ``proxyevents``, ``proxyuser`` (the proxy).
"""

from __future__ import annotations

from typing import Final

__all__ = [
    "LOG_SYSEVENTS", "LOG_FETCHERS", "LOG_MUTATIONS", "LOG_CONNEVENTS", "LOG_EVICTIONS", "LOG_RAWCMDS",
    "LOG_PROXYREQS", "LOG_PROXYEVENTS", "LOG_PROXYUSER", "STREAMS", "watch_flags",
]

LOG_SYSEVENTS: Final = 1 << 1
LOG_FETCHERS: Final = 1 << 2
LOG_MUTATIONS: Final = 1 << 3
LOG_CONNEVENTS: Final = 1 << 5
LOG_EVICTIONS: Final = 1 << 6
LOG_RAWCMDS: Final = 1 << 9
LOG_PROXYREQS: Final = 1 << 10
LOG_PROXYEVENTS: Final = 1 << 11
LOG_PROXYUSER: Final = 1 << 12

STREAMS: Final = {
    b"rawcmds": LOG_RAWCMDS, b"evictions": LOG_EVICTIONS, b"fetchers": LOG_FETCHERS,
    b"mutations": LOG_MUTATIONS, b"sysevents": LOG_SYSEVENTS, b"connevents": LOG_CONNEVENTS,
    b"proxyreqs": LOG_PROXYREQS, b"proxyevents": LOG_PROXYEVENTS, b"proxyuser": LOG_PROXYUSER,
}


def watch_flags(arguments: list[bytes]) -> int:
    """The streams a ``watch`` command's arguments ask for, as bits; -1 if one is unknown."""
    if not arguments:
        return LOG_FETCHERS
    flags = 0
    for name in arguments:
        bit = STREAMS.get(name)
        if bit is None:
            return -1
        flags |= bit
    return flags
