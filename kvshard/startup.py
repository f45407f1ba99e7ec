"""What the supervisor does to its own process before it forks the shards, in memcached's order:
raise the core-file limit (``-r``), switch user (``-u``), detach (``-d``), then open the
listening sockets the shards inherit (``-s``'s UNIX socket, the metrics port) and write the
pid file (``-P``).

The sockets opened here are opened once, by the supervisor, and every shard forked later
(a restarted one too) inherits them: a UNIX socket cannot be bound once per shard as a TCP port
with ``SO_REUSEPORT`` can, and a metrics port held from the start cannot be taken by another
server between the check and shard 0's start.
"""

from __future__ import annotations

import errno
import os
import pwd
import resource
import socket
import stat

from .memcached_options import EX_NOUSER, EX_OSERR, UsageError

__all__ = [
    "enable_core_dumps", "switch_user", "ROOT_WITHOUT_USER", "daemonize", "bind_unix_socket",
    "remove_unix_socket", "bind_metrics", "write_pidfile", "remove_file",
]

ROOT_WITHOUT_USER = ("running as root without -u: memcached refuses this (\"can't run as root without the -u "
                     "switch\"); kvshard allows it for containers and CI, but give -u USER to drop root")


def enable_core_dumps() -> None:
    """``-r``: the core-file limit as high as allowed; memcached's error if it stays 0."""
    _, hard = resource.getrlimit(resource.RLIMIT_CORE)
    for limit in (resource.RLIM_INFINITY, hard):
        try:
            resource.setrlimit(resource.RLIMIT_CORE, (limit, limit))
            break
        except (ValueError, OSError):
            continue
    if resource.getrlimit(resource.RLIMIT_CORE)[0] == 0:
        raise UsageError("failed to ensure corefile creation", EX_OSERR)


def switch_user(user: str | None) -> bool:
    """``-u USER``: as root, become USER (its group, no supplementary groups), as memcached
    does, before any socket is opened. Not root: nothing to do (memcached ignores -u too).
    Returns False when running on as root because no user was given."""
    if os.geteuid() != 0 and os.getuid() != 0:
        return True
    if not user:
        return False
    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        raise UsageError(f"can't find the user {user} to switch to", EX_NOUSER) from None
    try:
        os.setgroups([])
    except PermissionError:
        pass  # already without the right to change them: as memcached, go on
    try:
        os.setgid(entry.pw_gid)
        os.setuid(entry.pw_uid)
    except OSError:
        raise UsageError(f"failed to assume identity of user {user}", EX_OSERR) from None
    return True


def daemonize(keep_output: bool) -> None:
    """``-d``: run on in a child detached from the terminal (a new session); the command
    returns 0 at once. Standard input and output go to /dev/null, and so does standard
    error unless ``keep_output`` (``-v``, as memcached keeps it). The working directory is
    kept, so relative paths given on the command line still work."""
    if os.fork():
        os._exit(0)
    os.setsid()
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1) if keep_output else (0, 1, 2):
        os.dup2(null, fd)
    os.close(null)


def bind_unix_socket(path: str, mask: int, backlog: int) -> socket.socket:
    """``-s PATH -a MASK``: the listening UNIX socket, its file made with permissions MASK.
    A socket file left by an earlier run is replaced; any other file is not."""
    try:
        if stat.S_ISSOCK(os.lstat(path).st_mode):
            os.unlink(path)
    except FileNotFoundError:
        pass
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old_umask = os.umask(~mask & 0o777)
    try:
        listener.bind(path)
        listener.listen(backlog)
    except OSError as exc:
        listener.close()
        raise UsageError(f"failed to listen on UNIX socket: {path}: {exc.strerror or exc}", EX_OSERR) from None
    finally:
        os.umask(old_umask)
    return listener


def remove_unix_socket(listener: socket.socket, path: str) -> None:
    listener.close()
    remove_file(path)


def bind_metrics(hosts: tuple[str, ...], port: int, required: bool) -> tuple[socket.socket, ...]:
    """The metrics port's listening sockets on every address of ``hosts``. When the port is
    taken: an error (EX_OSERR) if ``required`` (the port was asked for), else ``()``: this
    server runs without the endpoint."""
    sockets: list[socket.socket] = []
    try:
        for host in hosts:
            sockets.extend(_listen_tcp(host, port))
    except OSError as exc:
        for sock in sockets:
            sock.close()
        if exc.errno == errno.EADDRINUSE and not required:
            return ()
        raise UsageError(f"failed to listen on {host or '*'} metrics TCP port {port}: {exc.strerror or exc}", EX_OSERR) from None
    return tuple(sockets)


def _listen_tcp(host: str, port: int) -> list[socket.socket]:
    sockets = []
    for family, kind, proto, _, address in socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM,
                                                              flags=socket.AI_PASSIVE):  # "": every address
        sock = socket.socket(family, kind, proto)
        sockets.append(sock)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(address)
            sock.listen(128)
        except OSError:
            for opened in sockets:
                opened.close()
            raise
    return sockets


def write_pidfile(path: str) -> None:
    try:
        with open(path, "w") as f:
            f.write(f"{os.getpid()}\n")
    except OSError as exc:
        raise UsageError(f"-P/--pidfile: {exc.strerror or exc}: {path}", EX_OSERR) from None


def remove_file(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass
