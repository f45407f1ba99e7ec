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
    """safe_strtoul into a uint32 (flags, verbosity): :func:`strtoull`'s number, wrapped to
    32 bits as memcached stores it."""
    value = strtoull(tok)
    return None if value is None else value % _INT32


def strtoull(tok: bytes) -> int | None:
    """safe_strtoull (deltas, CAS): digits with an optional sign, at most 2**64 - 1. C's
    ``strtoull`` negates a '-' number in unsigned arithmetic, and memcached refuses the result
    only when it then reads as negative: "-0" is 0 and "-9223372036854775809" is 2**63 - 1,
    but "-1" is refused."""
    negative = tok[:1] == b"-"
    body = tok[1:] if negative or tok[:1] == b"+" else tok
    if not _digits(body):
        return None
    value = int(body)
    if value > _UINT64_MAX:
        return None
    if negative:
        value = -value % (_UINT64_MAX + 1)
        if value > _INT64_MAX:
            return None
    return value
