"""Copies out of ``bytes`` for the compiled request path: a slice and a newline search.

Cython slices a ``bytes`` object through the generic sequence protocol (a slice object, then
``bytes.__getitem__``: about 480 instructions for a short key), and ``bytes.find`` parses its
arguments as a Python call; compiled, these are one ``PyBytes_FromStringAndSize`` and one
``memchr``. Interpreted, they are the plain Python operations.
"""

from __future__ import annotations

try:
    import cython
except ModuleNotFoundError:  # interpreted without Cython installed
    from framework import cython_shim as cython  # type: ignore[no-redef]

__all__ = ["bytes_slice", "find_newline"]


def bytes_slice(data: bytes, start: int, stop: int) -> bytes:
    """``data[start:stop]``, for 0 <= start <= stop <= len(data) (the caller's promise: not
    checked when compiled)."""
    if cython.compiled:
        return PyBytes_FromStringAndSize(cython.cast(cython.p_char, data) + start, stop - start)
    return data[start:stop]


def find_newline(data: bytes, start: int, end: int) -> int:
    """``data.find(b"\\n", start, end)``, for 0 <= start <= end <= len(data)."""
    if cython.compiled:
        base = cython.cast(cython.p_char, data)
        hit = cython.cast(cython.p_char, memchr(base + start, 10, end - start))
        return -1 if hit == cython.NULL else hit - base
    return data.find(b"\n", start, end)
