"""``python -m kvshard.health [HOST] [PORT] [options]``: exit 0 if a memcached server answers
``version`` there within 2 s, else print why and exit 1. The container's HEALTHCHECK.

It speaks to the server as a client of that server must, with the server's own settings:

* ``-Z``: over TLS, checking the server's certificate against ``--ca-cert`` (the server's
  ``ssl_ca_cert``, or its self-signed ``ssl_chain_cert``), presenting ``--cert``/``--key`` when
  the server asks for a client certificate (``ssl_verify_mode`` 1-3); ``--server-name`` is the
  name the certificate must carry (default: HOST);
* ``-Y FILE``: memcached's ASCII login first, as the first user of the server's ``-Y`` file;
* ``-S``: SASL PLAIN over the binary protocol first, as the first user of ``--sasl-pwdb FILE``
  (or ``$MEMCACHED_SASL_PWDB``), then a binary ``version``;
* ``--user``/``--password``: log in as this user instead of the file's first;
* ``-B binary``: a binary ``version`` (a server started with ``-B binary``).

PORT defaults to ``$KVSHARD_PORT`` or 11211, HOST to 127.0.0.1. ``$KVSHARD_HEALTH_ARGS`` holds
options read before the command line's (a container's HEALTHCHECK cannot take arguments per
``docker run``: ``-e KVSHARD_HEALTH_ARGS="-Z --ca-cert /certs/ca.pem"``).
"""

from __future__ import annotations

import argparse
import os
import shlex
import socket
import ssl
import sys
from typing import NoReturn

from .protocol import binary as b

__all__ = ["main", "TIMEOUT_SECONDS"]

TIMEOUT_SECONDS = 2.0
LOGIN_KEY = b"kvshard-health"  # the key of the ASCII login's set (memcached stores nothing)
_OK = 0


class _Unhealthy(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        print(f"kvshard.health: {message}", file=sys.stderr)
        raise SystemExit(64)


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="python -m kvshard.health", description="exit 0 if the server answers version")
    p.add_argument("host", nargs="?", default="127.0.0.1")
    p.add_argument("port", nargs="?", type=int, default=int(os.environ.get("KVSHARD_PORT", "11211")))
    p.add_argument("-Z", "--tls", action="store_true", help="connect with TLS (a server started with -Z)")
    p.add_argument("--ca-cert", default=None, help="-Z: the CA the server's certificate is checked against")
    p.add_argument("--cert", default=None, help="-Z: a client certificate, for ssl_verify_mode 1-3")
    p.add_argument("--key", default=None, help="-Z: the client certificate's key")
    p.add_argument("--server-name", default=None, help="-Z: the name the server's certificate carries (HOST)")
    p.add_argument("-Y", "--auth-file", default=None, help="log in with memcached's ASCII login, as this file's first user")
    p.add_argument("-S", "--sasl", action="store_true", help="log in with SASL PLAIN over the binary protocol")
    p.add_argument("--sasl-pwdb", default=None, help="-S: the password file (default: $MEMCACHED_SASL_PWDB)")
    p.add_argument("--user", default=None, help="log in as this user (with --password)")
    p.add_argument("--password", default=None)
    p.add_argument("-B", "--protocol", choices=("auto", "ascii", "binary"), default="auto")
    return p


def _credentials(args: argparse.Namespace) -> tuple[bytes, bytes] | None:
    """(user, password) to log in with, or None when the server wants no login."""
    from .auth import CredentialsError, load_credentials

    if not args.sasl and args.auth_file is None:
        return None
    if args.user is not None:
        return args.user.encode(), (args.password or "").encode()
    path = args.auth_file or args.sasl_pwdb or os.environ.get("MEMCACHED_SASL_PWDB", "")
    if not path:
        raise _Unhealthy("-S needs --user/--password, --sasl-pwdb FILE or MEMCACHED_SASL_PWDB")
    try:
        return load_credentials(path, ascii_login=not args.sasl).entries[0]
    except CredentialsError as exc:
        raise _Unhealthy(str(exc)) from None


def _tls_context(args: argparse.Namespace) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=args.ca_cert)
    if args.cert:
        context.load_cert_chain(args.cert, args.key)
    return context


def _connect(args: argparse.Namespace) -> socket.socket:
    sock = socket.create_connection((args.host, args.port), timeout=TIMEOUT_SECONDS)
    sock.settimeout(TIMEOUT_SECONDS)
    if not args.tls:
        return sock
    return _tls_context(args).wrap_socket(sock, server_hostname=args.server_name or args.host)


def _receive(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise _Unhealthy(f"the server closed the connection after {data!r}")
        data += chunk
    return data


def _binary_call(sock: socket.socket, opcode: int, key: bytes = b"", value: bytes = b"") -> bytes:
    """One binary request; its response's body, or _Unhealthy naming the status."""
    sock.sendall(b.HEADER.pack(b.REQUEST_MAGIC, opcode, len(key), 0, 0, 0, len(key) + len(value), 0, 0) + key + value)
    magic, answered, _, _, _, status, length, _, _ = b.HEADER.unpack(_receive(sock, b.HEADER.size))
    body = _receive(sock, length)
    if magic != b.RESPONSE_MAGIC or answered != opcode or status != _OK:
        raise _Unhealthy(f"binary opcode {opcode:#x} answered status {status:#x} {body[:80]!r}")
    return body


def _ascii_call(sock: socket.socket, request: bytes, expected: bytes) -> None:
    sock.sendall(request)
    reply = sock.recv(256)
    if not reply.startswith(expected):
        raise _Unhealthy(f"answered {reply[:80]!r} to {request.split(b' ')[0]!r}")


def _check(sock: socket.socket, args: argparse.Namespace) -> None:
    login = _credentials(args)
    if args.sasl:
        assert login is not None
        _binary_call(sock, b.OP_SASL_AUTH, b"PLAIN", b"\0" + login[0] + b"\0" + login[1])
    elif login is not None:
        data = login[0] + b" " + login[1]
        _ascii_call(sock, b"set %s 0 0 %d\r\n%s\r\n" % (LOGIN_KEY, len(data), data), b"STORED\r\n")
    if args.sasl or args.protocol == "binary":
        _binary_call(sock, b.OP_VERSION)
    else:
        _ascii_call(sock, b"version\r\n", b"VERSION ")


def main(argv: list[str] | None = None) -> int:
    from_environment = shlex.split(os.environ.get("KVSHARD_HEALTH_ARGS", ""))
    args = _parser().parse_args(from_environment + (sys.argv[1:] if argv is None else argv))
    try:
        with _connect(args) as sock:
            _check(sock, args)
    except (OSError, _Unhealthy) as exc:  # ssl.SSLError is an OSError
        print(f"unhealthy: {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
