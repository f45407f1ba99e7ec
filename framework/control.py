"""The control plane between the supervisor and each shard.

One ``SOCK_SEQPACKET`` socketpair per shard (message boundaries kept by the kernel), each
message one msgpack array ``[verb, *args]``. Data never goes this way; only life-cycle events.

Shard -> supervisor::

    READY                       handlers registered, the shard can take messages
    PEER_DOWN_ACK k             our link to dead shard k is emptied and its calls failed
    SHUTDOWN code               the application asks for the whole server to stop

Supervisor -> shard::

    START [up shards]           all listed shards are up: open those links, start serving
    PEER_DOWN k                 shard k died: fail calls to it, empty both rings, then ack
    PEER_UP k                   shard k (restarted) is ready again
    STOP                        stop cleanly and exit

End of file on the socket means the other side is gone: a shard that sees it exits at once.
"""

from __future__ import annotations

import socket
from typing import Any

import msgpack

__all__ = [
    "READY", "PEER_DOWN_ACK", "SHUTDOWN", "START", "PEER_DOWN", "PEER_UP", "STOP",
    "MAX_CONTROL_MESSAGE", "control_pair", "send_control", "recv_control",
]

READY = "ready"
PEER_DOWN_ACK = "peer_down_ack"
SHUTDOWN = "shutdown"
START = "start"
PEER_DOWN = "peer_down"
PEER_UP = "peer_up"
STOP = "stop"

MAX_CONTROL_MESSAGE = 65536


def control_pair() -> tuple[socket.socket, socket.socket]:
    """(supervisor end, shard end), both non-blocking."""
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    a.setblocking(False)
    b.setblocking(False)
    return a, b


def send_control(sock: socket.socket, verb: str, *args: Any) -> bool:
    """Send one message; False if the peer is gone."""
    try:
        sock.send(msgpack.packb([verb, *args]))
        return True
    except (BrokenPipeError, ConnectionResetError, BlockingIOError, OSError):
        return False


def recv_control(sock: socket.socket) -> list[list[Any]] | None:
    """Every message waiting on ``sock``; None at end of file."""
    messages: list[list[Any]] = []
    while True:
        try:
            data = sock.recv(MAX_CONTROL_MESSAGE)
        except BlockingIOError:
            return messages
        except (ConnectionResetError, OSError):
            return None
        if not data:
            return None if not messages else messages
        messages.append(msgpack.unpackb(data))
