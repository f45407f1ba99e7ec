"""Plain TCP and UNIX-socket connections served from the kernel socket by our own transport.

Theory of operation
-------------------
uvloop's stream transport reaches a buffered protocol through two Python method calls per read
(``get_buffer`` and ``buffer_updated``, each looked up by name, with a memoryview and the GIL
taken around each) and runs every ``write`` through four layers before ``write(2)``. For a plain
socket (no TLS: TLS stays with uvloop) this module does the same work directly:

* the loop does not watch the descriptor itself: the loop's :class:`ReadPoller`, an epoll
  descriptor of our own that holds every connection of the loop, is what the loop watches.
  When it is ready, one loop callback (one round trip of the GIL, which uvloop drops while it
  waits) asks it for every ready connection (``epoll_wait`` with no wait) and calls each one's
  read in C; uvloop would make one callback, GIL round trip and handle per connection. Each
  read is one ``recv(2)`` into a buffer the loop's connections share, one ``bytes`` of what
  came, handed to the protocol's ``data_received`` (bound once);
* ``write`` calls ``send(2)`` at once and queues only what the kernel did not take; the queue
  is watched with ``add_writer`` until it drains.

One read per readiness: both epolls are level-triggered, so what is left in the socket comes
back at the next iteration, after the other connections had their turn (and so do connections
beyond the :data:`POLL_EVENTS` one poll takes).

States of a :class:`SocketTransport`::

    OPEN --close() with bytes queued--> CLOSING --queue drained--> CLOSED
    OPEN --close() with nothing queued, abort(), a read or write error--> CLOSED
    OPEN --end of input--> protocol.eof_received(); unless it answers True: close()

Reading stops as soon as the transport leaves OPEN. ``connection_lost`` is called exactly once,
from the loop (``call_soon``), after the descriptor is unwatched and before it is closed: with
``None`` for an orderly close, with the exception for an error.

Flow control, as asyncio's: more than the high-water mark queued calls the protocol's
``pause_writing``; the queue falling to the low-water mark calls ``resume_writing``.
``pause_reading``/``resume_reading`` take the descriptor out of the poller and put it back.

:class:`SocketListener` accepts on a listening socket (``add_reader`` again) and makes a
protocol and a transport per connection, as ``loop.create_server`` does. It is what
:class:`~net_backends.posix.PosixStack` serves plain sockets with.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import select
import socket
import weakref
from typing import Any, Callable

try:
    import cython
except ModuleNotFoundError:  # interpreted without Cython installed
    from framework import cython_shim as cython  # type: ignore[no-redef]

__all__ = [
    "COMPILED", "READ_SIZE", "HIGH_WATER", "POLL_EVENTS", "ReadPoller", "SocketListener", "SocketTransport",
    "StreamProtocol", "listening_sockets", "read_poller", "shared_sockets",
]

log = logging.getLogger("net_backends.posix")

COMPILED: bool = cython.compiled
"""True in the extension module: only compiled does this transport beat uvloop's (interpreted,
:class:`~net_backends.posix.PosixStack` keeps uvloop's)."""
READ_SIZE = 64 << 10  # the most one read takes (what is left waits in the socket for the next turn)
HIGH_WATER = 64 << 10  # bytes queued beyond which the protocol is asked to pause writing
_READ_SIZE = READ_SIZE
_read_buffer = bytearray(READ_SIZE)  # shared by the process's connections: each read is copied out at once
_TRY_AGAIN = frozenset((errno.EAGAIN, errno.EWOULDBLOCK, errno.EINTR))
_ACCEPT_RETRY_SECONDS = 1.0  # out of descriptors or memory: accepting pauses this long, as asyncio's
_ACCEPTS_PER_TURN = 64
POLL_EVENTS = 256  # the most ready connections one poll reads (the rest: the next turn)
_POLL_EVENTS = POLL_EVENTS

_OPEN = 0
_CLOSING = 1
_CLOSED = 2


class StreamProtocol:
    """A protocol that :class:`SocketTransport` reaches with a C call per read (compiled):
    subclass it and define ``data_received``. Any other asyncio protocol works too, through an
    ordinary Python call."""

    __slots__ = ()

    def data_received(self, data: bytes) -> None:
        raise NotImplementedError


class SocketTransport:
    """An asyncio transport over one connected, non-blocking socket; see the module docstring."""

    def __init__(self, loop: asyncio.AbstractEventLoop, sock: socket.socket, protocol: Any) -> None:
        self._loop = loop
        self._poller = read_poller(loop)
        self._sock = sock
        self._fd = sock.fileno()
        self._use_protocol(protocol)
        self._state = _OPEN
        self._reading = False
        self._eof_wanted = False  # write_eof() waits for the queue
        self._queue: list[bytes] = []
        self._queued = 0
        self._high = HIGH_WATER
        self._low = HIGH_WATER // 4
        self._writing_paused = False
        self._extra = {"socket": sock, "peername": _address(sock.getpeername), "sockname": _address(sock.getsockname)}

    def start(self) -> None:
        """The protocol was told of the connection: start reading, unless it closed already."""
        if self._state == _OPEN:
            self.resume_reading()

    # ----- reading -----------------------------------------------------------------------------

    def _on_readable(self) -> None:
        if cython.compiled:
            count = c_recv(self._fd, PyByteArray_AS_STRING(_read_buffer), _READ_SIZE, 0)
            if count > 0:
                data = PyBytes_FromStringAndSize(PyByteArray_AS_STRING(_read_buffer), count)
                if self._stream is not None:
                    self._stream.data_received(data)
                else:
                    self._data_received(data)
                return
            if count < 0:
                code = errno_value()
                if code not in _TRY_AGAIN:
                    self._fail(OSError(code, os.strerror(code)))
                return
        else:
            try:
                data = self._sock.recv(READ_SIZE)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                self._fail(exc)
                return
            if data:
                self._data_received(data)
                return
        self._end_of_input()

    def _end_of_input(self) -> None:
        self.pause_reading()
        if not self._protocol.eof_received():
            self.close()

    def pause_reading(self) -> None:
        if self._reading:
            self._reading = False
            self._poller.unwatch(self._fd)

    def resume_reading(self) -> None:
        if not self._reading and self._state == _OPEN:
            self._reading = True
            self._poller.watch(self._fd, self)

    def is_reading(self) -> bool:
        return self._reading

    # ----- writing -----------------------------------------------------------------------------

    def write(self, data: bytes) -> None:
        if self._state != _OPEN or self._eof_wanted:
            return  # written after close(): dropped, as asyncio drops it
        if type(data) is not bytes:
            data = bytes(data)
        size = len(data)
        if not size:
            return
        if self._queued:
            self._enqueue(data)
            return
        if cython.compiled:
            sent = c_send(self._fd, PyBytes_AS_STRING(data), size, MSG_NOSIGNAL)
            if sent == size:
                return
            if sent < 0:
                code = errno_value()
                if code not in _TRY_AGAIN:
                    self._fail(OSError(code, os.strerror(code)))
                    return
                sent = 0
        else:
            sent = self._send(data)
            if sent < 0 or sent == size:
                return
        self._enqueue(data[sent:])
        self._loop.add_writer(self._fd, self._on_writable)

    def writelines(self, chunks: Any) -> None:
        self.write(b"".join(chunks))

    def _enqueue(self, data: bytes) -> None:
        self._queue.append(data)
        self._queued += len(data)
        if not self._writing_paused and self._queued > self._high:
            self._writing_paused = True
            self._protocol.pause_writing()

    def _on_writable(self) -> None:
        data = self._queue[0] if len(self._queue) == 1 else b"".join(self._queue)
        self._queue.clear()
        sent = self._send(data)
        if sent < 0:
            return
        self._queued = len(data) - sent
        if self._queued:
            self._queue.append(data[sent:])
            return
        self._loop.remove_writer(self._fd)
        if self._writing_paused:
            self._writing_paused = False
            self._protocol.resume_writing()
        if self._state == _CLOSING:
            self._finish(None)
        elif self._eof_wanted:
            self._shut_down_writing()

    def _send(self, data: bytes) -> int:
        """Send what the kernel takes now: how much (0: nothing), or -1 once failed."""
        try:
            return self._sock.send(data)
        except (BlockingIOError, InterruptedError):
            return 0
        except OSError as exc:
            self._fail(exc)
            return -1

    def get_write_buffer_size(self) -> int:
        return self._queued

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return self._low, self._high

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        self._high = HIGH_WATER if high is None else high
        self._low = self._high // 4 if low is None else low
        if self._low > self._high or self._low < 0:
            raise ValueError(f"high ({self._high}) must be >= low ({self._low}) >= 0")

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        """Send FIN once everything queued went out (reading goes on)."""
        if self._state != _OPEN or self._eof_wanted:
            return
        self._eof_wanted = True
        if not self._queued:
            self._shut_down_writing()

    def _shut_down_writing(self) -> None:
        try:
            self._sock.shutdown(socket.SHUT_WR)
        except OSError as exc:
            self._fail(exc)

    # ----- closing -----------------------------------------------------------------------------

    def is_closing(self) -> bool:
        return self._state != _OPEN

    def close(self) -> None:
        """Stop reading; close once what is queued went out; then ``connection_lost(None)``."""
        if self._state != _OPEN:
            return
        self.pause_reading()
        if self._queued:
            self._state = _CLOSING
        else:
            self._finish(None)

    def abort(self) -> None:
        """Close now; what is queued is dropped."""
        if self._state != _CLOSED:
            self._finish(None)

    def _fail(self, exc: BaseException) -> None:
        if self._state != _CLOSED:
            self._finish(exc)

    def _finish(self, exc: BaseException | None) -> None:
        self._state = _CLOSED
        self.pause_reading()
        if self._queued:
            self._loop.remove_writer(self._fd)
            self._queue.clear()
            self._queued = 0
        self._loop.call_soon(self._lost, exc)

    def _lost(self, exc: BaseException | None) -> None:
        """Tell the protocol, then close the descriptor: a number still open cannot be given
        to a new connection before the protocol has forgotten this one (kvshard names
        connections by their descriptor)."""
        try:
            self._protocol.connection_lost(exc)
        finally:
            self._sock.close()

    # ----- the rest of asyncio's Transport -----------------------------------------------------

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self._extra.get(name, default)

    def get_protocol(self) -> Any:
        return self._protocol

    def set_protocol(self, protocol: Any) -> None:
        self._use_protocol(protocol)

    def _use_protocol(self, protocol: Any) -> None:
        self._protocol = protocol
        self._data_received = protocol.data_received  # bound once, called per read
        self._stream = protocol if isinstance(protocol, StreamProtocol) else None


class ReadPoller:
    """One loop's connections, watched for reading by one epoll descriptor of our own, the only
    one of them the loop watches (see the module docstring). Level-triggered, as the loop's."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._epoll = select.epoll()
        self._epoll_fd = self._epoll.fileno()
        self._by_fd: list[SocketTransport | None] = []  # indexed by descriptor
        loop.add_reader(self._epoll_fd, self._poll)

    def watch(self, fd: int, transport: SocketTransport) -> None:
        if fd >= len(self._by_fd):
            self._by_fd.extend([None] * (fd + 1 - len(self._by_fd)))
        self._by_fd[fd] = transport
        self._epoll.register(fd, select.EPOLLIN)

    def unwatch(self, fd: int) -> None:
        if fd < len(self._by_fd) and self._by_fd[fd] is not None:
            self._by_fd[fd] = None
            self._epoll.unregister(fd)

    def watched(self) -> list[SocketTransport]:
        """The connections being read."""
        return [transport for transport in self._by_fd if transport is not None]

    def _poll(self) -> None:
        """The loop's callback: every ready connection reads once (one closed by an earlier one
        in the same poll is no longer in ``_by_fd``, and its descriptor is not reused before the
        loop's next turn: it closes in a ``call_soon``)."""
        if cython.compiled:
            count = c_epoll_wait(self._epoll_fd, _events, _POLL_EVENTS, 0)
            for i in range(count):
                fd = _events[i].data.fd
                transport = self._by_fd[fd]
                if transport is not None:
                    transport._on_readable()
            return
        for fd, _ in self._epoll.poll(0, POLL_EVENTS):
            transport = self._by_fd[fd]
            if transport is not None:
                transport._on_readable()


_pollers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, ReadPoller] = weakref.WeakKeyDictionary()


def read_poller(loop: asyncio.AbstractEventLoop) -> ReadPoller:
    """The loop's :class:`ReadPoller`, made at its first connection."""
    poller = _pollers.get(loop)
    if poller is None:
        poller = _pollers[loop] = ReadPoller(loop)
    return poller


def _address(getter: Callable[[], Any]) -> Any:
    try:
        return getter()
    except OSError:
        return None


class SocketListener:
    """Accepts on one listening socket; each connection gets ``factory()`` as its protocol and a
    :class:`SocketTransport`. ``close()`` stops accepting and closes the socket (connections
    already made go on)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, sock: socket.socket, factory: Callable[[], Any]) -> None:
        self._loop = loop
        self._sock = sock
        self._factory = factory
        self._nodelay = sock.family in (socket.AF_INET, socket.AF_INET6)
        self._retry: asyncio.TimerHandle | None = None
        self._closed = False
        sock.setblocking(False)
        loop.add_reader(sock.fileno(), self._on_acceptable)

    @property
    def sockets(self) -> tuple[socket.socket, ...]:
        return () if self._closed else (self._sock,)

    def _on_acceptable(self) -> None:
        for _ in range(_ACCEPTS_PER_TURN):
            try:
                conn, _peer = self._sock.accept()
            except (BlockingIOError, InterruptedError, ConnectionAbortedError):
                return
            except OSError as exc:
                if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                    log.error("accept: %s; accepting again in %.0f s", exc, _ACCEPT_RETRY_SECONDS)
                    self._loop.remove_reader(self._sock.fileno())
                    self._retry = self._loop.call_later(_ACCEPT_RETRY_SECONDS, self._accept_again)
                    return
                raise
            self._serve(conn)

    def _accept_again(self) -> None:
        self._retry = None
        if not self._closed:
            self._loop.add_reader(self._sock.fileno(), self._on_acceptable)

    def _serve(self, conn: socket.socket) -> None:
        conn.setblocking(False)
        if self._nodelay:
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        protocol = self._factory()
        transport = SocketTransport(self._loop, conn, protocol)
        protocol.connection_made(transport)
        transport.start()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._retry is not None:
            self._retry.cancel()
        else:
            self._loop.remove_reader(self._sock.fileno())
        self._sock.close()

    def is_serving(self) -> bool:
        return not self._closed

    async def wait_closed(self) -> None:
        return None


def listening_sockets(host: str, port: int, backlog: int) -> list[socket.socket]:
    """Listening TCP sockets for ``host:port`` as ``loop.create_server(host, port,
    reuse_port=True, reuse_address=True)`` opens them: one per address ``host`` resolves to
    (IPv6 ones IPv6-only), each shared with the other shards by ``SO_REUSEPORT``."""
    sockets = shared_sockets(host, port, socket.SOCK_STREAM)
    for sock in sockets:
        sock.listen(backlog)
    return sockets


def shared_sockets(host: str, port: int, kind: int) -> list[socket.socket]:
    """Sockets of ``kind`` (TCP or UDP) bound to ``host:port`` (``""``: every address), one per
    address ``host`` resolves to (IPv6 ones IPv6-only), each shared with the other shards by
    ``SO_REUSEPORT`` (and, for TCP, ``SO_REUSEADDR``), non-blocking."""
    sockets: list[socket.socket] = []
    seen: set[tuple[int, Any]] = set()
    try:
        for family, _, proto, _, address in socket.getaddrinfo(host or None, port, type=kind, flags=socket.AI_PASSIVE):
            if (family, address) in seen:
                continue
            seen.add((family, address))
            sock = socket.socket(family, kind, proto)
            sockets.append(sock)
            if kind == socket.SOCK_STREAM:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            try:
                sock.bind(address)
            except OSError as exc:
                raise OSError(exc.errno, f"error while attempting to bind on address {address!r}: {exc.strerror}") from None
            sock.setblocking(False)
    except BaseException:
        for sock in sockets:
            sock.close()
        raise
    return sockets
