"""memcached's ASCII authentication (``-Y``), sans-IO: what a connection may say before it logs in.

Theory of operation
-------------------
With an auth file, a new ASCII connection is *out* until it logs in, and memcached accepts
exactly one command from it: a ``set`` whose data block is ``<user> <password>``. Nothing is
stored. :class:`AsciiLogin` is fed the connection's reads and returns a :class:`LoginStep`: the
replies so far, whether to close, and, once logged in, the bytes that followed the login (they
belong to the ordinary parser). It is in one of three states:

    LINE     looking for ``\\n``. The line (a trailing ``\\r`` stripped) is split on spaces, runs
             collapsing, as memcached's tokenizer does (a NUL ends it). At least five tokens, the first exactly
             ``set`` and the fifth a byte count (digits, an optional ``+``) -> DATA, or SWALLOW
             when the count is over :data:`MAX_LOGIN_BLOCK`. Anything else, whatever it is
             (``get``, ``quit``, ``add``, a binary packet, garbage), answers
             ``CLIENT_ERROR unauthenticated`` and the connection stays open. A line still
             without ``\\n`` after :data:`MAX_LINE` bytes closes the connection.
    DATA     waiting for count + 2 bytes. Not ending in ``\\r\\n``: ``CLIENT_ERROR bad command
             line termination``. Otherwise the block is split like a line: fewer than two
             tokens is ``CLIENT_ERROR bad authentication token format``; the first two are the
             user and password (memcached ignores any further token): ``STORED`` and *in*, or
             ``CLIENT_ERROR authentication failure``. ``noreply`` is ignored: a login is always
             answered, as in memcached.
    SWALLOW  a block too long to hold a user and password is dropped as it arrives, then
             answered ``CLIENT_ERROR bad authentication token format``.

Every command gets its reply, also when several arrive in one read. (memcached 1.6.18 loses all
but the last error reply of a read while a connection is out; that is a bug, not copied.)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Final

from .ascii import MAX_LINE, tokenize
from .numbers import strtoull

__all__ = [
    "AsciiLogin", "LoginStep", "MAX_LOGIN_BLOCK",
    "R_UNAUTHENTICATED", "R_AUTH_FAILURE", "R_BAD_TOKEN", "R_BAD_TERMINATION", "R_LOGGED_IN",
]

MAX_LOGIN_BLOCK: Final = 4096  # the longest "<user> <password>" block held (and file entry accepted)

R_UNAUTHENTICATED: Final = b"CLIENT_ERROR unauthenticated\r\n"
R_AUTH_FAILURE: Final = b"CLIENT_ERROR authentication failure\r\n"
R_BAD_TOKEN: Final = b"CLIENT_ERROR bad authentication token format\r\n"
R_BAD_TERMINATION: Final = b"CLIENT_ERROR bad command line termination\r\n"
R_LOGGED_IN: Final = b"STORED\r\n"

_LINE, _DATA, _SWALLOW = 0, 1, 2


@dataclass
class LoginStep:
    """What one read did: ``replies`` in order; ``close`` when the connection must end;
    ``rest`` is None while the connection is out, else the bytes after the login."""

    replies: list[bytes] = field(default_factory=list)
    close: bool = False
    rest: bytes | None = None


class AsciiLogin:
    """The login gate of one connection; ``check(user, password)`` says who may pass."""

    __slots__ = ("_check", "_buf", "_state", "_need")

    def __init__(self, check: Callable[[bytes, bytes], bool]) -> None:
        self._check = check
        self._buf = b""
        self._state = _LINE
        self._need = 0  # DATA: block bytes + 2 awaited; SWALLOW: bytes still to drop

    @property
    def reading_data(self) -> bool:
        """A login's data block is being read (for ``stats conns``)."""
        return self._state != _LINE

    def feed(self, data: bytes) -> LoginStep:
        step = LoginStep()
        buf = self._buf + data if self._buf else data
        pos = 0
        while True:
            if self._state == _SWALLOW:
                dropped = min(self._need, len(buf) - pos)
                self._need -= dropped
                pos += dropped
                if self._need:
                    break
                step.replies.append(R_BAD_TOKEN)
                self._state = _LINE
            elif self._state == _DATA:
                if len(buf) - pos < self._need:
                    break
                block = buf[pos : pos + self._need]
                pos += self._need
                self._state = _LINE
                if self._login(block, step):
                    step.rest = buf[pos:]
                    self._buf = b""
                    return step
            else:
                end = buf.find(b"\n", pos)
                if end < 0:
                    if len(buf) - pos > MAX_LINE:
                        step.close = True
                        self._buf = b""
                        return step
                    break
                line = buf[pos:end]
                pos = end + 1
                self._command(line[:-1] if line.endswith(b"\r") else line, step)
        self._buf = buf[pos:]
        return step

    def _command(self, line: bytes, step: LoginStep) -> None:
        tokens = tokenize(line)
        size = strtoull(tokens[4]) if len(tokens) >= 5 and tokens[0] == b"set" else None
        if size is None:
            step.replies.append(R_UNAUTHENTICATED)
        elif size + 2 > MAX_LOGIN_BLOCK:
            self._state, self._need = _SWALLOW, size + 2
        else:
            self._state, self._need = _DATA, size + 2

    def _login(self, block: bytes, step: LoginStep) -> bool:
        if not block.endswith(b"\r\n"):
            step.replies.append(R_BAD_TERMINATION)
            return False
        tokens = tokenize(block[:-2])
        if len(tokens) < 2:
            step.replies.append(R_BAD_TOKEN)
            return False
        if not self._check(tokens[0], tokens[1]):
            step.replies.append(R_AUTH_FAILURE)
            return False
        step.replies.append(R_LOGGED_IN)
        return True
