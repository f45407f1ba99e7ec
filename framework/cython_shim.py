"""What the interpreted modules need of Cython's ``cython`` module when Cython is not installed.

The compiled modules do ``try: import cython / except ModuleNotFoundError: from .
import cython_shim as cython`` (SQLAlchemy's way): the compiler resolves ``cython.*`` at
compile time, so only interpreted runs ever see this module. Code under ``if cython.compiled:``
is dropped by the interpreter path and may use names (``memcpy``, pointers) that exist only
in the ``.pxd``.
"""

from __future__ import annotations

from typing import Any, Final

__all__ = ["compiled", "cast"]

compiled: Final = False


def cast(type_: object, value: Any, typecheck: bool = False) -> Any:
    """``cython.cast`` outside ``if cython.compiled:`` (a C cast when compiled): the value."""
    return value
