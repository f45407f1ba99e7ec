"""Numbers in memcached's text protocols, parsed the way memcached's ``safe_strto*`` helpers
parse them: decimal digits, a sign only where C's ``strtol``/``strtoul`` allow one, and the
same wrapping or range limits as the C types the values land in."""

from __future__ import annotations

from typing import Final

__all__ = ["strtol32", "strtoul32", "strtoull"]

_INT32: Final = 1 << 32
_UINT64_MAX: Final = (1 << 64) - 1
_INT64_MAX: Final = (1 << 63) - 1


def _digits(tok: bytes) -> bool:
    return bool(tok) and tok.isdigit()


def strtol32(tok: bytes) -> int | None:
    """safe_strtol into an int32: optional sign, digits; wraps like the C cast."""
    body = tok[1:] if tok[:1] in (b"+", b"-") else tok
    if not _digits(body):
        return None
    value = int(tok)
    if not -_INT64_MAX - 1 <= value <= _INT64_MAX:
        return None
    value %= _INT32
    return value - _INT32 if value >= 1 << 31 else value


def strtoul32(tok: bytes) -> int | None:
    """safe_strtoul into a uint32 (flags): digits with an optional '+', wraps to 32 bits."""
    body = tok[1:] if tok[:1] == b"+" else tok
    if not _digits(body):
        return None
    value = int(body)
    return None if value > _UINT64_MAX else value % _INT32


def strtoull(tok: bytes) -> int | None:
    """safe_strtoull (deltas, CAS): digits with an optional '+', at most 2**64 - 1."""
    body = tok[1:] if tok[:1] == b"+" else tok
    if not _digits(body):
        return None
    value = int(body)
    return None if value > _UINT64_MAX else value
