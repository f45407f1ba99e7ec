"""Who may use the server: the password file and the checks of both login methods.

memcached has two ways in, and kvshard both, with the same files:

* ``-Y/--auth-file FILE``: ASCII authentication. Until a connection logs in, its only command is
  a ``set`` whose data block is ``<user> <password>`` (see
  :mod:`kvshard.protocol.ascii_login`); the server then speaks ASCII only.
* ``-S/--enable-sasl``: SASL over the binary protocol, mechanism PLAIN (RFC 4616), checked
  against the file in ``$MEMCACHED_SASL_PWDB`` (the variable memcached's own password-file
  SASL reads) or ``--sasl-pwdb FILE``; the server then speaks binary only.

The file: one ``user:password`` per line (split at the first ``:``, so a password may contain
colons; a trailing ``\\r`` is dropped; blank lines are skipped). A line without ``:`` or with an
empty user is refused at start with its line number, never skipped silently; so is, for
``-Y``, an entry no ASCII login could send (a space or NUL in it, no password, too long). The
file is read once at start.

Passwords are compared in constant time against every entry, so the time a failed login takes
says nothing about which users exist.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from .protocol.ascii_login import MAX_LOGIN_BLOCK

if TYPE_CHECKING:
    from .counters import ConnectionCounters

__all__ = ["Credentials", "CredentialsError", "load_credentials", "MAX_CREDENTIALS_BYTES", "plain_login", "count_login"]

MAX_CREDENTIALS_BYTES: Final = 1 << 20  # a password file larger than this is refused


class CredentialsError(Exception):
    """The password file cannot be used; the message is one line for the operator."""


class Credentials:
    """The users who may log in, and the check of a user/password pair."""

    __slots__ = ("_entries",)

    def __init__(self, entries: tuple[tuple[bytes, bytes], ...]) -> None:
        self._entries = entries

    @property
    def entries(self) -> tuple[tuple[bytes, bytes], ...]:
        return self._entries

    def __len__(self) -> int:
        return len(self._entries)

    def check(self, user: bytes, password: bytes) -> bool:
        """True when ``user`` is in the file with exactly this password. Every entry is
        compared, in constant time, whatever matches."""
        import hmac  # here, not at the top: only servers with logins pay for hashlib (~0.6 MiB a process)

        ok = False
        for known_user, known_password in self._entries:
            same_user = hmac.compare_digest(user, known_user)
            same_password = hmac.compare_digest(password, known_password)
            ok |= same_user & same_password
        return ok


def load_credentials(path: str, ascii_login: bool = False) -> Credentials:
    """Read a ``user:password`` file; :class:`CredentialsError` says why it cannot be used.
    For ``ascii_login`` (``-Y``) an entry must be sendable as a login block: no space or NUL
    in it (the block is split on spaces), a password, and at most :data:`MAX_LOGIN_BLOCK` bytes."""
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_CREDENTIALS_BYTES + 1)
    except OSError as exc:
        raise CredentialsError(f"cannot read {path}: {exc.strerror or exc}") from None
    if len(data) > MAX_CREDENTIALS_BYTES:
        raise CredentialsError(f"{path} is larger than {MAX_CREDENTIALS_BYTES} bytes")
    entries: list[tuple[bytes, bytes]] = []
    for number, line in enumerate(data.split(b"\n"), 1):
        line = line.removesuffix(b"\r")
        if not line:
            continue
        user, colon, password = line.partition(b":")
        if not colon or not user:
            raise CredentialsError(f"{path} line {number}: not 'user:password'")
        if ascii_login:
            if b" " in line or b"\0" in line:
                raise CredentialsError(f"{path} line {number}: a space or NUL cannot be sent in an ASCII login")
            if not password:
                raise CredentialsError(f"{path} line {number}: an empty password cannot be sent in an ASCII login")
            if len(user) + len(password) + 3 > MAX_LOGIN_BLOCK:
                raise CredentialsError(f"{path} line {number}: longer than an ASCII login may be ({MAX_LOGIN_BLOCK} bytes)")
        entries.append((user, password))
    if not entries:
        raise CredentialsError(f"{path} has no 'user:password' line: nobody could log in")
    return Credentials(tuple(entries))


def count_login(conn_stats: ConnectionCounters, ok: bool) -> None:
    """A login attempt, in ``auth_cmds`` (and ``auth_errors`` when it failed)."""
    conn_stats.auth_cmds += 1
    if not ok:
        conn_stats.auth_errors += 1


def plain_login(message: bytes, credentials: Credentials) -> bool:
    """SASL PLAIN (RFC 4616): ``[authzid] NUL authcid NUL password``. True when the user and
    password are in the file and the client asks to act as nobody else (an authorization
    identity other than its own is refused: there is no one to grant it)."""
    parts = message.split(b"\0")
    if len(parts) != 3:
        return False
    authzid, user, password = parts
    if not user or (authzid and authzid != user):
        return False
    return credentials.check(user, password)
