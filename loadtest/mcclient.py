"""A small memcached ASCII client in pure Python, for load tests: blocking ``socket`` calls only,
so gevent (locust) can patch them, and strict about what the server says.

Every call raises :class:`MemcacheError` on an error line (``ERROR``, ``CLIENT_ERROR ...``,
``SERVER_ERROR ...``) or on anything that is not the reply the command allows, and
``TimeoutError`` when the server is silent past the timeout. The connection is closed after any
exception (its stream position is unknown), and reopened by the next call.

Values written by :func:`make_value` carry their key and a CRC-32 (``key|payload|crc``), and
:func:`check_value` raises :class:`CorruptValue` unless a value read back is intact and belongs
to the key it was read for, so a load test catches corruption, not only errors.
"""

from __future__ import annotations

import socket
import zlib
from typing import Callable, Final, TypeVar

__all__ = ["MemcacheClient", "MemcacheError", "CorruptValue", "make_value", "check_value", "parse_host"]

_CRLF: Final = b"\r\n"
T = TypeVar("T")


class MemcacheError(Exception):
    """The server answered with an error or with something the protocol does not allow."""


class CorruptValue(MemcacheError):
    """A value read back is not the one written (checksum, key or framing)."""


def make_value(key: bytes, payload: bytes) -> bytes:
    body = key + b"|" + payload
    return body + b"|" + b"%08x" % zlib.crc32(body)


def check_value(key: bytes, value: bytes) -> None:
    body, sep, crc = value.rpartition(b"|")
    if not sep or len(crc) != 8 or b"%08x" % zlib.crc32(body) != crc:
        raise CorruptValue(f"corrupted value for {key.decode(errors='replace')}: checksum does not match")
    if not body.startswith(key + b"|"):
        raise CorruptValue(f"value for {key.decode(errors='replace')} belongs to another key")


def parse_host(host: str, default_port: int = 11211) -> tuple[str, int]:
    """``host:port``, ``host`` or ``memcached://host[:port]`` (locust's ``--host``)."""
    if host.startswith("memcached://"):
        host = host[len("memcached://") :]
    host = host.rstrip("/")
    name, sep, port = host.rpartition(":")
    if not sep or not port.isdigit():
        return host, default_port
    return name.strip("[]"), int(port)


class MemcacheClient:
    def __init__(self, host: str, port: int, timeout: float = 2.0) -> None:
        self.address = (host, port)
        self.timeout = timeout
        self._sock: socket.socket | None = None
        self._buf = bytearray()

    # ----- connection ---------------------------------------------------------------------

    def _connection(self) -> socket.socket:
        if self._sock is None:
            sock = socket.create_connection(self.address, timeout=self.timeout)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._sock = sock
            self._buf.clear()
        return self._sock

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def _call(self, request: bytes, read: Callable[[], T]) -> T:
        try:
            self._connection().sendall(request)
            return read()
        except socket.timeout:
            self.close()
            raise TimeoutError(f"no reply from {self.address[0]}:{self.address[1]} within {self.timeout}s") from None
        except BaseException:
            self.close()
            raise

    def _line(self) -> bytes:
        while True:
            end = self._buf.find(_CRLF)
            if end >= 0:
                line = bytes(self._buf[:end])
                del self._buf[: end + 2]
                return line
            self._fill()

    def _exactly(self, n: int) -> bytes:
        while len(self._buf) < n:
            self._fill()
        data = bytes(self._buf[:n])
        del self._buf[:n]
        return data

    def _fill(self) -> None:
        assert self._sock is not None
        chunk = self._sock.recv(65536)
        if not chunk:
            raise MemcacheError("connection closed by the server")
        self._buf += chunk

    @staticmethod
    def _error(line: bytes) -> MemcacheError:
        return MemcacheError(line.decode(errors="replace") or "empty reply line")

    # ----- commands -----------------------------------------------------------------------

    def set(self, key: bytes, value: bytes, flags: int = 0, exptime: int = 0) -> None:
        request = b"set %s %d %d %d\r\n%s\r\n" % (key, flags, exptime, len(value), value)

        def read() -> None:
            line = self._line()
            if line != b"STORED":
                raise self._error(line)

        self._call(request, read)

    def get_multi(self, keys: list[bytes]) -> dict[bytes, bytes]:
        def read() -> dict[bytes, bytes]:
            found: dict[bytes, bytes] = {}
            while True:
                line = self._line()
                if line == b"END":
                    return found
                parts = line.split()
                if len(parts) != 4 or parts[0] != b"VALUE" or not parts[3].isdigit():
                    raise self._error(line)
                data = self._exactly(int(parts[3]) + 2)
                if data[-2:] != _CRLF:
                    raise MemcacheError("a value's data block does not end with CRLF")
                if parts[1] not in keys or parts[1] in found:
                    raise MemcacheError(f"unexpected key {parts[1]!r} in the reply")
                found[parts[1]] = data[:-2]

        return self._call(b"get " + b" ".join(keys) + _CRLF, read)

    def get(self, key: bytes) -> bytes | None:
        return self.get_multi([key]).get(key)

    def delete(self, key: bytes) -> bool:
        def read() -> bool:
            line = self._line()
            if line not in (b"DELETED", b"NOT_FOUND"):
                raise self._error(line)
            return line == b"DELETED"

        return self._call(b"delete %s\r\n" % key, read)

    def incr(self, key: bytes, delta: int = 1) -> int | None:
        def read() -> int | None:
            line = self._line()
            if line == b"NOT_FOUND":
                return None
            if not line.isdigit():
                raise self._error(line)
            return int(line)

        return self._call(b"incr %s %d\r\n" % (key, delta), read)
