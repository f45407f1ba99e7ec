"""memcached's administration commands for the slab allocator and the LRU: ``slabs`` and
``lru`` (``cache_memlimit`` and ``lru_crawler`` are kvshard.item_commands', which also applies
the ``lru`` changes checked here).

Theory of operation
-------------------
``slabs reassign <src> <dst>`` and ``slabs automove <level>|ratio <r>`` change the item store, on
every shard: the parser hands them over (``ITEM_ADMIN``) to kvshard.slab_mover, which reads the
automove arguments with :func:`slabs_automove_setting`. Every other ``slabs`` line is
``ERROR``, as memcached answers it.

``lru tune <hot_pct> <warm_pct> <hot_factor> <warm_factor>``, ``lru mode flat|segmented``,
``lru temp_ttl <ttl>`` go to kvshard.item_commands too: :func:`lru_change` checks them as
memcached does, with its messages, and says what to change (every shard's
kvshard.lru_maintainer applies it); ``mode`` and ``temp_ttl`` answer ``ERROR`` without the LRU
maintainer (``-o no_lru_maintainer``), as memcached's, ``tune`` works either way.

Token counts follow memcached's (which counts one empty token more than :func:`tokenize`
returns): a wrong count is ``ERROR``.
"""

from __future__ import annotations

from typing import Any, Callable, Final

from .numbers import strtol32, strtoul32

__all__ = ["ADMIN_COMMANDS", "admin_reply", "lru_change", "slabs_automove_setting"]

_ERROR: Final = b"ERROR\r\n"
_BAD_FORMAT: Final = b"CLIENT_ERROR bad command line format\r\n"
_NOREPLY: Final = b"noreply"
_LRU_PCT_MAX: Final = 80


def _strtod(token: bytes) -> float | None:
    """memcached's safe_strtod for the decimal forms clients send (no hex floats)."""
    if not token or b"_" in token:
        return None
    try:
        return float(token)
    except ValueError:
        return None


def _slabs(tokens: list[bytes]) -> bytes:
    return _ERROR  # (the forms that do something go to kvshard.slab_mover)


def slabs_automove_setting(tokens: list[bytes]) -> tuple[str, float] | bytes:
    """``slabs automove <level>`` or ``slabs automove ratio <r>`` (three tokens at least), read
    as memcached reads them: ("level", 0|1|2) or ("ratio", r), else the error line
    (``CLIENT_ERROR bad command line format`` for a level that is no number, ``ERROR`` above 2
    or for a ratio that is missing or no number)."""
    if tokens[2] == b"ratio":
        ratio = _strtod(tokens[3]) if len(tokens) >= 4 else None
        return _ERROR if ratio is None else ("ratio", ratio)
    level = strtoul32(tokens[2])
    if level is None:
        return _BAD_FORMAT
    return ("level", level) if level <= 2 else _ERROR


def lru_change(tokens: list[bytes], maintainer_running: bool) -> bytes | tuple[str, tuple[Any, ...]]:
    """``lru ...`` (``tokens[0] == b"lru"``) as memcached's process_lru_command checks it: the
    change to make, (``"tune"``, (hot_pct, warm_pct, hot_factor, warm_factor)), (``"mode"``,
    (segmented,)) or (``"temp_ttl"``, (ttl,)), or else the reply (an error; b"" when
    ``noreply`` silences it)."""
    n = len(tokens)
    sub = tokens[1] if n > 1 else b""
    reply = _ERROR
    if sub == b"tune" and n >= 6:
        hot, warm = strtoul32(tokens[2]), strtoul32(tokens[3])
        hot_factor, warm_factor = _strtod(tokens[4]), _strtod(tokens[5])
        if hot is None or warm is None or hot_factor is None or warm_factor is None:
            reply = _ERROR
        elif hot + warm > _LRU_PCT_MAX:
            reply = b"ERROR hot and warm pcts must not exceed 80\r\n"
        elif hot_factor <= 0 or warm_factor <= 0:
            reply = b"ERROR hot/warm age factors must be greater than 0\r\n"
        else:
            return ("tune", (hot, warm, hot_factor, warm_factor))
    elif sub == b"mode" and n >= 3 and maintainer_running:
        if tokens[2] in (b"flat", b"segmented"):
            return ("mode", (tokens[2] == b"segmented",))
    elif sub == b"temp_ttl" and n >= 3 and maintainer_running:
        ttl = strtol32(tokens[2])
        if ttl is not None:
            return ("temp_ttl", (ttl,))
    return b"" if tokens[-1] == _NOREPLY else reply


ADMIN_COMMANDS: Final[dict[bytes, Callable[[list[bytes]], bytes]]] = {
    b"slabs": _slabs,
}


def admin_reply(tokens: list[bytes]) -> bytes:
    """The answer to an administration command (``tokens[0]`` is in :data:`ADMIN_COMMANDS`);
    b"" when ``noreply`` silences it."""
    return ADMIN_COMMANDS[tokens[0]](tokens)
