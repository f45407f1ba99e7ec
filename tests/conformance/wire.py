"""A raw-socket client for the conformance suite: exact bytes out, exact bytes in.

Nothing here understands the protocol beyond what a test needs to say "send these bytes, the
answer must be exactly those bytes". Reads always have a deadline, so a server that answers too
little fails the test with what it did send instead of hanging; a server that answers too much
is caught by :meth:`Wire.call`, which ends every request with a *sync* command (``version``,
whose ``VERSION ...`` line no other command sends and which moves no counters), reads exactly
the expected bytes and then requires the next line to be that ``VERSION`` line: any extra or
missing byte shifts the comparison and fails it.
"""

from __future__ import annotations

import re
import socket
import threading
import time
from dataclasses import dataclass
from typing import Iterator

__all__ = [
    "DEFAULT_TIMEOUT",
    "SYNC_REQUEST",
    "SYNC_REPLY_PREFIX",
    "Wire",
    "WireTimeout",
    "Value",
    "parse_values",
    "storage",
    "value",
    "meta_cas",
]

DEFAULT_TIMEOUT = 5.0
SYNC_REQUEST = b"version\r\n"
SYNC_REPLY_PREFIX = b"VERSION "

# Requests at least this big are sent from a helper thread while the reply is read, so neither
# side can block on a full socket buffer.
_BACKGROUND_SEND = 64 * 1024


class WireTimeout(AssertionError):
    """The server sent fewer bytes than expected before the deadline (or closed early)."""


class Wire:
    """One client connection; ``with Wire.connect(addr) as w: w.call(b"...", b"...")``."""

    def __init__(self, sock: socket.socket, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.sock = sock
        self.timeout = timeout
        self._buf = bytearray()
        self._eof = False
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    @classmethod
    def connect(cls, address: tuple[str, int], timeout: float = DEFAULT_TIMEOUT) -> "Wire":
        return cls(socket.create_connection(address, timeout=timeout), timeout)

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> "Wire":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- sending -----------------------------------------------------------------------------

    def send(self, data: bytes) -> None:
        """Send all of ``data`` (from this thread)."""
        self.sock.sendall(data)

    def send_slowly(self, data: bytes, chunk: int = 1, pause: float = 0.002) -> None:
        """Send ``data`` ``chunk`` bytes at a time with a pause between, so the server reads it
        in many pieces (TCP_NODELAY is on)."""
        for start in range(0, len(data), chunk):
            self.sock.sendall(data[start : start + chunk])
            time.sleep(pause)

    def send_in_background(self, data: bytes) -> threading.Thread:
        """Start sending ``data`` from a thread; join it after reading the reply."""
        errors: list[BaseException] = []

        def run() -> None:
            try:
                self.sock.sendall(data)
            except OSError as exc:  # reported by the reader as a short reply
                errors.append(exc)

        thread = threading.Thread(target=run, name="wire-send", daemon=True)
        thread.start()
        return thread

    # -- receiving ---------------------------------------------------------------------------

    def _fill(self, deadline: float) -> bool:
        """Read once more into the buffer; False at EOF. Raises WireTimeout past ``deadline``."""
        if self._eof:
            return False
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise socket.timeout
        self.sock.settimeout(remaining)
        try:
            chunk = self.sock.recv(65536)
        except ConnectionResetError:
            chunk = b""
        if not chunk:
            self._eof = True
            return False
        self._buf += chunk
        return True

    def recv_exact(self, n: int, timeout: float | None = None) -> bytes:
        """Exactly ``n`` bytes, or WireTimeout showing what did arrive."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        try:
            while len(self._buf) < n:
                if not self._fill(deadline):
                    raise WireTimeout(f"connection closed after {bytes(self._buf)!r}, wanted {n} bytes")
        except socket.timeout:
            raise WireTimeout(f"timed out after {bytes(self._buf)!r}, wanted {n} bytes") from None
        out = bytes(self._buf[:n])
        del self._buf[:n]
        return out

    def recv_until(self, terminator: bytes, timeout: float | None = None) -> bytes:
        """Everything up to and including the first ``terminator``."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        try:
            while (end := self._buf.find(terminator)) < 0:
                if not self._fill(deadline):
                    raise WireTimeout(f"connection closed after {bytes(self._buf)!r}, wanted {terminator!r}")
        except socket.timeout:
            raise WireTimeout(f"timed out after {bytes(self._buf)!r}, wanted {terminator!r}") from None
        end += len(terminator)
        out = bytes(self._buf[:end])
        del self._buf[:end]
        return out

    def recv_line(self, timeout: float | None = None) -> bytes:
        return self.recv_until(b"\r\n", timeout)

    def recv_available(self, wait: float = 0.1) -> bytes:
        """Whatever arrives within ``wait`` seconds (possibly nothing)."""
        deadline = time.monotonic() + wait
        try:
            while self._fill(deadline):
                pass
        except socket.timeout:
            pass
        out = bytes(self._buf)
        self._buf.clear()
        return out

    def wait_closed(self, timeout: float | None = None) -> bytes:
        """Read until the server closes the connection; return what it sent before closing.
        Raises WireTimeout if it is still open at the deadline."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        try:
            while self._fill(deadline):
                pass
        except socket.timeout:
            raise WireTimeout(f"connection still open after {bytes(self._buf)!r}") from None
        out = bytes(self._buf)
        self._buf.clear()
        return out

    # -- request/reply -----------------------------------------------------------------------

    def expect(self, expected: bytes, timeout: float | None = None) -> None:
        """The next bytes from the server are exactly ``expected``."""
        got = self.recv_exact(len(expected), timeout)
        assert got == expected, f"\nexpected {expected!r}\n     got {got!r}"

    def call(self, request: bytes, expected: bytes, *, sync: bool = True, timeout: float | None = None) -> None:
        """Send ``request``; the reply must be exactly ``expected``.

        With ``sync`` (the default) a ``version`` command follows the request, so the reply
        must be ``expected`` followed directly by the ``VERSION`` line: this proves the server
        sent nothing beyond ``expected`` (e.g. for ``noreply``) and is ready for commands again.
        """
        if sync:
            request += SYNC_REQUEST
        if len(request) >= _BACKGROUND_SEND:
            sender = self.send_in_background(request)
            try:
                self.expect(expected, timeout)
            finally:
                sender.join(self.timeout)
        else:
            self.send(request)
            self.expect(expected, timeout)
        if sync:
            self.expect_sync_reply(timeout)

    def expect_sync_reply(self, timeout: float | None = None) -> None:
        """The next line is the reply to the sync ``version`` command."""
        line = self.recv_line(timeout)
        assert line.startswith(SYNC_REPLY_PREFIX), f"\nexpected the sync reply b'VERSION ...'\n     got {line!r}"

    def sync(self) -> None:
        """The connection still answers commands, and nothing unread is pending."""
        self.call(b"", b"")

    def request(self, request: bytes, terminator: bytes = b"END\r\n") -> bytes:
        """Send ``request`` and return the reply up to and including ``terminator``."""
        self.send(request)
        return self.recv_until(terminator)


# -- request and reply builders -------------------------------------------------------------


def storage(
    command: bytes,
    key: bytes,
    data: bytes,
    flags: int = 0,
    exptime: int = 0,
    cas: int | None = None,
    noreply: bool = False,
) -> bytes:
    """``<command> <key> <flags> <exptime> <bytes> [<cas>] [noreply]\\r\\n<data>\\r\\n``."""
    parts = [command, key, b"%d" % flags, b"%d" % exptime, b"%d" % len(data)]
    if cas is not None:
        parts.append(b"%d" % cas)
    if noreply:
        parts.append(b"noreply")
    return b" ".join(parts) + b"\r\n" + data + b"\r\n"


def value(key: bytes, data: bytes, flags: int = 0) -> bytes:
    """One ``VALUE`` block of a ``get`` reply (without the final ``END``)."""
    return b"VALUE %s %d %d\r\n%s\r\n" % (key, flags, len(data), data)


@dataclass(frozen=True)
class Value:
    key: bytes
    flags: int
    data: bytes
    cas: int | None


_VALUE_LINE = re.compile(rb"VALUE (\S+) (\d+) (\d+)(?: (\d+))?\r\n")


def _iter_values(reply: bytes) -> Iterator[Value]:
    pos = 0
    while not reply.startswith(b"END\r\n", pos):
        m = _VALUE_LINE.match(reply, pos)
        assert m is not None, f"not a VALUE line at {pos}: {reply[pos:pos + 80]!r}"
        size = int(m.group(3))
        start = m.end()
        assert reply[start + size : start + size + 2] == b"\r\n", f"data block not ended by CRLF: {reply!r}"
        cas = int(m.group(4)) if m.group(4) is not None else None
        yield Value(m.group(1), int(m.group(2)), reply[start : start + size], cas)
        pos = start + size + 2
    assert pos + 5 == len(reply), f"bytes after END: {reply[pos + 5:]!r}"


def parse_values(reply: bytes) -> list[Value]:
    """Strictly parse a whole ``get``/``gets`` reply (``VALUE`` blocks then ``END``)."""
    return list(_iter_values(reply))


def meta_cas(conn: Wire, key: bytes) -> int:
    """The CAS unique of ``key`` (which must exist), via ``mg <key> c``."""
    line = conn.request(b"mg " + key + b" c\r\n", b"\r\n")
    m = re.fullmatch(rb"HD c(\d+)( [WXZ])*\r\n", line)
    assert m, line
    return int(m.group(1))
