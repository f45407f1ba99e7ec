"""Which request core runs: the compiled modules or the interpreted ones.

The hot modules (those with a ``.pxd`` beside their ``.py``, see :mod:`framework.extensions`)
are imported here, so asking is answering: :func:`mode` is ``compiled`` only when every one of
them was loaded from its extension. ``kvshard --version``, the start-up log and ``/metrics``
(``kvshard_build_info``) all say what :func:`mode` says.
"""

from __future__ import annotations

from types import ModuleType
from typing import Final

from framework import channel, extensions, reactor, ring
from net_backends.posix import socket_stream

from . import (
    ascii_session, binary_session, cache, connection, context, counters, crawler, dispatcher, item_dumps,
    lru_maintainer, meta_ops, packed_blocks, routing, service, slab_arena,
)
from .protocol import ascii, binary, byte_slices, meta, numbers

__all__ = ["HOT_MODULES", "mode", "warning"]

HOT_MODULES: Final[tuple[ModuleType, ...]] = (
    ring, channel, reactor, socket_stream,
    byte_slices, ascii, binary, meta, numbers,
    counters, routing, slab_arena, packed_blocks, cache, crawler, lru_maintainer, item_dumps, service, meta_ops, context, dispatcher,
    ascii_session, connection, binary_session,
)


def mode() -> str:
    """``compiled`` or ``interpreted``."""
    return extensions.core_mode(HOT_MODULES)


def warning() -> str | None:
    """The one line a server running the interpreted core logs at start (None when compiled)."""
    slow = extensions.interpreted_modules(HOT_MODULES)
    if not slow:
        return None
    if extensions.extensions_disabled():
        why = f"{extensions.NO_EXTENSIONS_ENV} is set"
    elif extensions.stale_modules():
        why = "the source changed since the build of " + ", ".join(extensions.stale_modules()) + " (pip install -e . rebuilds)"
    else:
        why = "the compiled modules were not built (install with a C compiler and Python headers)"
    return f"core: interpreted, several times slower than compiled: {why}"
