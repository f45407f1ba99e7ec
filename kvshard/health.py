"""``python -m kvshard.health [HOST] [PORT]``: exit 0 if a memcached server answers ``version``
there within 2 s, else print why and exit 1. The container's HEALTHCHECK; PORT defaults to
``$KVSHARD_PORT`` or 11211, HOST to 127.0.0.1."""

from __future__ import annotations

import os
import socket
import sys

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    host = args[0] if args else "127.0.0.1"
    port = int(args[1]) if len(args) > 1 else int(os.environ.get("KVSHARD_PORT", "11211"))
    try:
        with socket.create_connection((host, port), timeout=2) as sock:
            sock.settimeout(2)
            sock.sendall(b"version\r\n")
            reply = sock.recv(256)
    except OSError as exc:
        print(f"unhealthy: {host}:{port}: {exc}", file=sys.stderr)
        return 1
    if not reply.startswith(b"VERSION "):
        print(f"unhealthy: {host}:{port} answered {reply[:80]!r}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
