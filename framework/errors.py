"""Exceptions of the runtime, and how an exception crosses from one shard to another.

A handler that raises on shard B makes the caller's awaitable on shard A raise an exception of
the same type with the same message: built-in exception types and types registered with
:func:`register_exception` are rebuilt as themselves; any other type arrives as
:class:`RemoteError` carrying the original type's qualified name.
"""

from __future__ import annotations

import builtins

__all__ = [
    "RuntimeErrorBase",
    "ShardUnavailable",
    "RemoteError",
    "UnknownHandler",
    "register_exception",
    "encode_exception",
    "decode_exception",
]


class RuntimeErrorBase(Exception):
    """Base of the runtime's own exceptions."""


class ShardUnavailable(RuntimeErrorBase):
    """The target shard died (calls in flight to it fail with this) or is being restarted."""

    def __init__(self, shard: int, reason: str = "shard is down") -> None:
        super().__init__(f"shard {shard}: {reason}")
        self.shard = shard


class UnknownHandler(RuntimeErrorBase):
    """No handler of that name is registered on the target shard."""


class RemoteError(RuntimeErrorBase):
    """A handler raised an exception type the caller cannot rebuild."""

    def __init__(self, type_name: str, message: str) -> None:
        super().__init__(f"{type_name}: {message}")
        self.type_name = type_name
        self.remote_message = message


_registered: dict[str, type[BaseException]] = {}


def _qualified(cls: type) -> str:
    if cls.__module__ == "builtins":
        return cls.__qualname__
    return f"{cls.__module__}.{cls.__qualname__}"


def register_exception(cls: type[BaseException]) -> type[BaseException]:
    """Let ``cls`` cross shards as itself. It must accept a single message argument.
    Usable as a class decorator."""
    _registered[_qualified(cls)] = cls
    return cls


for _cls in (ShardUnavailable, UnknownHandler):
    register_exception(_cls)


def encode_exception(exc: BaseException) -> tuple[str, str]:
    """(qualified type name, message) of ``exc``."""
    if isinstance(exc, RemoteError):
        return exc.type_name, exc.remote_message
    return _qualified(type(exc)), str(exc.args[0]) if len(exc.args) == 1 else str(exc)


def decode_exception(type_name: str, message: str) -> BaseException:
    """Rebuild the exception :func:`encode_exception` described."""
    cls = _registered.get(type_name)
    if cls is None and "." not in type_name:
        candidate = getattr(builtins, type_name, None)
        if isinstance(candidate, type) and issubclass(candidate, Exception):
            cls = candidate
    if cls is ShardUnavailable:
        exc = ShardUnavailable.__new__(ShardUnavailable)
        RuntimeErrorBase.__init__(exc, message)
        exc.shard = -1
        return exc
    if cls is not None:
        try:
            return cls(message)
        except Exception:  # a registered type with another constructor
            pass
    return RemoteError(type_name, message)
