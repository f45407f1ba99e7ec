"""From the parsed command line to a :class:`~kvshard.server.ServerConfig`: every value read
and checked as memcached 1.6.18 reads it (:mod:`kvshard.memcached_options`), the TLS and login
files checked once, and the list of options accepted but ignored here, with the reason."""

from __future__ import annotations

import argparse
import os
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from . import __version__
from .cli_flags import DEFAULT_METRICS_PORT
from .memcached_options import (
    SLAB_PAGE_SIZE, UsageError, at_least_one, c_integer, check_item_size, check_suboptions, delimiter, file_mask,
    growth_factor, ignored_reason, item_size, parse_suboptions, port_number, protocol, whole_number,
)
from .listen_spec import Listener, join_listen_flags, listener_hosts, parse_listeners
from .server import PROTOCOL_VERSION, ServerConfig

if TYPE_CHECKING:
    from .tls import TlsSettings

__all__ = ["Startup", "startup_from", "MAX_SHARDS", "DEFAULT_PORT"]

MAX_SHARDS = 1024
DEFAULT_PORT = 11211
MAX_IDLE_POLL_US = 1_000_000

_IGNORED_FLAGS = {
    "enable_largepages": ("-L", "large pages: the shards' memory is ordinary pages"),
    "lock_memory": ("-k", "the shards do not lock their memory"),
    "memory_file": ("-e", "no restartable cache file: items live in the shards' memory"),
    "napi_ids": ("-N", "the kernel's SO_REUSEPORT hash picks each connection's shard"),
}


@dataclass(frozen=True)
class Startup:
    """What the supervisor needs besides the shards' config."""

    config: ServerConfig
    shards: int | None  # None: one per CPU
    metrics_required: bool  # --metrics-port given: a taken port is an error, not a skip
    ignored: tuple[str, ...]  # "-o ext_path (why)", one per option accepted and ignored
    idle_poll_us: int


def startup_from(args: argparse.Namespace) -> Startup:
    shards = None if args.threads is None else _shards(args.threads)
    extended = parse_suboptions(args.extended)
    check_suboptions(extended)
    _checked_numbers(args, shards)
    ports = _ports(args)
    metrics_port = DEFAULT_METRICS_PORT if args.metrics_port is None else port_number("--metrics-port", args.metrics_port)
    if metrics_port and metrics_port in ports:
        raise UsageError(f"--metrics-port: {metrics_port} is already the memcached port")
    idle_poll = whole_number("--idle-poll-us", args.idle_poll_us)
    if idle_poll > MAX_IDLE_POLL_US:
        raise UsageError(f"--idle-poll-us: at most {MAX_IDLE_POLL_US}, not {idle_poll}")
    config = _server_config(args, extended, ports, metrics_port)
    return Startup(config, shards, args.metrics_port is not None, _ignored(args, extended), idle_poll)


def _shards(text: str) -> int:
    shards = at_least_one("-t", text, "Number of threads must be greater than 0")
    if shards > MAX_SHARDS:
        raise UsageError(f"-t: at most {MAX_SHARDS} shards, not {shards}")
    return shards


def _checked_numbers(args: argparse.Namespace, shards: int | None) -> None:
    """Flags checked as memcached checks them, in its order (before the others)."""
    growth_factor(args.slab_growth_factor)
    at_least_one("-n", args.slab_min_size, "Chunk size must be greater than 0")
    if args.napi_ids is not None:
        napi_ids = at_least_one("-N", args.napi_ids, "Maximum number of NAPI IDs must be greater than 0")
        threads = shards or len(os.sched_getaffinity(0))
        if napi_ids > threads:
            raise UsageError(f"Number of napi_ids({napi_ids}) cannot be greater than number of threads({threads})")


def _ports(args: argparse.Namespace) -> tuple[int, int]:
    """(TCP, UDP). As memcached: with -U given and -p not, TCP takes the UDP port."""
    udp = port_number("-U", args.udp_port)
    if args.port is None:
        return (udp or DEFAULT_PORT), udp
    tcp = port_number("-p", args.port)
    if tcp == 0 and args.unix_socket is None:
        raise UsageError("-p 0: kvshard always serves TCP, or a UNIX socket with -s FILE")
    return tcp, udp


def _memory_bytes(text: str) -> int:
    megabytes, exact = c_integer(text)
    if not exact or megabytes < 0:
        raise UsageError(f"-m: {text!r} is not a number of megabytes")
    return megabytes << 20


def _slab_chunk_max(extended: dict[str, str | None], size: int) -> int | None:
    """memcached's slab chunk size limit for the -I checks (None: its default)."""
    if "slab_chunk_max" in extended:
        return c_integer(extended["slab_chunk_max"] or "")[0]
    if size <= SLAB_PAGE_SIZE and ("no_chunked_items" in extended or "no_modern" in extended):
        return SLAB_PAGE_SIZE
    return None


def _metrics_listen(text: str) -> tuple[str, ...]:
    addresses = tuple(a.strip() for a in text.split(",") if a.strip())
    if not addresses:
        raise UsageError("--metrics-listen: no address given")
    return addresses


def _listeners(args: argparse.Namespace, listen_text: str, protocol: str, ports: tuple[int, int],
               metrics_port: int) -> tuple[Listener, ...]:
    """-l's listeners, checked against the flags they must agree with."""
    listeners = parse_listeners(listen_text, tls_enabled=args.enable_ssl)
    for listener in listeners:
        _check_listener(listener, args, protocol)
        if metrics_port and metrics_port in (listener.port_or(ports[0]), listener.port_or(ports[1] or ports[0])):
            raise UsageError(f"--metrics-port: {metrics_port} is already the memcached port of -l {listener.text!r}")
    return listeners


def _check_listener(listener: Listener, args: argparse.Namespace, protocol: str) -> None:
    """A listener's own protocol must be the login's (memcached would serve it without one), and
    only the kernel's stack serves listeners of their own."""
    if listener.protocol not in ("", protocol) and (args.enable_sasl or args.auth_file is not None):
        login = "-S serves the binary protocol only" if args.enable_sasl else "-Y serves the ASCII protocol only"
        raise UsageError(f"-l {listener.text!r}: {login} (memcached 1.6.18 would let this listener's clients in "
                         "without logging in)")
    if args.network_stack != "posix" and (listener.port or listener.protocol or listener.notls):
        raise UsageError(f"-l {listener.text!r}: a listener's own port, protocol or notls is served on the kernel's "
                         "stack only (--network-stack posix)")


def _server_config(args: argparse.Namespace, extended: dict[str, str | None], ports: tuple[int, int],
                   metrics_port: int) -> ServerConfig:
    memory = _memory_bytes(args.memory_limit)
    max_item = item_size(args.max_item_size)
    check_item_size(max_item, memory, _slab_chunk_max(extended, max_item))
    behaviour = _memcached_behaviour(args, extended)
    if args.unix_socket is not None and args.network_stack != "posix":
        raise UsageError("-s: a UNIX socket is served on the kernel's stack only (--network-stack posix)")
    if args.network_stack == "native":
        _check_native(args)
    elif args.dpdk_pmd or args.dpdk_args:
        raise UsageError("--dpdk-pmd needs --network-stack native")
    tcp_port, udp_port = ports
    if args.unix_socket is not None:
        udp_port = 0  # -s turns the network off, UDP included, as in memcached
    tls = _tls(args, extended, udp_port)
    auth = _auth(args, udp_port)
    listen_text = join_listen_flags(args.listen or [args.listen_default])
    listen = _listeners(args, listen_text, behaviour["protocol"], (tcp_port, udp_port), metrics_port)  # memcached: last
    metrics_listen = listener_hosts(listen) if args.metrics_listen is None else _metrics_listen(args.metrics_listen)
    return ServerConfig(
        port=tcp_port, listen=listen, listen_text=listen_text,
        memory_bytes=memory,
        max_connections=at_least_one("-c", args.conn_limit, "Maximum connections must be greater than 0"),
        max_item_size=max_item, udp_port=udp_port, verbosity=args.verbose,
        metrics_port=metrics_port, metrics_listen=metrics_listen,
        network_stack=args.network_stack, version=f"{PROTOCOL_VERSION}-kvshard-{__version__}",
        started=time.time(), pid=os.getpid(),
        tap_device=args.tap_device, host_ipv4=args.host_ipv4_addr, netmask_ipv4=args.netmask_ipv4_addr,
        gateway_ipv4=args.gw_ipv4_addr, dpdk_pmd=args.dpdk_pmd, dpdk_args=args.dpdk_args,
        shutdown_enabled=args.enable_shutdown, idle_timeout=int(extended.get("idle_timeout") or 0),
        tls=tls, **auth, **behaviour,
    )


def _memcached_behaviour(args: argparse.Namespace, extended: dict[str, str | None]) -> dict[str, Any]:
    """The fields of memcached's flags that change how requests are served (-B -C -F -X -W
    -M -R -b -D -s -a) and every -o option as given."""
    return {
        "protocol": _protocol(args),
        "cas_enabled": not args.disable_cas,
        "flush_enabled": not args.disable_flush_all,
        "dump_enabled": not args.disable_dumping,
        "watch_enabled": not args.disable_watch,
        "evictions": not args.disable_evictions,
        "growth_factor": growth_factor(args.slab_growth_factor),
        "min_chunk": at_least_one("-n", args.slab_min_size, "Chunk size must be greater than 0"),
        "reqs_per_event": at_least_one("-R", args.max_reqs_per_event, "Number of requests per event must be greater than 0"),
        "backlog": whole_number("-b", args.listen_backlog),
        "prefix_delimiter": ":" if args.delimiter is None else delimiter(args.delimiter),
        "detail_enabled": args.delimiter is not None,
        "unix_socket": args.unix_socket or "",
        "unix_mask": file_mask(args.unix_mask),
        "extended_options": tuple(extended.items()),
    }


def _protocol(args: argparse.Namespace) -> str:
    """-B, and what -S and -Y make of it, as in memcached."""
    chosen = None if args.protocol is None else protocol(args.protocol)
    if args.enable_sasl and chosen not in (None, "binary"):
        raise UsageError("ERROR: You cannot allow the ASCII protocol while using SASL.")
    if args.auth_file is not None and chosen not in (None, "ascii"):
        raise UsageError("ERROR: You cannot allow the BINARY protocol while using ascii authentication tokens.")
    if chosen is None:
        return "binary" if args.enable_sasl else "ascii" if args.auth_file is not None else "auto"
    return chosen


def _ignored(args: argparse.Namespace, extended: dict[str, str | None]) -> tuple[str, ...]:
    out = []
    for attribute, (flag, reason) in _IGNORED_FLAGS.items():
        value = getattr(args, attribute)
        if value not in (None, False):
            out.append(f"{flag} ({reason})")
    for name in extended:
        reason = ignored_reason(name)
        if reason is not None:
            out.append(f"-o {name} ({reason})")
    return tuple(out)


_SSL_FILES = ("ssl_chain_cert", "ssl_key", "ssl_ca_cert")
_SSL_SETTINGS = _SSL_FILES + ("ssl_verify_mode", "ssl_min_version", "ssl_ciphers", "ssl_keyformat")


def _tls(args: argparse.Namespace, extended: dict[str, str | None], udp_port: int) -> "TlsSettings | None":
    """-Z's settings, checked by building the context once here."""
    from .tls import TlsSettings, server_context

    wanted = [name for name in _SSL_SETTINGS if name in extended]
    if not args.enable_ssl:
        if wanted:
            raise UsageError(f"-o {wanted[0]}: TLS options need -Z (--enable-ssl)")
        return None
    if args.network_stack != "posix":
        raise UsageError("-Z: TLS is served on the kernel's stack only (--network-stack posix)")
    if udp_port:
        raise UsageError("-Z: memcached's UDP has no TLS; leave -U off")
    if not extended.get("ssl_chain_cert") or not extended.get("ssl_key"):
        raise UsageError("-Z needs -o ssl_chain_cert=PATH,ssl_key=PATH")
    settings = TlsSettings(
        extended["ssl_chain_cert"] or "", extended["ssl_key"] or "", extended.get("ssl_ca_cert") or "",
        int(extended.get("ssl_verify_mode") or 0), int(extended.get("ssl_min_version") or 2),
        extended.get("ssl_ciphers") or "",
    )
    try:
        server_context(settings)
    except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
        raise UsageError(f"-Z: cannot use the certificate or key: {getattr(exc, 'strerror', None) or exc}") from None
    return settings


def _auth(args: argparse.Namespace, udp_port: int) -> dict[str, Any]:
    """-S / -Y: the login method and its users (the file read and checked here, once)."""
    from .auth import CredentialsError, load_credentials

    if args.sasl_pwdb is not None and not args.enable_sasl:
        raise UsageError("--sasl-pwdb needs -S (--enable-sasl)")
    if not args.enable_sasl and args.auth_file is None:
        return {}
    if args.enable_sasl and args.auth_file is not None:
        raise UsageError("-S and -Y: one login method at a time (SASL is binary only, -Y ASCII only)")
    flag = "-S" if args.enable_sasl else "-Y"
    if udp_port:
        raise UsageError(f"{flag}: memcached's UDP has no login; leave -U off")
    path = args.auth_file if args.auth_file is not None else args.sasl_pwdb or os.environ.get("MEMCACHED_SASL_PWDB", "")
    if not path:
        raise UsageError("-S needs a password file: --sasl-pwdb FILE or MEMCACHED_SASL_PWDB=FILE")
    try:
        credentials = load_credentials(path, ascii_login=not args.enable_sasl)
    except CredentialsError as exc:
        raise UsageError(f"{flag}: {exc}") from None
    return {"auth": "sasl" if args.enable_sasl else "ascii", "auth_file": path, "credentials": credentials.entries}


def _check_native(args: argparse.Namespace) -> None:
    """The native stack's own options, checked before any shard starts."""
    import ipaddress  # only for this stack

    if args.dpdk_args and not args.dpdk_pmd:
        raise UsageError("--dpdk-args needs --dpdk-pmd")
    if not args.tap_device and not args.dpdk_args:
        raise UsageError("--network-stack native needs --tap-device NAME")
    if len(args.tap_device.encode()) > 15:
        raise UsageError(f"--tap-device: {args.tap_device!r} is longer than 15 bytes")
    if not args.host_ipv4_addr:
        raise UsageError("--network-stack native needs --host-ipv4-addr ADDR")
    try:
        interface = ipaddress.IPv4Interface(f"{args.host_ipv4_addr}/{args.netmask_ipv4_addr}")
        if args.gw_ipv4_addr is not None and ipaddress.IPv4Address(args.gw_ipv4_addr) not in interface.network:
            raise UsageError(f"--gw-ipv4-addr: {args.gw_ipv4_addr} is not on {interface.network}")
    except ValueError as exc:
        raise UsageError(f"native stack address: {exc}") from None
    if not args.dpdk_args and not os.path.exists("/dev/net/tun"):
        raise UsageError("--network-stack native needs /dev/net/tun (the tun kernel module)")
