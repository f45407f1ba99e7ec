"""The ``kvshard`` command: memcached's flags, one shard per CPU.

    kvshard [-p PORT] [-l ADDR[,ADDR]] [-m MB] [-c CONNS] [-t SHARDS] [-I SIZE] [-U PORT]
            [-S [--sasl-pwdb FILE] | -Y FILE] [-Z -o ssl_chain_cert=...,ssl_key=...]
            [-v|-vv] [--network-stack posix|native [--dpdk-pmd [--dpdk-args ARGS]] ...]

Bad or unknown flags print one line and exit 64 (EX_USAGE); an address that cannot be listened
on exits 71 (EX_OSERR), as memcached does; ``--dpdk-pmd`` where DPDK is missing or will not
start prints one line naming what is missing and exits 69 (EX_UNAVAILABLE).
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import sys
import time
from typing import Any

from framework import ShardSettings, run
from framework.logs import install_labels
from net_backends import STACKS
from net_backends.posix import check_can_listen

from . import __version__, core
from .server import PROTOCOL_VERSION, KVServerApp, ServerConfig

__all__ = ["main", "parse_size", "EX_USAGE", "EX_OSERR", "EX_UNAVAILABLE"]

log = logging.getLogger("kvshard")

EX_USAGE = 64
EX_UNAVAILABLE = 69
EX_OSERR = 71
MIN_ITEM_SIZE = 1024
# Measured under memcaslap on 2 cores shared with the client: polling for 200 us after the last
# message cost 10-25% of throughput against sleeping at once (the doorbell wake-ups are rare
# under load: one per ~35 messages).
DEFAULT_IDLE_POLL_US = 0
MAX_ITEM_SIZE = 1 << 30


class _UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise _UsageError(message)


class _Version(argparse.Action):
    """``-V``: ``kvshard <version>`` and, on a second line, ``core: compiled|interpreted``."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:
        print(f"kvshard {__version__}\ncore: {core.mode()}")
        parser.exit()


def parse_size(text: str) -> int:
    """memcached's -I syntax: bytes, or a number with a k/m (KiB/MiB) suffix."""
    t = text.strip().lower()
    scale = 1
    if t.endswith("k"):
        scale, t = 1024, t[:-1]
    elif t.endswith("m"):
        scale, t = 1024 * 1024, t[:-1]
    if not t.isdigit():
        raise ValueError(f"invalid size {text!r}")
    return int(t) * scale


def _positive(name: str, minimum: int = 1, maximum: int | None = None):  # type: ignore[no-untyped-def]
    def convert(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} must be a whole number, not {text!r}") from None
        if value < minimum or (maximum is not None and value > maximum):
            bound = f"between {minimum} and {maximum}" if maximum is not None else f"at least {minimum}"
            raise argparse.ArgumentTypeError(f"{name} must be {bound}, not {value}")
        return value

    return convert


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="kvshard", description="memcached-compatible key-value server, one shard per core")
    p.add_argument("-p", "--port", type=_positive("port", 1, 65535), default=11211, help="TCP port (11211)")
    p.add_argument("-l", "--listen", default="127.0.0.1", help="address(es) to listen on, comma separated (127.0.0.1)")
    p.add_argument("-m", "--memory-limit", type=_positive("memory limit", 1), default=64, help="item memory in megabytes (64)")
    p.add_argument("-c", "--conn-limit", type=_positive("connection limit", 1), default=1024, help="max simultaneous connections (1024)")
    p.add_argument("-t", "--threads", type=_positive("threads", 1, 1024), default=None, help="number of shards (default: CPUs)")
    p.add_argument("-I", "--max-item-size", default="1m", help="max item size, k/m suffix allowed (1m)")
    p.add_argument("-U", "--udp-port", type=_positive("udp port", 0, 65535), default=0, help="UDP port (0 = off)")
    p.add_argument(
        "--metrics-port", type=_positive("metrics port", 0, 65535), default=9150,
        help="HTTP port for Prometheus /metrics and /health (9150, memcached_exporter's; 0 = off)",
    )
    p.add_argument("--metrics-listen", default=None, help="address(es) for the metrics port (default: as -l)")
    p.add_argument("-v", "--verbose", action="count", default=0, help="log more (-vv: debug)")
    p.add_argument("-o", "--extended", action="append", default=[], metavar="OPT[=VALUE],...",
                   help="memcached's extended options; kvshard takes idle_timeout=SECONDS (0: never), "
                   "ssl_chain_cert=PATH, ssl_key=PATH, ssl_ca_cert=PATH, ssl_verify_mode=0-3")
    p.add_argument("-Z", "--enable-ssl", action="store_true", help="TLS on every TCP connection (needs -o ssl_chain_cert=,ssl_key=)")
    p.add_argument("-S", "--enable-sasl", action="store_true",
                   help="clients must log in with SASL PLAIN over the binary protocol (binary only); users from "
                   "--sasl-pwdb or $MEMCACHED_SASL_PWDB (user:password lines)")
    p.add_argument("--sasl-pwdb", default=None, metavar="FILE", help="-S: the password file (default: $MEMCACHED_SASL_PWDB)")
    p.add_argument("-Y", "--auth-file", default=None, metavar="FILE",
                   help="clients must log in with memcached's ASCII authentication (ASCII only); FILE holds user:password lines")
    p.add_argument("-A", "--enable-shutdown", action="store_true", help="allow the \"shutdown\" command (it stops the server)")
    p.add_argument("--pidfile", default=None, help="write the server's process id to this file (removed at exit)")
    p.add_argument("--log-file", default=None, help="log to this file instead of stderr (SIGHUP reopens it, for logrotate)")
    p.add_argument("-V", "--version", action=_Version, nargs=0, help="print the version and which core runs, then exit")
    p.add_argument("--network-stack", choices=STACKS, default="posix", help="network stack (posix)")
    p.add_argument("--tap-device", default="", help="native stack: the TAP device, one queue per shard (made if missing)")
    p.add_argument("--host-ipv4-addr", default="", help="native stack: our IPv4 address")
    p.add_argument("--netmask-ipv4-addr", default="255.255.255.0", help="native stack: the netmask (255.255.255.0)")
    p.add_argument("--gw-ipv4-addr", default=None, help="native stack: the gateway, if any")
    p.add_argument(
        "--dpdk-pmd", action="store_true",
        help="native stack: run over a DPDK port (each shard its own EAL); --tap-device NAME then means "
        "DPDK's net_tap driver on the kernel tap NAME",
    )
    p.add_argument(
        "--dpdk-args", default="",
        help="native stack with --dpdk-pmd: EAL arguments instead of the defaults (--no-huge --no-pci "
        "--no-shconf -m 256 --vdev=net_tap0,iface=NAME ...), e.g. for a real NIC; write it with '=' "
        "(--dpdk-args='-a 0000:3b:00.0 ...'), as the value starts with a dash",
    )
    p.add_argument(
        "--idle-poll-us", type=_positive("idle poll time", 0, 1_000_000), default=DEFAULT_IDLE_POLL_US,
        help="how long an idle shard keeps polling its channels before it sleeps, in microseconds "
        f"({DEFAULT_IDLE_POLL_US}: sleep at once; polling pays off only on cores the server does not "
        "share, e.g. with the load generator)",
    )
    return p


def _config(args: argparse.Namespace) -> ServerConfig:
    try:
        item_size = parse_size(args.max_item_size)
    except ValueError as exc:
        raise _UsageError(f"-I: {exc}") from None
    memory = args.memory_limit * 1024 * 1024
    if item_size < MIN_ITEM_SIZE:
        raise _UsageError(f"-I: item size must be at least {MIN_ITEM_SIZE} bytes")
    if item_size > MAX_ITEM_SIZE:
        raise _UsageError("-I: cannot set item size limit higher than 1 gigabyte")
    if item_size > memory // 2:
        raise _UsageError("-I: cannot set item size limit higher than 1/2 of memory max")
    listen = tuple(a.strip() for a in args.listen.split(",") if a.strip())
    if not listen:
        raise _UsageError("-l: no address given")
    metrics_listen = listen
    if args.metrics_listen is not None:
        metrics_listen = tuple(a.strip() for a in args.metrics_listen.split(",") if a.strip())
        if not metrics_listen:
            raise _UsageError("--metrics-listen: no address given")
    if args.metrics_port and args.metrics_port in (args.port, args.udp_port):
        raise _UsageError(f"--metrics-port: {args.metrics_port} is already the memcached port")
    extended = _extended(args.extended)
    if args.network_stack == "native":
        _check_native(args)
    elif args.dpdk_pmd or args.dpdk_args:
        raise _UsageError("--dpdk-pmd needs --network-stack native")
    return ServerConfig(
        port=args.port, listen=listen, memory_bytes=memory, max_connections=args.conn_limit,
        max_item_size=item_size, udp_port=args.udp_port, verbosity=args.verbose,
        metrics_port=args.metrics_port, metrics_listen=metrics_listen,
        network_stack=args.network_stack, version=f"{PROTOCOL_VERSION}-kvshard-{__version__}",
        started=time.time(), pid=os.getpid(),
        tap_device=args.tap_device, host_ipv4=args.host_ipv4_addr, netmask_ipv4=args.netmask_ipv4_addr,
        gateway_ipv4=args.gw_ipv4_addr, dpdk_pmd=args.dpdk_pmd, dpdk_args=args.dpdk_args,
        shutdown_enabled=args.enable_shutdown, idle_timeout=int(extended.get("idle_timeout", 0)),
        tls=_tls(args, extended), **_auth(args),
    )


_NUMERIC_OPTIONS = ("idle_timeout", "ssl_verify_mode")
_PATH_OPTIONS = ("ssl_chain_cert", "ssl_key", "ssl_ca_cert")


def _extended(options: list[str]) -> dict[str, str]:
    """``-o`` options (comma-separated, the flag repeatable), as memcached spells them."""
    out: dict[str, str] = {}
    for option in ",".join(options).split(","):
        if not option:
            continue
        name, _, value = option.partition("=")
        if name not in _NUMERIC_OPTIONS + _PATH_OPTIONS:
            raise _UsageError(f"-o: illegal suboption \"{name}\" (kvshard takes {', '.join(_NUMERIC_OPTIONS + _PATH_OPTIONS)})")
        if name in _NUMERIC_OPTIONS and not value.isdigit():
            raise _UsageError(f"-o {name}: {value!r} is not a number")
        if name in _PATH_OPTIONS and not value:
            raise _UsageError(f"-o {name}: no path given")
        out[name] = value
    return out


def _tls(args: argparse.Namespace, extended: dict[str, str]) -> "TlsSettings | None":
    """-Z's settings, checked by building the context once here."""
    from .tls import TlsSettings, server_context

    wanted = [name for name in _PATH_OPTIONS + ("ssl_verify_mode",) if name in extended]
    if not args.enable_ssl:
        if wanted:
            raise _UsageError(f"-o {wanted[0]}: TLS options need -Z (--enable-ssl)")
        return None
    if args.network_stack != "posix":
        raise _UsageError("-Z: TLS is served on the kernel's stack only (--network-stack posix)")
    if args.udp_port:
        raise _UsageError("-Z: memcached's UDP has no TLS; leave -U off")
    if "ssl_chain_cert" not in extended or "ssl_key" not in extended:
        raise _UsageError("-Z needs -o ssl_chain_cert=PATH,ssl_key=PATH")
    mode = int(extended.get("ssl_verify_mode", 0))
    if mode > 3:
        raise _UsageError("-o ssl_verify_mode: must be 0-3")
    settings = TlsSettings(extended["ssl_chain_cert"], extended["ssl_key"], extended.get("ssl_ca_cert", ""), mode)
    try:
        server_context(settings)
    except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
        raise _UsageError(f"-Z: cannot use the certificate or key: {getattr(exc, 'strerror', None) or exc}") from None
    return settings


def _auth(args: argparse.Namespace) -> dict[str, Any]:
    """-S / -Y: the login method and its users (the file read and checked here, once)."""
    from .auth import CredentialsError, load_credentials

    if args.sasl_pwdb is not None and not args.enable_sasl:
        raise _UsageError("--sasl-pwdb needs -S (--enable-sasl)")
    if not args.enable_sasl and args.auth_file is None:
        return {}
    if args.enable_sasl and args.auth_file is not None:
        raise _UsageError("-S and -Y: one login method at a time (SASL is binary only, -Y ASCII only)")
    flag = "-S" if args.enable_sasl else "-Y"
    if args.udp_port:
        raise _UsageError(f"{flag}: memcached's UDP has no login; leave -U off")
    path = args.auth_file if args.auth_file is not None else args.sasl_pwdb or os.environ.get("MEMCACHED_SASL_PWDB", "")
    if not path:
        raise _UsageError("-S needs a password file: --sasl-pwdb FILE or MEMCACHED_SASL_PWDB=FILE")
    try:
        credentials = load_credentials(path, ascii_login=not args.enable_sasl)
    except CredentialsError as exc:
        raise _UsageError(f"{flag}: {exc}") from None
    return {"auth": "sasl" if args.enable_sasl else "ascii", "auth_file": path, "credentials": credentials.entries}


def _check_native(args: argparse.Namespace) -> None:
    """The native stack's own options, checked before any shard starts."""
    import ipaddress  # only for this stack

    if args.dpdk_args and not args.dpdk_pmd:
        raise _UsageError("--dpdk-args needs --dpdk-pmd")
    if not args.tap_device and not args.dpdk_args:
        raise _UsageError("--network-stack native needs --tap-device NAME")
    if len(args.tap_device.encode()) > 15:
        raise _UsageError(f"--tap-device: {args.tap_device!r} is longer than 15 bytes")
    if not args.host_ipv4_addr:
        raise _UsageError("--network-stack native needs --host-ipv4-addr ADDR")
    try:
        interface = ipaddress.IPv4Interface(f"{args.host_ipv4_addr}/{args.netmask_ipv4_addr}")
        if args.gw_ipv4_addr is not None and ipaddress.IPv4Address(args.gw_ipv4_addr) not in interface.network:
            raise _UsageError(f"--gw-ipv4-addr: {args.gw_ipv4_addr} is not on {interface.network}")
    except ValueError as exc:
        raise _UsageError(f"native stack address: {exc}") from None
    if not args.dpdk_args and not os.path.exists("/dev/net/tun"):
        raise _UsageError("--network-stack native needs /dev/net/tun (the tun kernel module)")


def _probe_dpdk(config: ServerConfig) -> str:
    """'' if DPDK starts here with the shards' EAL arguments, else why not (one line). The glue is
    built (or found) here; EAL starts in a throwaway process, as EAL can start only once in a
    process and the supervisor must stay free of it (each shard starts its own)."""
    import subprocess  # only for this check

    from net_backends.dpdk.device import eal_args
    from net_backends.dpdk.glue import DpdkUnavailable, load

    try:
        load()
    except DpdkUnavailable as exc:
        return str(exc)
    probe = subprocess.run(
        [sys.executable, "-m", "net_backends.dpdk.probe", *eal_args(config.tap_device, f"probe-{os.getpid()}", extra=config.dpdk_args)],
        capture_output=True, text=True, timeout=60,
    )
    if probe.returncode == 0:
        return ""
    lines = [line for line in probe.stderr.splitlines() if line.strip()]
    return lines[-1] if lines else f"the DPDK probe exited with status {probe.returncode}"


def main(argv: list[str] | None = None) -> int:
    try:
        args = _parser().parse_args(argv)
        config = _config(args)
    except _UsageError as exc:
        print(f"kvshard: {exc}", file=sys.stderr)
        return EX_USAGE
    level = logging.WARNING if args.verbose == 0 else logging.INFO if args.verbose == 1 else logging.DEBUG
    install_labels()  # every line says which process wrote it: "main" or "shard N"
    try:
        logging.basicConfig(level=level, format="%(asctime)s [%(process_label)s] %(name)s %(levelname)s %(message)s",
                            filename=args.log_file)
    except OSError as exc:
        print(f"kvshard: --log-file: {exc.strerror or exc}: {args.log_file}", file=sys.stderr)
        return EX_OSERR
    checks = []
    if config.network_stack == "posix":  # the native stack's ports are not the kernel's
        checks = [(host, kind, port) for host in config.listen for kind, port in (("TCP", config.port), ("UDP", config.udp_port))]
    checks += [(host, "metrics TCP", config.metrics_port) for host in config.metrics_listen]
    for host, kind, port in checks:
        if port:
            try:
                check_can_listen(host, port, udp=kind == "UDP")
            except OSError as exc:
                print(f"kvshard: failed to listen on {host} {kind} port {port}: {exc.strerror or exc}", file=sys.stderr)
                return EX_OSERR
    if config.dpdk_pmd:
        problem = _probe_dpdk(config)
        if problem:
            print(f"kvshard: {problem}", file=sys.stderr)
            return EX_UNAVAILABLE
    log.info("kvshard %s, core: %s", __version__, core.mode())
    slow = core.warning()
    if slow is not None:
        log.warning("%s", slow)
    settings = dataclasses.replace(ShardSettings(), idle_poll_seconds=args.idle_poll_us / 1e6)
    if args.pidfile:
        try:
            with open(args.pidfile, "w") as f:
                f.write(f"{os.getpid()}\n")
        except OSError as exc:
            print(f"kvshard: --pidfile: {exc.strerror or exc}: {args.pidfile}", file=sys.stderr)
            return EX_OSERR
    try:
        return run(KVServerApp(config), args.threads, settings=settings)
    finally:
        if args.pidfile:
            try:
                os.unlink(args.pidfile)
            except OSError:
                pass


if __name__ == "__main__":
    sys.exit(main())
